#!/usr/bin/env bash
# Several Docker "hosts" on this one machine, for multi-host tests (issue 6).
#
#   hack/hosts.sh up N [--prefix P] [--subnet K]   make hosts 1..N (idempotent)
#   hack/hosts.sh down [--prefix P]                remove everything named P (even after a crash)
#   hack/hosts.sh status [--prefix P]              what exists, whether each dockerd answers
#
# Each host I is a network namespace P-hI with its own dockerd (own --config-file, data-root,
# exec-root, pidfile, socket, --bip, cgroup parent, containerd, hostname P-hI in its own UTS ns)
# and the test image kontena-test/busybox:latest imported (hack/test-image.sh with its
# DOCKER_SOCK). The hosts share an underlay bridge living in its own namespace P-sw, which also
# routes between the underlay and the root netns over one veth pair (P-up in the root netns):
#
#   underlay        10.250.K.0/24   switch br0 10.250.K.1, host I = 10.250.K.(10+I)   (I <= 200)
#   master link     10.251.K.0/30   root end (P-up) 10.251.K.1 = the MASTER address,
#                                   switch end 10.251.K.2; root route 10.250.K.0/24 via .2
#   docker0 of I    172.18.I.1/24   (inside host I only)
#
# Processes in the root netns reach every host's underlay address; processes in a host reach
# the other hosts and the master address, and nothing else (the switch has no default route).
# Nothing is added to the root netns firewall: host -> master traffic ends in the root netns
# (INPUT, policy checked by `up`), it is never forwarded by it.
#
# `up` prints on stdout, one line each (the C fixture tests/support/hosts.c parses them):
#   master 10.251.K.1
#   host I P-hI 10.250.K.(10+I) /run/kontena-hosts/P/hI/docker.sock
# Progress and timings go to stderr. Exit status 0 on success.
#
# State: /run/kontena-hosts/P/ (sockets, pid files, logs; the lock P.lock beside it) and
# /var/lib/kontena-hosts/P/ (data roots). Cgroups: /sys/fs/cgroup/<hierarchy>/P-hI.
# Pitfalls handled: docs/internals/multihost.md and the study in
# /work/shared/reference/multihost/README.md §1.2.
set -euo pipefail

PFX=kh
K=0
cmd=${1:-}
[ $# -gt 0 ] && shift
n=
if [ "$cmd" = up ]; then
  n=${1:-}
  [ $# -gt 0 ] && shift
fi
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PFX=${2:-}; shift 2 || { echo "hosts.sh: --prefix needs a value" >&2; exit 2; } ;;
    --subnet) K=${2:-}; shift 2 || { echo "hosts.sh: --subnet needs a value" >&2; exit 2; } ;;
    *) echo "hosts.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

usage() {
  echo "usage: $0 up N [--prefix P] [--subnet K] | down [--prefix P] | status [--prefix P]" >&2
  exit 2
}
say() { echo "hosts.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# Interface names are at most 15 bytes: "P-hNNN-v" with P <= 6 characters fits.
[[ "$PFX" =~ ^[a-z][a-z0-9]{0,5}$ ]] || die "prefix '$PFX' must be 1-6 characters [a-z0-9], starting with a letter"
[[ "$K" =~ ^[0-9]{1,3}$ ]] && [ "$K" -le 255 ] || die "subnet '$K' must be 0..255"

SRC=$(cd "$(dirname "$0")/.." && pwd)
RUNROOT=/run/kontena-hosts
RUN=$RUNROOT/$PFX
LIB=/var/lib/kontena-hosts/$PFX
SW=$PFX-sw
UP=$PFX-up
NET=10.250.$K
LNK=10.251.$K
MASTER=$LNK.1
IMAGE=kontena-test/busybox:latest
DOCKERD_WAIT_S=${KONTENA_HOSTS_DOCKERD_WAIT:-30}

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
have_netns() { [ -e "/var/run/netns/$1" ]; }
ping_sock() { [ -S "$1" ] && [ "$(curl -s --max-time 2 --unix-socket "$1" http://localhost/_ping 2>/dev/null)" = OK ]; }

# The pid in a pid file if that process is alive and is `comm`; empty otherwise.
live_pid() { # file comm
  local pid
  [ -f "$1" ] || return 0
  pid=$(cat "$1" 2>/dev/null || true)
  case "$pid" in '' | *[!0-9]*) return 0 ;; esac
  [ "$(cat /proc/"$pid"/comm 2>/dev/null || true)" = "$2" ] && echo "$pid"
  return 0
}

