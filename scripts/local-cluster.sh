#!/usr/bin/env bash
# The docker compose topology without Docker: redis-server, three rookery nodes and the same
# nginx load balancer config (deploy/nginx), natively on loopback. Runs in the foreground until
# interrupted, then stops everything.
#
#   scripts/local-cluster.sh              # balancer on 127.0.0.1:8080, nodes on 8081-8083
#   LB_PORT=9000 NODE_BASE_PORT=9000 REDIS_PORT=16400 scripts/local-cluster.sh
#   scripts/local-cluster.sh --redis-cluster
#
# With --redis-cluster, a Redis Cluster of three primaries with a replica each (six
# redis-servers on REDIS_PORT and the five ports above it, made by
# deploy/redis-cluster/create.sh) takes the place of the one redis-server, and the nodes get
# ROOKERY_REDIS_CLUSTER_NODES (the primaries) instead of ROOKERY_REDIS_URL.
#
# ROOKERY_BIN picks the binary (default: a release build made here). Prints a line starting
# with `ready:` once the balancer and every node answer.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
redis_cluster=false
for arg in "$@"; do
  case "$arg" in
    --redis-cluster) redis_cluster=true ;;
    *) echo "local-cluster: unknown argument $arg (usage: scripts/local-cluster.sh [--redis-cluster])" >&2; exit 2 ;;
  esac
done
lb_port="${LB_PORT:-8080}"
node_base="${NODE_BASE_PORT:-8080}"
redis_port="${REDIS_PORT:-6379}"
bin="${ROOKERY_BIN:-}"
if [[ -z "$bin" ]]; then
  (cd "$repo" && cargo build --release --quiet --bin rookery)
  bin="$repo/target/release/rookery"
fi
for tool in redis-server nginx; do
  command -v "$tool" >/dev/null || { echo "local-cluster: $tool is missing (apt-get install -y redis-server nginx)" >&2; exit 1; }
done

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

if [[ $redis_cluster == true ]]; then
  cluster=()
  for port in $(seq "$redis_port" $((redis_port + 5))); do
    mkdir "$work/redis-$port"
    redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 2000 --repl-diskless-sync-delay 0 --appendonly yes --dir "$work/redis-$port" \
      >"$work/redis-$port.log" &
    pids+=($!)
    cluster+=("127.0.0.1:$port")
  done
  # Creates the cluster, and waits for cluster_state:ok and every replica in sync.
  sh "$repo/deploy/redis-cluster/create.sh" "${cluster[@]}"
  seeds=""
  for server in "${cluster[@]}"; do
    if [[ $(redis-cli -p "${server##*:}" role | head -n 1 | tr -d '\r') == master ]]; then
      seeds+="${seeds:+,}redis://$server"
    fi
  done
  # The variable that names the other Redis is dropped from the nodes' environment: a node
  # given both refuses to start.
  redis_env=(-u ROOKERY_REDIS_URL "ROOKERY_REDIS_CLUSTER_NODES=$seeds")
  redis_said="redis cluster on $redis_port-$((redis_port + 5)), primaries $seeds"
else
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" &
  pids+=($!)
  until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.05; done
  redis_env=(-u ROOKERY_REDIS_CLUSTER_NODES "ROOKERY_REDIS_URL=redis://127.0.0.1:$redis_port")
  redis_said="redis on $redis_port"
fi

upstream=""
for n in 1 2 3; do
  port=$((node_base + n))
  env "${redis_env[@]}" ROOKERY_NODE_ID="node-$n" ROOKERY_BIND="127.0.0.1:$port" \
    ROOKERY_LOG_FORMAT="${ROOKERY_LOG_FORMAT:-json}" "$bin" >"$work/node-$n.log" 2>&1 &
  pids+=($!)
  upstream+="        server 127.0.0.1:$port;"$'\n'
done

mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/client;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    include $repo/deploy/nginx/http.conf;
    upstream rookery {
$upstream    }
    server {
        listen 127.0.0.1:$lb_port;
        include $repo/deploy/nginx/proxy.conf;
    }
}
CONF
nginx -t -q -p "$work/nginx" -c "$work/nginx/nginx.conf"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)

for port in $((node_base + 1)) $((node_base + 2)) $((node_base + 3)) "$lb_port"; do
  for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
  done
done
echo "ready: http://127.0.0.1:$lb_port/ (nodes on $((node_base + 1))-$((node_base + 3)), $redis_said, logs in $work)"
wait
