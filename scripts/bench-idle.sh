#!/usr/bin/env bash
# Idle connections on one node: the node's RSS per joined idle connection (heartbeats on).
#
#   scripts/bench-idle.sh [--memory] CONNECTIONS [ROOMS] [RAMP]
#
# Starts a redis-server (port BENCH_REDIS_PORT, 16392) and one release-built node (port
# BENCH_NODE_PORT, 18192; the in-memory engine with --memory; ROOKERY_BIN and ROOKERY_BENCH_BIN
# run other builds), then opens CONNECTIONS idle connections spread over ROOMS rooms (default
# CONNECTIONS/100) at RAMP per second (default 500), with one rookery-bench process per 9,500
# connections: a process here may hold at most 20,000 open files. Once all are connected and
# have been held for two heartbeats, it prints the node's RSS before and after and per
# connection, then stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

engine=redis
if [[ "${1:-}" == "--memory" ]]; then engine=memory; shift; fi
connections="${1:?usage: scripts/bench-idle.sh [--memory] CONNECTIONS [ROOMS] [RAMP]}"
rooms="${2:-$(( (connections + 99) / 100 ))}"
ramp="${3:-500}"
per_process="${BENCH_PER_PROCESS:-9500}"
heartbeat_ms="${ROOKERY_HEARTBEAT_MS:-5000}"

node_port="${BENCH_NODE_PORT:-18192}"
redis_port="${BENCH_REDIS_PORT:-16392}"
node_bin="${ROOKERY_BIN:-target/release/rookery}"
bench_bin="${ROOKERY_BENCH_BIN:-target/release/rookery-bench}"
if [[ -z "${ROOKERY_BIN:-}" || -z "${ROOKERY_BENCH_BIN:-}" ]]; then
  cargo build --release --quiet -p rookery -p rookery-bench
fi
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

node_env=(ROOKERY_BIND=127.0.0.1:$node_port ROOKERY_WORKERS=1 RUST_LOG=warn ROOKERY_HEARTBEAT_MS="$heartbeat_ms"
  ROOKERY_MAX_CONNECTIONS=100000)
if [[ "$engine" == redis ]]; then
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" &
  pids+=($!)
  sleep 0.5
  node_env+=(ROOKERY_REDIS_URL=redis://127.0.0.1:$redis_port)
fi
env "${node_env[@]}" "$node_bin" >"$work/node.log" 2>&1 &
node=$!
pids+=($node)
until curl -sf http://127.0.0.1:$node_port/readyz >/dev/null; do sleep 0.1; done
sleep 1

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$node/status"; }
gauge() { curl -sf http://127.0.0.1:$node_port/metrics | awk -v name="$1" '$1 == name {print $2}'; }
before=$(rss_kib)

# Each process ramps at its share of RAMP, so all finish connecting together, then holds its
# connections long enough for the reading below.
processes=$(( (connections + per_process - 1) / per_process ))
hold=$(( connections / ramp + 2 * heartbeat_ms / 1000 + 15 ))
for ((p = 0; p < processes; p++)); do
  first=$(( p * per_process ))
  count=$(( connections - first < per_process ? connections - first : per_process ))
  process_rooms=$(( rooms * count / connections ))
  (( process_rooms > 0 )) || process_rooms=1
  "$bench_bin" --idle --connections "$count" --first-connection "$first" \
    --rooms "$process_rooms" --room-prefix "idle-$p-" --ramp "$(( ramp * count / connections > 0 ? ramp * count / connections : 1 ))" --duration "$hold" \
    --drain 1 ws://127.0.0.1:$node_port/ws >"$work/bench-$p.log" 2>&1 &
  pids+=($!)
done

deadline=$(( SECONDS + connections / (ramp > 0 ? ramp : 1) + 120 ))
until [[ "$(gauge rookery_connections)" == "$connections" ]]; do
  if (( SECONDS > deadline )); then
    echo "only $(gauge rookery_connections) of $connections connected" >&2
    grep -h -E "^connected|^connections|failed x" "$work"/bench-*.log >&2
    exit 1
  fi
  if (( SECONDS % 10 == 0 )); then echo "  $(gauge rookery_connections) connected" >&2; fi
  sleep 1
done
sleep $(( 2 * heartbeat_ms / 1000 + 1 ))
after=$(rss_kib)
held=$(gauge rookery_connections)
echo "engine       $engine, $rooms rooms, ramp $ramp/s, heartbeat ${heartbeat_ms} ms, $processes bench processes"
echo "connections  $held held"
echo "node RSS     $(( before / 1024 )) -> $(( after / 1024 )) MiB ($before -> $after KiB)"
awk -v b="$before" -v a="$after" -v n="$held" 'BEGIN { printf "per conn     %.1f KiB\n", (a - b) / n }'
