#!/usr/bin/env bash
# Start, stop or check the machine's Docker Engine for the agent and its tests, on hosts
# without systemd (CI containers, this VM).
#   hack/dockerd.sh start    start dockerd in the background unless the socket already
#                            answers /_ping; wait (bounded) until it does
#   hack/dockerd.sh stop     stop the dockerd THIS script started (pid file); a daemon
#                            started by anything else is left alone
#   hack/dockerd.sh status   say whether the socket answers and who started the daemon
# Exit status: 0 on success (status: 0 = answering, 1 = not answering).
#
# Settings (environment):
#   DOCKER_SOCK           socket path                   (default /var/run/docker.sock)
#   KONTENA_DOCKERD_LOG   daemon log                    (default /var/log/kontena-dockerd.log)
#   KONTENA_DOCKERD_PID   pid file of the daemon we started (default /run/kontena-dockerd.pid)
#   KONTENA_DOCKERD_WAIT  seconds to wait for /_ping    (default 60)
#
# Pitfalls this handles (see docs/internals/docker.md and the multihost study §1.2):
# - the daemon must not inherit the caller's stdout/stderr: test fixtures capture those
#   through pipes and would wait for EOF forever; it runs in its own session (setsid) so a
#   test runner's process-group kill does not take it down;
# - several test binaries may call `start` at once: one flock serialises them;
# - a stale docker.pid or socket left by a killed daemon makes dockerd refuse to start or
#   makes ping fail: the pid file is checked, a dead daemon's files are removed;
# - dockerd needs the cgroup hierarchies mounted (v1 here, under /sys/fs/cgroup); we check
#   and say so instead of letting dockerd fail with "Devices cgroup isn't mounted";
# - a /run/containerd/containerd.sock from a foreign containerd would be used instead of
#   dockerd's own managed containerd; we warn about it.
set -euo pipefail

sock=${DOCKER_SOCK:-/var/run/docker.sock}
log=${KONTENA_DOCKERD_LOG:-/var/log/kontena-dockerd.log}
pidfile=${KONTENA_DOCKERD_PID:-/run/kontena-dockerd.pid}
wait_s=${KONTENA_DOCKERD_WAIT:-60}
lock=${pidfile%.pid}.lock

say() { echo "dockerd.sh: $*" >&2; }

answers() {
  [ -S "$sock" ] || return 1
  [ "$(curl -s --max-time 3 --unix-socket "$sock" http://localhost/_ping 2>/dev/null)" = OK ]
}

# The pid recorded in our pid file, if that process is still a dockerd; empty otherwise.
our_pid() {
  local pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  case "$pid" in '' | *[!0-9]*) return 0 ;; esac
  if [ "$(cat /proc/"$pid"/comm 2>/dev/null || true)" = dockerd ]; then
    echo "$pid"
  fi
}

# Any running dockerd listening on our socket that we did not start (we cannot tell which
# socket a foreign daemon uses; any dockerd at all is enough to refuse starting a second).
foreign_dockerd() {
  local p ours
  ours=$(our_pid)
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = "$ours" ] && continue
    [ "$(cat /proc/"$p"/comm 2>/dev/null || true)" = dockerd ] && { echo "$p"; return 0; }
  done
  return 0
}

wait_ready() { # pid
  local pid=$1 i
  for ((i = 0; i < wait_s * 10; i++)); do
    if answers; then return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      say "dockerd (pid $pid) exited during start-up; last lines of $log:"
      tail -n 8 "$log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  say "dockerd did not answer on $sock within ${wait_s}s; last lines of $log:"
  tail -n 8 "$log" >&2 || true
  return 1
}

preflight() {
  if [ "$(id -u)" -ne 0 ]; then
    say "starting dockerd needs root"
    return 1
  fi
  if ! command -v dockerd >/dev/null; then
    say "dockerd not installed (hack/install-deps.sh installs docker.io)"
    return 1
  fi
  if ! grep -qE '^[^ ]+ /sys/fs/cgroup[^ ]* cgroup2? ' /proc/mounts; then
    say "no cgroup hierarchy mounted under /sys/fs/cgroup: dockerd cannot run containers"
    return 1
  fi
  if [ -S /run/containerd/containerd.sock ]; then
    say "warning: /run/containerd/containerd.sock exists; dockerd will use that containerd"
  fi
}

do_start() {
  local pid
  exec 9>"$lock"
  if ! flock -w "$((wait_s + 30))" 9; then
    say "timed out waiting for the lock $lock"
    return 1
  fi
  if answers; then
    say "dockerd already answers on $sock"
    return 0
  fi
  pid=$(our_pid)
  if [ -n "$pid" ]; then
    say "dockerd (pid $pid, ours) is running but $sock does not answer yet; waiting"
    wait_ready "$pid"
    return
  fi
  pid=$(foreign_dockerd)
  if [ -n "$pid" ]; then
    say "a dockerd we did not start (pid $pid) is running but $sock does not answer; waiting"
    wait_ready "$pid"
    return
  fi
  preflight
  # A daemon killed hard leaves its socket and pid file behind; dockerd refuses to start
  # while /var/run/docker.pid names a live process, and a stale socket confuses `answers`.
  rm -f "$pidfile"
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  [ -S "$sock" ] && rm -f "$sock"
  mkdir -p "$(dirname "$log")" "$(dirname "$pidfile")"
  echo "=== $(date -u +%FT%TZ) hack/dockerd.sh start" >>"$log"
  # setsid: own session, so a test runner killing its process group leaves it running;
  # every standard fd goes to the log or /dev/null (see pitfalls above); fd 9 (the lock)
  # is closed so the daemon does not keep the lock held forever.
  setsid dockerd -H "unix://$sock" --pidfile /var/run/docker.pid \
    </dev/null >>"$log" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$pidfile"
  say "started dockerd (pid $pid), log $log"
  wait_ready "$pid"
}

do_stop() {
  local pid children i
  exec 9>"$lock"
  flock -w 120 9 || { say "timed out waiting for the lock $lock"; return 1; }
  pid=$(our_pid)
  if [ -z "$pid" ]; then
    rm -f "$pidfile"
    if answers; then
      say "dockerd on $sock was not started by this script: left alone"
    else
      say "no dockerd of ours is running"
    fi
    return 0
  fi
  # Its managed containerd is a child; remember it in case we have to SIGKILL the parent.
  children=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
  kill -TERM "$pid"
  # dockerd stops each running container with its own stop timeout (10 s by default), so
  # allow for a few of those before forcing it.
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "dockerd (pid $pid) did not exit within 60 s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for c in $children; do
      [ "$(cat /proc/"$c"/comm 2>/dev/null || true)" = containerd ] && kill -KILL "$c" 2>/dev/null
    done
  fi
  rm -f "$pidfile"
  say "stopped dockerd (pid $pid)"
}

do_status() {
  local pid
  pid=$(our_pid)
  if answers; then
    if [ -n "$pid" ]; then
      echo "dockerd answers on $sock (pid $pid, started by hack/dockerd.sh)"
    else
      echo "dockerd answers on $sock (not started by hack/dockerd.sh)"
    fi
    return 0
  fi
  if [ -n "$pid" ]; then
    echo "dockerd (pid $pid, ours) is running but $sock does not answer"
  else
    echo "dockerd does not answer on $sock"
  fi
  return 1
}

case "${1:-}" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