lock() {
  mkdir -p "$RUNROOT"
  exec 9>"$RUNROOT/$PFX.lock"
  flock -w 120 9 || die "timed out waiting for $RUNROOT/$PFX.lock"
}

cg_mounts() {
  # `ip netns exec` unshares the mount ns and remounts /sys, which hides /sys/fs/cgroup:
  # dockerd then fails with "Devices cgroup isn't mounted". Replay the root ns cgroup mounts.
  findmnt -rn -o TARGET,FSTYPE,OPTIONS |
    awk '$1 ~ "^/sys/fs/cgroup" && ($2=="tmpfs"||$2=="cgroup"||$2=="cgroup2") {
           printf "mkdir -p %s && mount -t %s -o %s %s %s\n", $1, $2, $3, $2, $1 }'
}

switch_up() {
  if ! have_netns "$SW"; then
    ip netns add "$SW"
  fi
  ip -n "$SW" link set lo up
  ip -n "$SW" link show br0 >/dev/null 2>&1 || ip -n "$SW" link add br0 type bridge
  ip -n "$SW" addr replace "$NET.1/24" dev br0
  ip -n "$SW" link set br0 up
  ip netns exec "$SW" sysctl -qw net.ipv4.ip_forward=1
  # the switch never talks to anything but the underlay and the master link: no default route
  if ! ip link show "$UP" >/dev/null 2>&1; then
    ip -n "$SW" link del up0 2>/dev/null || true
    ip link add "$UP" type veth peer name up0 netns "$SW"
  fi
  ip addr replace "$MASTER/30" dev "$UP"
  ip link set "$UP" up
  ip -n "$SW" addr replace "$LNK.2/30" dev up0
  ip -n "$SW" link set up0 up
  ip route replace "$NET.0/24" via "$LNK.2" dev "$UP"
}

host_net_up() {
  local i=$1 ns=$PFX-h$1
  have_netns "$ns" || ip netns add "$ns"
  if ! ip -n "$SW" link show "$ns-v" >/dev/null 2>&1; then
    ip -n "$ns" link del eth0 2>/dev/null || true
    ip link add "$ns-v" netns "$SW" type veth peer name eth0 netns "$ns"
  fi
  ip -n "$SW" link set "$ns-v" master br0 up
  ip -n "$ns" addr replace "$NET.$((10 + i))/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" route replace default via "$NET.1"
}

