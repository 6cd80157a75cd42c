#!/usr/bin/env bash
# Starts a grandchild that would outlive us, reports its pid, then hangs.
sleep 300 &
echo "grandchild $!"
wait
