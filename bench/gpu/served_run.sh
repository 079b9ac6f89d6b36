#!/usr/bin/env bash
# The fleet's path on one host: `dipaco serve --grid` and two `dipaco work` processes (the
# dipaco-worker service's code) training on this host's GPU over gRPC on loopback, the way a
# GPU fleet runs, until the run finishes. Prints the time, the workers' task lines and the
# coordinator's worker table. run.sh calls it on a bundle with the CLI; it also runs from a
# build tree on the CPU (BACKEND=cpu) to check the mechanics.
#
#   bash bench/gpu/served_run.sh DIPACO_BINARY WORK_DIR [OUTER_STEPS]
#
# WORK_DIR holds resources/runs/brown-main.toml and data/brown (tokens and tokenizer), as the
# repository after `bash tools/bootstrap.sh main` does. Environment: BACKEND (default cuda),
# BASE_STEPS (default the grid's), TIMEOUT_S (default 300). Exit status 0 when the run finished.
set -uo pipefail
dipaco="$(realpath "$1")"
work="$(realpath "$2")"
outer_steps="${3:-4}"
backend="${BACKEND:-cuda}"
timeout_s="${TIMEOUT_S:-300}"
tmp="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  pids=()
}
trap cleanup EXIT

sed -e "s|^outer_steps = .*|outer_steps = ${outer_steps}|" -e "s|^dir = .*|dir = \"$tmp/run\"|" \
  "$work/resources/runs/brown-main.toml" > "$tmp/grid.toml"
if [[ -n "${BASE_STEPS:-}" ]]; then
  sed -i "s|^base_steps = [0-9]*|base_steps = ${BASE_STEPS}|" "$tmp/grid.toml"
fi
head -c 24 /dev/urandom | base64 > "$tmp/worker.token"
head -c 24 /dev/urandom | base64 > "$tmp/operator.token"

SECONDS=0
(cd "$work" && exec "$dipaco" serve --grid "$tmp/grid.toml" --db "$tmp/coordinator.db" \
  --address 127.0.0.1:0 --port-file "$tmp/port" --insecure \
  --worker-token-file "$tmp/worker.token" --operator-token-file "$tmp/operator.token") \
  > "$tmp/serve.log" 2>&1 &
pids+=($!)
until [[ -s "$tmp/port" ]]; do
  if ! kill -0 "${pids[0]}" 2>/dev/null || ((SECONDS > timeout_s)); then
    echo "served run: dipaco serve did not start listening"; cat "$tmp/serve.log"; exit 1
  fi
  sleep 0.5
done
address="127.0.0.1:$(cat "$tmp/port")"
echo "served run: dipaco serve planned the grid and listens on $address after ${SECONDS} s"

for i in 0 1; do
  cat > "$tmp/worker$i.toml" <<EOF
[coordinator]
address = "$address"
token_file = "$tmp/worker.token"
tls = false
[worker]
id = "served-run-$i"
cache_dir = "$tmp/cache$i"
backend = "$backend"
devices = []
EOF
  [[ "$backend" == cuda* ]] && sed -i 's|^devices = \[\]|devices = [0]|' "$tmp/worker$i.toml"
  "$dipaco" work --config "$tmp/worker$i.toml" > "$tmp/worker$i.log" 2>&1 &
  pids+=($!)
done

# Finished when the coordinator's database says so (SQLite through Python's standard library).
state=""
while ((SECONDS <= timeout_s)); do
  state=$(python3 -c "import sqlite3,sys; c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro',uri=True,timeout=5); print(c.execute('select state from runs order by id desc limit 1').fetchone()[0])" "$tmp/coordinator.db" 2>/dev/null)
  [[ "$state" == "finished" ]] && break
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "served run: a process exited early"; state="died"; break 2; }
  done
  sleep 1
done
echo "served run: state '$state' after ${SECONDS} s ($outer_steps outer steps, backend $backend)"
"$dipaco" ctl workers --address "$address" --insecure --token-file "$tmp/operator.token"
cleanup  # SIGTERM: the workers stop cleanly and log their totals
for i in 0 1; do
  echo "-- worker $i"
  tail -n 14 "$tmp/worker$i.log"
done
echo "-- dipaco serve"
tail -n 12 "$tmp/serve.log"
echo "served run: files in $tmp"
[[ "$state" == "finished" ]]