dockerd_start() {
  local i=$1 ns=$PFX-h$1 run=$RUN/h$1 lib=$LIB/h$1 sock t0 pid
  sock=$run/docker.sock
  ping_sock "$sock" && return 0
  mkdir -p "$run" "$lib"
  pid=$(live_pid "$run/docker.pid" dockerd)
  if [ -z "$pid" ]; then
    rm -f "$run/docker.pid" "$sock"
    # own key.json => own engine ID (the default /etc/docker/key.json is shared)
    echo "{\"deprecated-key-path\": \"$lib/key.json\"}" >"$lib/daemon.json"
    t0=$(date +%s%N)
    # setsid + every fd to the log: the daemon outlives us and never holds a caller's pipe.
    # tmpfs on /run/containerd: a system containerd socket there would be used instead of
    # dockerd's own containerd, which could not see this mount namespace's overlay mounts.
    setsid ip netns exec "$ns" unshare --uts -- sh -ec "
      hostname $ns
      $(cg_mounts)
      mkdir -p /run/containerd && mount -t tmpfs -o mode=700 $PFX-ctd /run/containerd
      exec dockerd --config-file $lib/daemon.json \
        --data-root $lib/docker --exec-root $run/docker --pidfile $run/docker.pid \
        -H unix://$sock --bip 172.18.$i.1/24 \
        --default-address-pool base=172.19.0.0/16,size=24 \
        --cgroup-parent /$ns --shutdown-timeout 2
    " </dev/null >>"$run/dockerd.log" 2>&1 9>&- &
  else
    t0=$(date +%s%N)
  fi
  local deadline=$((SECONDS + DOCKERD_WAIT_S))
  while [ $SECONDS -lt $deadline ]; do
    if ping_sock "$sock"; then
      say "h$i: dockerd ready in $(ms_since "$t0") ms (pid $(cat "$run/docker.pid" 2>/dev/null))"
      return 0
    fi
    sleep 0.05
  done
  say "h$i: dockerd did not answer on $sock within ${DOCKERD_WAIT_S}s; last lines of $run/dockerd.log:"
  tail -n 8 "$run/dockerd.log" >&2 || true
  return 1
}

image_in() {
  local i=$1 t0
  t0=$(date +%s%N)
  DOCKER_SOCK=$RUN/h$i/docker.sock "$SRC/hack/test-image.sh" "$IMAGE" ||
    die "h$i: could not import $IMAGE"
  say "h$i: image $IMAGE present ($(ms_since "$t0") ms)"
}

