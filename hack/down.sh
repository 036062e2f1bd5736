#!/usr/bin/env bash
# Stop what hack/up.sh started: the agents, the controllers (host processes by their pid
# files, containers by their names kontena-<grid>-<name>), kontena-apiserver and etcd, and
# remove the containers the agents made for the grid (label io.kontena.grid=<grid>, the
# example load balancer's too; the kontena/lb image stays). The
# machine's dockerd is left running (hack/dockerd.sh stop stops it). State stays in the
# data dir; pass --purge to delete it too.
# Settings: KONTENA_DATA_DIR (default ~/.kontena-local), KONTENA_GRID (default local),
# KONTENA_NODES (default 3; every agent-*.pid in the data dir is stopped anyway).
set -euo pipefail
data=${KONTENA_DATA_DIR:-$HOME/.kontena-local}
grid=${KONTENA_GRID:-local}

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
for f in "$data"/agent-*.pid; do
  [ -e "$f" ] || continue
  f=${f##*/}
  stop "${f%.pid}"
done
for name in scheduler ipam rescheduler health lbconfig; do
  stop "$name"
  if [ $docker_ok = 1 ] && docker inspect "kontena-$grid-$name" >/dev/null 2>&1; then
    # stop (SIGTERM) first: the controller gives its leader lease back on the way out
    docker stop -t 10 "kontena-$grid-$name" >/dev/null 2>&1 || true
    docker rm -f "kontena-$grid-$name" >/dev/null
    echo "stopped and removed container kontena-$grid-$name"
  fi
done
stop apiserver
stop etcd
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
if [ "${1:-}" = "--purge" ]; then
  rm -rf "$data"
  echo "removed $data"
fi
