#!/usr/bin/env bash
# Benchmark kontena-lb on loopback: requests/s through the load balancer against requests/s
# sent directly to one backend, measured with wrk, plus the time from an upstream key
# written in etcd to the first request that new upstream serves. Nothing is asserted; the
# figures are printed with the method. Bounded: each wrk run lasts --duration seconds, the
# whole script about 4 x duration + 15 s.
#
#   hack/bench-lb.sh [--build-dir DIR] [--duration S] [--connections N] [--threads N]
#
#   --build-dir DIR    where bin/kontena-lb is (default build; built first with hack/build.sh
#                      when it is missing)
#   --duration S       seconds per wrk run (default 5, 1..60)
#   --connections N    wrk connections (default 50), --threads N wrk threads (default 2)
#
# Two backends, each measured directly and through the LB (one upstream, virtual host):
#   static   a haproxy answering 200 itself (keep-alive, nearly free: shows the LB's own cost)
#   busybox  busybox httpd serving a file (a process per connection, like a small web app)
# Needs etcd, haproxy, busybox, wrk, curl and etcdctl (hack/install-deps.sh installs them).
# Every process it starts is stopped by pid on exit; its temp directory is removed.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build
duration=5
conns=50
threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) dir=${2:?--build-dir needs a directory}; shift 2 ;;
    --duration) duration=${2:?--duration needs seconds}; shift 2 ;;
    --connections) conns=${2:?--connections needs a number}; shift 2 ;;
    --threads) threads=${2:?--threads needs a number}; shift 2 ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-lb.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
case "$duration" in '' | *[!0-9]*) echo "bench-lb.sh: bad --duration '$duration'" >&2; exit 2 ;; esac
if [ "$duration" -lt 1 ] || [ "$duration" -gt 60 ]; then
  echo "bench-lb.sh: --duration 1..60" >&2
  exit 2
fi
for tool in etcd etcdctl haproxy busybox wrk curl python3; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
    { echo "bench-lb.sh: '$tool' is missing (hack/install-deps.sh)" >&2; exit 1; }
done
if [ ! -x "$dir/bin/kontena-lb" ]; then
  [ "$dir" = build ] && hack/build.sh >/dev/null
  [ -x "$dir/bin/kontena-lb" ] || { echo "bench-lb.sh: no $dir/bin/kontena-lb" >&2; exit 1; }
fi
haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-lb.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_http() { # url [host]
  for _ in $(seq 200); do
    curl -fs -o /dev/null --max-time 1 ${2:+-H "Host: $2"} "$1" && return 0
    sleep 0.05
  done
  echo "bench-lb.sh: $1 does not answer" >&2
  return 1
}

# etcd
ec=$(free_port); ep=$(free_port)
etcd --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$ec" \
  --advertise-client-urls "http://127.0.0.1:$ec" --listen-peer-urls "http://127.0.0.1:$ep" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ep" \
  --initial-cluster "default=http://127.0.0.1:$ep" >"$work/etcd.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$ec/health"