# Every pid whose cgroup is under P-hI in any hierarchy (container processes survive their
# shim when a dockerd is killed hard, and they are in the containers' netns, not the host's).
cgroup_pids() {
  local d
  for d in /sys/fs/cgroup/*/"$1" /sys/fs/cgroup/"$1"; do
    [ -d "$d" ] || continue
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  done | sort -u
}

kill_pids() { # signal pids...
  local sig=$1 p
  shift
  for p in "$@"; do kill "-$sig" "$p" 2>/dev/null || true; done
}

host_down() {
  local i=$1 ns=$PFX-h$1 run=$RUN/h$1 sock ids pid pids tries
  sock=$run/docker.sock
  # force-remove containers first: on SIGTERM dockerd gives each one its 10 s stop timeout
  if ping_sock "$sock"; then
    ids=$(timeout 20 docker -H "unix://$sock" ps -aq 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || timeout 30 docker -H "unix://$sock" rm -f $ids >/dev/null 2>&1 || true
  fi
  pid=$(live_pid "$run/docker.pid" dockerd)
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((tries = 0; tries < 100; tries++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  # whatever still runs in the host's netns (containerd, shims, agents, dnsmasq started with
  # `ip netns exec`) or in its cgroups (containers): SIGTERM, then SIGKILL
  for sig in TERM KILL; do
    pids=$( { have_netns "$ns" && ip netns pids "$ns" 2>/dev/null; cgroup_pids "$ns"; } | sort -u)
    [ -z "$pids" ] && break
    # shellcheck disable=SC2086
    kill_pids $sig $pids
    for ((tries = 0; tries < 30; tries++)); do
      pids=$( { have_netns "$ns" && ip netns pids "$ns" 2>/dev/null; cgroup_pids "$ns"; } | sort -u)
      [ -z "$pids" ] && break
      sleep 0.1
    done
  done
  # netns teardown is asynchronous: delete the switch-side veth explicitly, or a quick
  # re-`up` finds it still there
  have_netns "$SW" && ip -n "$SW" link del "$ns-v" 2>/dev/null || true
  have_netns "$ns" && ip netns del "$ns" 2>/dev/null || true
  # empty --cgroup-parent dirs left by dockerd, deepest first
  for d in /sys/fs/cgroup/*/"$ns" /sys/fs/cgroup/"$ns"; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

umount_under() { # dir: anything mounted below it in the root mount ns (normally nothing)
  local m
  findmnt -rn -o TARGET | awk -v d="$1/" 'index($0, d) == 1' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
}

hosts_known() { # the host numbers that exist in any form
  {
    ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^$PFX-h\([0-9]\{1,3\}\)$/\1/p"
    for d in "$RUN"/h* "$LIB"/h*; do [ -d "$d" ] && basename "$d" | sed -n 's/^h\([0-9]\{1,3\}\)$/\1/p'; done
    for d in /sys/fs/cgroup/*/"$PFX"-h* /sys/fs/cgroup/"$PFX"-h*; do
      [ -d "$d" ] && basename "$d" | sed -n "s/^$PFX-h\([0-9]\{1,3\}\)$/\1/p"
    done
  } 2>/dev/null | sort -un
}

do_down() {
  local t0 i
  t0=$(date +%s%N)
  for i in $(hosts_known); do host_down "$i" & done
  wait
  ip link del "$UP" 2>/dev/null || true # takes the root route with it
  have_netns "$SW" && ip netns del "$SW" 2>/dev/null || true
  umount_under "$RUN"
  umount_under "$LIB"
  rm -rf "$RUN" "$LIB"
  rmdir /var/lib/kontena-hosts 2>/dev/null || true
  rm -f "$RUNROOT/$PFX.lock"
  rmdir "$RUNROOT" 2>/dev/null || true
  say "down in $(ms_since "$t0") ms"
}

check_input() {
  # host -> master traffic is local delivery in the root netns: warn if INPUT would drop it
  local pol
  pol=$(iptables -S INPUT 2>/dev/null | awk '$1=="-P"{print $3}')
  if [ -n "$pol" ] && [ "$pol" != ACCEPT ]; then
    say "warning: root netns INPUT policy is $pol: hosts may not reach $MASTER (allow -i $UP)"
  fi
}

do_up() {
  local t0 i
  [[ "$n" =~ ^[0-9]{1,3}$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 200 ] || die "up needs a host count 1..200"
  t0=$(date +%s%N)
  # another prefix may already use this subnet: refuse rather than steal its route
  if ip route show "$NET.0/24" | grep -qv "dev $UP"; then
    die "10.250.$K.0/24 is already routed elsewhere ($(ip route show "$NET.0/24")); use --subnet"
  fi
  if ip -4 addr show | grep -q "inet $LNK\." && ! ip -4 addr show dev "$UP" 2>/dev/null | grep -q "inet $MASTER/"; then
    die "$LNK.0/30 is already in use in the root netns; use --subnet"
  fi
  switch_up
  for i in $(seq 1 "$n"); do host_net_up "$i"; done
  local pids=() rc=0
  for i in $(seq 1 "$n"); do
    dockerd_start "$i" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  [ $rc = 0 ] || die "some dockerd did not start (hack/hosts.sh down --prefix $PFX cleans up)"
  for i in $(seq 1 "$n"); do image_in "$i"; done
  check_input
  say "up $n in $(ms_since "$t0") ms"
  echo "master $MASTER"
  for i in $(seq 1 "$n"); do
    echo "host $i $PFX-h$i $NET.$((10 + i)) $RUN/h$i/docker.sock"
  done
}

do_status() {
  local i ns sock state any=0
  if ip link show "$UP" >/dev/null 2>&1; then
    echo "master $(ip -4 -o addr show dev "$UP" | awk '{print $4}' | cut -d/ -f1)"
    any=1
  fi
  have_netns "$SW" && { echo "switch $SW"; any=1; }
  for i in $(hosts_known); do
    any=1
    ns=$PFX-h$i
    sock=$RUN/h$i/docker.sock
    state=down
    ping_sock "$sock" && state=up
    have_netns "$ns" || ns="$ns(no-netns)"
    echo "host $i $ns $(ip -n "$PFX-h$i" -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}' | cut -d/ -f1) $sock dockerd=$state"
  done
  [ $any = 1 ] || echo "nothing with prefix $PFX"
}

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, dockerd)"
case "$cmd" in
  up) lock; do_up ;;
  down) lock; do_down ;;
  status) do_status ;;
  *) usage ;;
esac
