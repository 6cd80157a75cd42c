#!/usr/bin/env bash
# The job's own process ends at once on TERM; the child it started takes a moment to clean
# up and then writes "cleaned up" to $CLEANUP_MARKER. SIGKILL must wait for that (up to the
# grace), not arrive the moment the job's own process is gone.
bash -c 'trap "sleep 0.3; echo cleaned up > \"\$CLEANUP_MARKER\"; exit 0" TERM
         echo "child $$"
         while true; do sleep 0.05; done' &
trap 'exit 0' TERM
while true; do sleep 0.05; done
