#!/usr/bin/env bash
# Example shell job: state, a TTL, a collection and a queue, through the jeeves-runner CLI —
# what any language can do without the Python client.
#
# Each run remembers when it ran, leaves a heartbeat that expires by itself after an hour,
# records when it last saw each host (a collection under one key, pruned to the newest 50),
# and enqueues one "check" item per host for a consumer job. Every command prints one line of
# JSON; `state get --raw` prints the bare value (nothing when the key is missing or expired).
#
# The runner sets JR_DB_PATH (SQLite) or JR_DB_URL (PostgreSQL) for the job; the CLI finds
# the database through it.
set -euo pipefail
JR="${JR_CLI:-jeeves-runner}"
if [ -z "${JR_DB_URL:-}${JR_DB_PATH:-}" ]; then
  echo "run this from jeeves-runner, or set JR_DB_PATH or JR_DB_URL" >&2
  exit 2
fi

ns="shell-example"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)

previous=$("$JR" state get "$ns" last-run --raw)
echo "previous run: ${previous:-none}"
"$JR" state set "$ns" last-run "$now" >/dev/null
"$JR" state set "$ns" heartbeat "$now" --ttl 1h >/dev/null

count=0
for host in ${HOSTS:-alpha beta}; do
  "$JR" state items set "$ns" hosts "$host" "$now" >/dev/null
  # Hosts named "db*" go first: a higher priority is claimed first.
  priority=0
  case "$host" in db*) priority=10 ;; esac
  "$JR" queue enqueue host-checks "$(printf '{"host": "%s", "at": "%s"}' "$host" "$now")" \
    --priority "$priority"
  count=$((count + 1))
done
"$JR" state items prune "$ns" hosts --keep 50 >/dev/null
echo "enqueued $count check(s)"
