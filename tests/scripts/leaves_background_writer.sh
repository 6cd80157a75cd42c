#!/usr/bin/env bash
# Exits at once but leaves a background process holding stdout open.
(sleep 30; echo late) &
echo "leaving $!"