etcd_put() { ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$ec" put "$1" "$2" >/dev/null; }
root=/kontena/haproxy/bench/lb

# Backends: a static haproxy and busybox httpd, plus a second busybox for the latency part.
p_static=$(free_port)
cat >"$work/static.cfg" <<EOF
global
  maxconn 4000
defaults
  mode http
  timeout client 10s
  timeout server 10s
  timeout connect 5s
frontend static
  bind 127.0.0.1:$p_static
  http-request return status 200 content-type text/plain string static
EOF
"$haproxy_bin" -db -f "$work/static.cfg" >"$work/static.log" 2>&1 &
pids+=($!)
for n in busybox late; do
  mkdir -p "$work/www-$n"
  echo "$n" >"$work/www-$n/index.html"
done
p_busybox=$(free_port)
busybox httpd -f -p "127.0.0.1:$p_busybox" -h "$work/www-busybox" &
pids+=($!)
p_late=$(free_port)
busybox httpd -f -p "127.0.0.1:$p_late" -h "$work/www-late" &
pids+=($!)
wait_http "http://127.0.0.1:$p_static/"
wait_http "http://127.0.0.1:$p_busybox/"
wait_http "http://127.0.0.1:$p_late/"

etcd_put "$root/services/static/virtual_hosts" static.test
etcd_put "$root/services/static/upstreams/static-1" "127.0.0.1:$p_static"
etcd_put "$root/services/busybox/virtual_hosts" busybox.test
etcd_put "$root/services/busybox/upstreams/busybox-1" "127.0.0.1:$p_busybox"

# The load balancer.
lb_http=$(free_port); lb_stats=$(free_port)
ETCD_ENDPOINTS="http://127.0.0.1:$ec" ETCD_PATH=$root KONTENA_LB_RUN_DIR="$work/run" \
  KONTENA_LB_HTTP_PORT=$lb_http KONTENA_LB_STATS_PORT=$lb_stats \
  KONTENA_LB_HEALTH_URI=/__health KONTENA_LB_HAPROXY="$haproxy_bin" \
  "$dir/bin/kontena-lb" >"$work/lb.log" 2>&1 &
lb_pid=$!
pids+=("$lb_pid")
wait_http "http://127.0.0.1:$lb_http/" static.test
wait_http "http://127.0.0.1:$lb_http/" busybox.test

run_wrk() { # url host -> requests/s and errors ("rps errors")
  local out rps errs
  out=$(timeout $((duration + 30)) wrk -t"$threads" -c"$conns" -d"${duration}s" \
    -H "Host: $2" "$1" 2>&1) || true
  rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
  errs=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } /Socket errors:/ {
      gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' <<<"$out")
  echo "${rps:-0} $errs"
}

echo "kontena-lb benchmark: wrk -t$threads -c$conns -d${duration}s on loopback, $(nproc) CPUs," \
  "haproxy $("$haproxy_bin" -v | awk 'NR == 1 { print $3 }'), access log on (stdout to a file)"
printf '%-8s %14s %14s %8s %14s\n' backend "direct req/s" "via LB req/s" ratio "errors (d/LB)"
for b in static busybox; do
  port_var="p_$b"
  read -r d_rps d_err < <(run_wrk "http://127.0.0.1:${!port_var}/" "$b.test")
  read -r l_rps l_err < <(run_wrk "http://127.0.0.1:$lb_http/" "$b.test")
  ratio=$(awk -v a="$l_rps" -v b="$d_rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
  printf '%-8s %14.0f %14.0f %8s %14s\n' "$b" "$d_rps" "$l_rps" "$ratio" "$d_err/$l_err"
done

# Key written -> first request served by the new upstream (5 rounds). The clock starts when
# etcdctl returns (the write is committed); each probe is one curl process (a few ms), and
# the upstream answers at the latest on the second probe after it is live (round robin).
echo "new upstream: time from its key written in etcd to the first request it serves"
for i in 1 2 3 4 5; do
  name="late-$i"
  etcd_put "$root/services/busybox/upstreams/$name" "127.0.0.1:$p_late"
  t0=$(date +%s%N)
  served=
  for _ in $(seq 1000); do
    if [ "$(curl -s --max-time 1 -H 'Host: busybox.test' "http://127.0.0.1:$lb_http/")" = late ]; then
      served=$(date +%s%N)
      break
    fi
  done
  if [ -n "$served" ]; then
    echo "  round $i: $(((served - t0) / 1000000)) ms"
  else
    echo "  round $i: not served within 1000 requests"
  fi
  ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$ec" del "$root/services/busybox/upstreams/$name" >/dev/null
  sleep 0.5
done
echo "applied by: $(grep -c 'runtime API, no reload' "$work/lb.log") runtime API changes," \
  "$(grep -c 'applied (reload' "$work/lb.log") reloads (kontena-lb log)"
