#!/usr/bin/env bash
# Fails on its first two runs, then succeeds: the count is kept in the file $COUNT_FILE.
n=$(( $(cat "$COUNT_FILE" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$COUNT_FILE"
if [ "$n" -le 2 ]; then
  echo "run $n: disk full" >&2
  exit 1
fi
echo "run $n: fine"
