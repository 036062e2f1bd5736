#!/usr/bin/env bash
# Install every Debian package the project needs to build, test and run, idempotently:
# packages already present are left alone, and apt-get runs (update first) only when
# something is missing. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  # build
  cmake gcc make pkg-config
  libcurl4-openssl-dev libjansson-dev libssl-dev libmicrohttpd-dev
  libwebsockets-dev libyaml-dev
  # tests
  libcriterion-dev curl ca-certificates
  # the stack-file fuzzer (libFuzzer) and the sanitizer runtime that goes with it
  clang libclang-rt-14-dev
  # runtime: the embedded default etcd and etcdctl
  etcd-server etcd-client
  # runtime: the Docker engine the agent drives, and busybox for test images (no registry
  # is reachable: test images are `docker import`s of a busybox-static rootfs)
  docker.io busybox-static iproute2
  # runtime: the per-node DNS server of the overlay (the binary only, no system service)
  dnsmasq-base
  # runtime: encryption of the overlay between untrusted nodes (userspace WireGuard: these
  # kernels have neither the wireguard module nor ESP), and `wg` to inspect it
  wireguard-go wireguard-tools
  # runtime: the load balancer (kontena-lb drives haproxy; no system service is started)
  haproxy
  # tests: underlay captures (encryption check) and HTTP load through the load balancer
  tcpdump wrk
  # tests: a real syslog daemon for log forwarding, and promtool/prometheus to check and
  # scrape the /metrics endpoints
  rsyslog prometheus
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install-deps: missing ${missing[*]} and not root (no sudo)" >&2; exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Packages such as haproxy would start a system service on install; ours are started by the
# platform itself, so keep invoke-rc.d from starting anything while we install.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  made_policy=1
fi
rc=0
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
[ "$made_policy" = 1 ] && $SUDO rm -f "$policy"
[ "$rc" = 0 ] || { echo "install-deps: apt-get install failed ($rc)" >&2; exit "$rc"; }
# Debian's etcd-server package may start a system etcd on 2379; ours runs on its own port
# and data directory (hack/up.sh), so either way is fine.
echo "install-deps: done"
