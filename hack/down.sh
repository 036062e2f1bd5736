#!/usr/bin/env bash
# Stop what hack/up.sh started (by the pids it recorded). State stays in the data dir;
# pass --purge to delete it too.
set -euo pipefail
data=${KONTENA_DATA_DIR:-$HOME/.kontena-local}

stop() { # name
  local pidfile="$data/$1.pid" pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $1 (pid $pid)"
  fi
  rm -f "$pidfile"
}

stop apiserver
stop etcd
if [ "${1:-}" = "--purge" ]; then
  rm -rf "$data"
  echo "removed $data"
fi
