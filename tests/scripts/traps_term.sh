#!/usr/bin/env bash
# Ends cleanly on TERM, saying so: shows that a timeout asks before it kills.
trap 'echo "got TERM"; exit 0' TERM
echo "waiting"
while true; do sleep 0.05; done
