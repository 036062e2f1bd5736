#!/usr/bin/env bash
# Stop what hack/up.sh started: the agents, the controllers (host processes by their pid
# files, containers by their names kontena-<grid>-<name>), kontena-apiserver and etcd, and
# remove the containers the agents made for the grid (label io.kontena.grid=<grid>, the
# example load balancer's too; the kontena/lb image stays). After hack/up.sh --hosts it also
# removes the hosts (hack/hosts.sh down --prefix <the prefix up.sh used>: their dockerds,
# containers, network namespaces, cgroups and data roots) and the agents' DNS run directories
# /run/kontena/dns/<grid>. The machine's dockerd is left running (hack/dockerd.sh stop stops
# it). State (etcd, logs) stays in the data dir; pass --purge to delete it too.
# Settings: KONTENA_DATA_DIR (default ~/.kontena-local), KONTENA_GRID (default local),
# KONTENA_NODES (default 3; every agent-*.pid in the data dir is stopped anyway),
# KONTENA_HOSTS_PREFIX (default: what up.sh --hosts wrote in the data dir, else kup).
set -euo pipefail
data=${KONTENA_DATA_DIR:-$HOME/.kontena-local}
grid=${KONTENA_GRID:-local}
here=$(cd "$(dirname "$0")" && pwd)
purge=0
for a in "$@"; do
  case "$a" in
    --purge) purge=1 ;;
    -h | --help)
      sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "down.sh: unknown option '$a' (--purge, --help)" >&2
      exit 2
      ;;
  esac
done
[ -d "$data" ] && data=$(cd "$data" && pwd -P) # as up.sh spells it
hprefix=${KONTENA_HOSTS_PREFIX:-$(cat "$data/hosts-prefix" 2>/dev/null || echo kup)}

stop() { # pid-file-name
  local pidfile="$data/$1.pid" pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid"
      echo "killed $1 (pid $pid): no exit 10 s after SIGTERM"
    else
      echo "stopped $1 (pid $pid)"
    fi
  fi
  rm -f "$pidfile"
}

docker_ok=0
if command -v docker >/dev/null && timeout 5 docker version >/dev/null 2>&1; then
  docker_ok=1
fi

# Agents first: a stopped agent leaves its containers alone, nothing restarts them.
# Each group stops in parallel.
for f in "$data"/agent-*.pid; do
  [ -e "$f" ] || continue
  f=${f##*/}
  stop "${f%.pid}" &
done
wait
for name in scheduler ipam rescheduler health lbconfig; do
  stop "$name" &
done
wait
for name in scheduler ipam rescheduler health lbconfig; do
  if [ $docker_ok = 1 ] && docker inspect "kontena-$grid-$name" >/dev/null 2>&1; then
    # stop (SIGTERM) first: the controller gives its leader lease back on the way out
    docker stop -t 10 "kontena-$grid-$name" >/dev/null 2>&1 || true
    docker rm -f "kontena-$grid-$name" >/dev/null
    echo "stopped and removed container kontena-$grid-$name"
  fi
done
stop apiserver
stop etcd
# the hosts of up.sh --hosts, with every container and process in them
# (only this data dir's: up.sh wrote their owner next to their state)
owner=$(cat "/run/kontena-hosts/$hprefix/kontena-up-data-dir" 2>/dev/null || true)
if [ -n "$owner" ] && [ "$owner" != "$data" ]; then
  echo "left the hosts $hprefix-h* alone: they belong to the platform in $owner"
elif [ -f "$data/hosts-prefix" ] || [ "$owner" = "$data" ]; then
  "$here/hosts.sh" down --prefix "$hprefix"
  rm -f "$data/hosts-prefix"
  echo "removed the hosts $hprefix-h*"
  # the DNS run directories of their agents (--overlay); the hosts' dnsmasq went with them
  rm -rf "/run/kontena/dns/$grid"
fi
if [ $docker_ok = 1 ]; then
  ids=$(docker ps -aq --filter "label=io.kontena.grid=$grid")
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086
    docker rm -f -v $ids >/dev/null
    echo "removed $(wc -w <<<"$ids") containers of grid $grid"
  fi
else
  echo "down.sh: Docker does not answer; containers of grid $grid (label io.kontena.grid=$grid) were not removed" >&2
fi
if [ $purge = 1 ]; then
  rm -rf "$data"
  echo "removed $data"
fi
