#!/usr/bin/env bash
# Runs rookery-bench against a local cluster: one redis-server and NODES rookery nodes (release
# builds) on loopback, then stops them all. Everything after the options goes to rookery-bench.
#
#   scripts/bench-cluster.sh [--nodes N] [--idle-node C] [--redis-cluster] [--traces] [rookery-bench options...]
#
# --redis-cluster runs the nodes on a Redis Cluster of three primaries (ports 16379-16381, no
# replicas) instead of one redis-server, and reports each primary's CPU and their commands.
# --idle-node C starts one more node that the bench does not send through, holding C idle
# connections in rooms of their own (two per room), and reports its CPU: what a node pays for
# traffic in rooms where it has no member.
# --traces exports every trace to a local OTLP sink (scripts/otlp-sink.py). Node settings can be
# given as ROOKERY_* variables in the environment; ROOKERY_BIN runs another build of the node
# and ROOKERY_BENCH_BIN another build of the load generator (to compare two versions under the
# same load). Ports: Redis 16379 (16379-16381 with --redis-cluster), nodes 18081.., sink 14318.
set -euo pipefail
cd "$(dirname "$0")/.."

nodes=2
traces=false
idle_connections=0
redis_cluster=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --redis-cluster) redis_cluster=true; shift ;;
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

redis_ports=(16379)
if $redis_cluster; then redis_ports=(16379 16380 16381); fi
redis_pids=()
for port in "${redis_ports[@]}"; do
  mkdir -p "$work/redis-$port"
  cluster_args=()
  if $redis_cluster; then
    cluster_args=(--cluster-enabled yes --cluster-config-file nodes.conf --cluster-port $((port + 100)))
  fi
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/redis-$port" \
    "${cluster_args[@]}" >"$work/redis-$port.log" &
  pids+=($!)
  redis_pids+=($!)
done
for port in "${redis_ports[@]}"; do
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
done
redis_env=(ROOKERY_REDIS_URL=redis://127.0.0.1:16379)
if $redis_cluster; then
  redis-cli --cluster create 127.0.0.1:16379 127.0.0.1:16380 127.0.0.1:16381 --cluster-replicas 0 --cluster-yes >/dev/null
  for port in "${redis_ports[@]}"; do
    until redis-cli -p "$port" cluster info | grep -q cluster_state:ok; do sleep 0.1; done
  done
  redis_env=(ROOKERY_REDIS_CLUSTER_NODES=redis://127.0.0.1:16379,redis://127.0.0.1:16380,redis://127.0.0.1:16381)
fi
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
  env "${redis_env[@]}" ROOKERY_NODE_ID="bench-node-$n" ROOKERY_BIND="127.0.0.1:$port" \
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
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
redis_cpu_before=()
for pid in "${redis_pids[@]}"; do redis_cpu_before+=("$(cpu_of "$pid")"); done
status=0
"${ROOKERY_BENCH_BIN:-target/release/rookery-bench}" --pids "$(IFS=,; echo "${node_pids[*]}")" "$@" "${urls[@]}" || status=$?
redis_cpu_after=()
for pid in "${redis_pids[@]}"; do redis_cpu_after+=("$(cpu_of "$pid")"); done
if ((idle_connections > 0)); then
  idle_cpu_after=$(awk '{print $14 + $15}' "/proc/$idle_pid/stat")
  echo "idle node ($idle_connections connections in rooms of their own): CPU $(( (idle_cpu_after - idle_cpu_before) * 10 )) ms during the run," \
    "bus entries read: $(curl -sf "http://127.0.0.1:$((18080 + all_nodes))/metrics" | awk '/^rookery_bus_entries_read_total /{n += $2} END {print n + 0}')" >&2
fi
for ((n = 1; n <= all_nodes; n++)); do
  echo "node $n gauges: $(curl -sf "http://127.0.0.1:$((18080 + n))/metrics" | grep -E '^rookery_(connections|rooms) ' | tr '\n' ' ')" >&2
done
total=0
for i in "${!redis_pids[@]}"; do
  ms=$(( (redis_cpu_after[i] - redis_cpu_before[i]) * 10 ))
  total=$((total + ms))
  if $redis_cluster; then echo "redis-server ${redis_ports[i]} CPU: $ms ms" >&2; fi
done
echo "redis-server CPU: $total ms; commands:" >&2
for port in "${redis_ports[@]}"; do redis-cli -p "$port" INFO commandstats; done |
  grep -E 'cmdstat_(fcall|fcall_ro|xreadgroup|xack|evalsha|hset|xpending|wait)' | tr -d '\r' |
  awk -F'[:=,]' '{calls[$1] += $3; usec[$1] += $5} END {for (c in calls) printf "%s:calls=%d,usec=%d,usec_per_call=%.2f\n", c, calls[c], usec[c], usec[c] / calls[c]}' |
  sort >&2 || true
exit "$status"
