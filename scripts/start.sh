#!/usr/bin/env bash
# Install into ./.venv, register the example jobs (once), and start the runner on defaults:
# database ./data/runner.sqlite, API on http://127.0.0.1:1937. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
JR=".venv/bin/jeeves-runner"
once() {  # run a definition command unless what it defines is already there
  out=$("$JR" "$@" 2>&1) || case "$out" in *"already exists"*) ;; *) echo "$out" >&2; exit 1;; esac
}
add() { once add-job "$@"; }
once add-queue --id pages --name "Pages to fetch" --dedup-expr '$.url' --max-attempts 3
add --id hello-python --name "Hello from Python" --schedule "*/10 * * * * *" \
    --script examples/hello.py --description "Prints, counts its runs in state"
add --id disk-report --name "Disk report" --schedule "*/30 * * * * *" \
    --script examples/disk_report.sh --description "Shell job using the state CLI"
add --id queue-producer --name "Queue producer" --schedule "*/20 * * * * *" \
    --script examples/queue_producer.py --description "Enqueues work"
add --id queue-consumer --name "Queue consumer" --schedule "*/15 * * * * *" \
    --script examples/queue_consumer.py --description "Claims and finishes work"
echo "Runner starting; try: curl -s localhost:1937/jobs"
exec "$JR" start "$@"
