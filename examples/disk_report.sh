#!/usr/bin/env bash
# Example shell job: reports free disk space and remembers the previous reading through the
# language-neutral state CLI (it finds the database through JR_DB_PATH).
set -euo pipefail
JR="${JR_CLI:-jeeves-runner}"
free_kb=$(df -Pk / | awk 'NR==2 {print $4}')
previous=$("$JR" state get disk free_kb | python3 -c 'import json,sys; v=json.load(sys.stdin); print(v.get("value") or "")' 2>/dev/null || true)
"$JR" state set disk free_kb "$free_kb" >/dev/null
echo "free on /: ${free_kb} KiB (previous reading: ${previous:-none})"
