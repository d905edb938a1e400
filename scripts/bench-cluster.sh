#!/usr/bin/env bash
# Runs rookery-bench against a local cluster: one redis-server and NODES rookery nodes (release
# builds) on loopback, then stops them all. Everything after the options goes to rookery-bench.
#
#   scripts/bench-cluster.sh [--nodes N] [--traces] [rookery-bench options...]
#
# --traces exports every trace to a local OTLP sink (scripts/otlp-sink.py). Node settings can be
# given as ROOKERY_* variables in the environment; ROOKERY_BIN runs another build of the node
# and ROOKERY_BENCH_BIN another build of the load generator (to compare two versions under the
# same load). Ports: Redis 16379, nodes 18081.., sink 14318.
set -euo pipefail
cd "$(dirname "$0")/.."

nodes=2
traces=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) nodes="$2"; shift 2 ;;
    --traces) traces=true; shift ;;
    *) break ;;
  esac
done

cargo build --release --quiet -p rookery -p rookery-bench
work="$(mktemp -d)"
pids=()
cleanup() {
  if [[ -n "${sink_pid:-}" ]]; then kill -TERM "$sink_pid" 2>/dev/null || true; fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -f "$work/sink.log" ]]; then tail -1 "$work/sink.log" >&2; fi
  rm -rf "$work"
}
trap cleanup EXIT

redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" &
pids+=($!)
redis_pid=$!
if $traces; then
  python3 scripts/otlp-sink.py 14318 >"$work/sink.log" &
  sink_pid=$!
  export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:14318
fi
sleep 0.5

urls=()
node_pids=()
for ((n = 1; n <= nodes; n++)); do
  port=$((18080 + n))
  ROOKERY_REDIS_URL=redis://127.0.0.1:16379 ROOKERY_NODE_ID="bench-node-$n" ROOKERY_BIND="127.0.0.1:$port" \
    ROOKERY_WORKERS="${ROOKERY_WORKERS:-1}" ROOKERY_RATE_PER_SEC="${ROOKERY_RATE_PER_SEC:-1000}" \
    ROOKERY_RATE_BURST="${ROOKERY_RATE_BURST:-1000}" RUST_LOG="${RUST_LOG:-warn}" \
    "${ROOKERY_BIN:-target/release/rookery}" >"$work/node-$n.log" 2>&1 &
  pids+=($!)
  node_pids+=($!)
  urls+=("ws://127.0.0.1:$port/ws")
done
for ((n = 1; n <= nodes; n++)); do
  until curl -sf "http://127.0.0.1:$((18080 + n))/readyz" >/dev/null; do
    if ! kill -0 "${node_pids[n - 1]}" 2>/dev/null; then
      echo "node $n exited before it was ready:" >&2
      tail -n 5 "$work/node-$n.log" >&2
      exit 1
    fi
    sleep 0.1
  done
done

redis_cpu_before=$(awk '{print $14 + $15}' "/proc/$redis_pid/stat")
status=0
"${ROOKERY_BENCH_BIN:-target/release/rookery-bench}" --pids "$(IFS=,; echo "${node_pids[*]}")" "$@" "${urls[@]}" || status=$?
redis_cpu_after=$(awk '{print $14 + $15}' "/proc/$redis_pid/stat")
for ((n = 1; n <= nodes; n++)); do
  echo "node $n gauges: $(curl -sf "http://127.0.0.1:$((18080 + n))/metrics" | grep -E '^rookery_(connections|rooms) ' | tr '\n' ' ')" >&2
done
echo "redis-server CPU: $(( (redis_cpu_after - redis_cpu_before) * 10 )) ms; commands:" >&2
redis-cli -p 16379 INFO commandstats | grep -E 'cmdstat_(fcall|xreadgroup|xack|evalsha|hset|xpending)' >&2 || true
exit "$status"
