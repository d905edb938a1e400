#!/bin/sh
# Makes a Redis Cluster of redis-servers started with `--cluster-enabled yes`, and waits until
# every one of them reports `cluster_state:ok`. Safe to run again: on fresh servers (no slot
# assigned anywhere) it runs `redis-cli --cluster create ... --cluster-replicas 1`; on servers
# that already form a cluster it only introduces them to each other again at their current
# addresses (CLUSTER MEET), which repairs a cluster whose containers came back on new IPs and
# changes nothing otherwise.
#
#   deploy/redis-cluster/create.sh HOST:PORT HOST:PORT HOST:PORT HOST:PORT HOST:PORT HOST:PORT
#
# Six or more servers (half primaries, half replicas). Host names are resolved to IPv4 addresses
# here, since CLUSTER MEET takes addresses only. Used by the `redis-cluster-init` service of
# docker-compose.yml (profile `cluster`) and by `scripts/local-cluster.sh --redis-cluster`.
# POSIX sh: the redis:7 image has no bash. REDISCLI_AUTH is honoured as by redis-cli.
set -eu

say() { echo "redis-cluster: $*" >&2; }

if [ "$#" -lt 6 ] || [ $(($# % 2)) -ne 0 ]; then
  say "usage: $0 HOST:PORT ... (an even number of servers, at least six)"
  exit 2
fi

# The servers as IP:PORT, in the order given.
nodes=""
for node in "$@"; do
  host=${node%:*}
  port=${node##*:}
  ip=""
  for _ in $(seq 1 60); do
    ip=$(getent ahostsv4 "$host" | awk 'NR == 1 { print $1 }') || ip=""
    [ -n "$ip" ] && break
    sleep 1
  done
  [ -n "$ip" ] || { say "cannot resolve $host"; exit 1; }
  nodes="$nodes $ip:$port"
done

cli() {
  addr=$1
  shift
  redis-cli -h "${addr%:*}" -p "${addr##*:}" "$@"
}

# `cluster info` field $2 of the server at $1.
info_field() {
  cli "$1" cluster info 2>/dev/null | tr -d '\r' | awk -F: -v key="$2" '$1 == key { print $2 }'
}

for addr in $nodes; do
  answered=false
  for _ in $(seq 1 300); do
    if [ "$(cli "$addr" ping 2>/dev/null)" = PONG ]; then
      answered=true
      break
    fi
    sleep 0.1
  done
  [ "$answered" = true ] || { say "$addr does not answer"; exit 1; }
  [ "$(cli "$addr" info cluster | tr -d '\r' | grep '^cluster_enabled:')" = cluster_enabled:1 ] ||
    { say "$addr does not run with --cluster-enabled yes"; exit 1; }
done

assigned=0
for addr in $nodes; do
  slots=$(info_field "$addr" cluster_slots_assigned)
  assigned=$((assigned + ${slots:-0}))
done

if [ "$assigned" -eq 0 ]; then
  say "creating the cluster on$nodes"
  # shellcheck disable=SC2086 # one argument per server
  timeout 60 redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes >/dev/null ||
    { say "redis-cli --cluster create failed"; exit 1; }
else
  say "the servers already form a cluster: introducing them at their current addresses"
  for addr in $nodes; do
    for other in $nodes; do
      [ "$addr" = "$other" ] || cli "$addr" cluster meet "${other%:*}" "${other##*:}" >/dev/null
    done
  done
fi

# Whether the server at $1 has its part: a primary serves slots, a replica has synced with its
# primary. (Right after `--cluster create` a replica-to-be is an empty primary for a moment.)
has_its_part() {
  case "$(cli "$1" role | head -n 1 | tr -d '\r')" in
    master) cli "$1" cluster nodes | awk '$3 ~ /myself/ { found = NF > 8 } END { exit !found }' ;;
    slave) cli "$1" info replication | tr -d '\r' | grep -qx 'master_link_status:up' ;;
    *) return 1 ;;
  esac
}

# Every server sees every slot served, and has its part.
for addr in $nodes; do
  ready=false
  for _ in $(seq 1 600); do
    if [ "$(info_field "$addr" cluster_state)" = ok ] && has_its_part "$addr"; then
      ready=true
      break
    fi
    sleep 0.1
  done
  [ "$ready" = true ] || { say "$addr is not a primary with slots or a synced replica with cluster_state:ok after 60 s"; exit 1; }
done
say "cluster_state:ok on$nodes"
