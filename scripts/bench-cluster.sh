#!/usr/bin/env bash
# Runs rookery-bench against a local cluster: one redis-server and NODES rookery nodes (release
# builds) on loopback, then stops them all. Everything after the options goes to rookery-bench.
#
#   scripts/bench-cluster.sh [--nodes N] [--idle-node C] [--traces] [rookery-bench options...]
#
# --idle-node C starts one more node that the bench does not send through, holding C idle
# connections in rooms of their own (two per room), and reports its CPU: what a node pays for
# traffic in rooms where it has no member.
# --traces exports every trace to a local OTLP sink (scripts/otlp-sink.py). Node settings can be
# given as ROOKERY_* variables in the environment; ROOKERY_BIN runs another build of the node
# and ROOKERY_BENCH_BIN another build of the load generator (to compare two versions under the
# same load). Ports: Redis 16379, nodes 18081.., sink 14318.
set -euo pipefail
cd "$(dirname "$0")/.."

nodes=2
traces=false
idle_connections=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) nodes="$2"; shift 2 ;;
    --traces) traces=true; shift ;;
    --idle-node) idle_connections="$2"; shift 2 ;;
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
every_node_pid=()
all_nodes=$nodes
if ((idle_connections > 0)); then all_nodes=$((nodes + 1)); fi
for ((n = 1; n <= all_nodes; n++)); do
  port=$((18080 + n))
  ROOKERY_REDIS_URL=redis://127.0.0.1:16379 ROOKERY_NODE_ID="bench-node-$n" ROOKERY_BIND="127.0.0.1:$port" \
    ROOKERY_WORKERS="${ROOKERY_WORKERS:-1}" ROOKERY_RATE_PER_SEC="${ROOKERY_RATE_PER_SEC:-1000}" \
    ROOKERY_RATE_BURST="${ROOKERY_RATE_BURST:-1000}" RUST_LOG="${RUST_LOG:-warn}" \
    "${ROOKERY_BIN:-target/release/rookery}" >"$work/node-$n.log" 2>&1 &
  pids+=($!)
  every_node_pid+=($!)
  if ((n <= nodes)); then
    node_pids+=($!)
    urls+=("ws://127.0.0.1:$port/ws")
  else
    idle_pid=$!
  fi
done
for ((n = 1; n <= all_nodes; n++)); do
  until curl -sf "http://127.0.0.1:$((18080 + n))/readyz" >/dev/null; do
    if ! kill -0 "${every_node_pid[n - 1]}" 2>/dev/null; then
      echo "node $n exited before it was ready:" >&2
      tail -n 5 "$work/node-$n.log" >&2
      exit 1
    fi
    sleep 0.1
  done
done

if ((idle_connections > 0)); then
  # Held for longer than any run; stopped when the run ends.
  "${ROOKERY_BENCH_BIN:-target/release/rookery-bench}" --idle --connections "$idle_connections" \
    --rooms $(((idle_connections + 1) / 2)) --room-prefix idle- --duration 3600 \
    "ws://127.0.0.1:$((18080 + all_nodes))/ws" >"$work/idle-bench.log" 2>&1 &
  pids+=($!)
  until [[ $(curl -sf "http://127.0.0.1:$((18080 + all_nodes))/metrics" | awk '/^rookery_connections /{print $2}') == "$idle_connections" ]]; do
    sleep 0.2
  done
  idle_cpu_before=$(awk '{print $14 + $15}' "/proc/$idle_pid/stat")
fi
redis_cpu_before=$(awk '{print $14 + $15}' "/proc/$redis_pid/stat")
status=0
"${ROOKERY_BENCH_BIN:-target/release/rookery-bench}" --pids "$(IFS=,; echo "${node_pids[*]}")" "$@" "${urls[@]}" || status=$?
redis_cpu_after=$(awk '{print $14 + $15}' "/proc/$redis_pid/stat")
if ((idle_connections > 0)); then
  idle_cpu_after=$(awk '{print $14 + $15}' "/proc/$idle_pid/stat")
  echo "idle node ($idle_connections connections in rooms of their own): CPU $(( (idle_cpu_after - idle_cpu_before) * 10 )) ms during the run," \
    "bus entries read: $(curl -sf "http://127.0.0.1:$((18080 + all_nodes))/metrics" | awk '/^rookery_bus_events_total/{n += $2} END {print n + 0}')" >&2
fi
for ((n = 1; n <= all_nodes; n++)); do
  echo "node $n gauges: $(curl -sf "http://127.0.0.1:$((18080 + n))/metrics" | grep -E '^rookery_(connections|rooms) ' | tr '\n' ' ')" >&2
done
echo "redis-server CPU: $(( (redis_cpu_after - redis_cpu_before) * 10 )) ms; commands:" >&2
redis-cli -p 16379 INFO commandstats | grep -E 'cmdstat_(fcall|fcall_ro|xreadgroup|xack|evalsha|hset|xpending)' >&2 || true
exit "$status"
