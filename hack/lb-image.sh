#!/usr/bin/env bash
# Build the load balancer image kontena/lb without a registry (the approach of
# hack/images.sh): a rootfs holding our kontena-lb, Debian's haproxy, exactly the shared
# libraries `ldd` lists for both (plus the dynamic loader), /etc/passwd and /etc/group with
# root and nobody/nogroup (haproxy's workers run as nobody), /etc/nsswitch.conf, the CA
# bundle, /tmp and /var/run, tarred and handed to `docker import` with
# ENTRYPOINT ["/usr/bin/kontena-lb"].
#
#   hack/lb-image.sh
#
# Settings (environment):
#   KONTENA_BIN_DIR   where kontena-lb is                 (default build/bin)
#   KONTENA_LB_IMAGE  image name                          (default kontena/lb:latest, also
#                                                          tagged kontena/lb:<version>)
#   HAPROXY           the haproxy binary to put in        (default /usr/sbin/haproxy)
#   DOCKER            docker client                       (default docker)
#
# Idempotent and fast: the image carries the SHA-256 of its rootfs tar as label
# io.kontena.image.digest; an image whose digest matches is left alone ("up to date").
# Run the image with the LB's environment (lb/README.md), e.g.
#   docker run --network host -e ETCD_ENDPOINTS=http://127.0.0.1:2379 \
#     -e ETCD_PATH=/kontena/haproxy/<grid>/<stack>/<lb> -e KONTENA_LB_HTTP_PORT=8080 kontena/lb
# Exit status: 0 when the image exists, 1 when it could not be built, 2 on a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."

bindir=${KONTENA_BIN_DIR:-build/bin}
image=${KONTENA_LB_IMAGE:-kontena/lb:latest}
haproxy=${HAPROXY:-/usr/sbin/haproxy}
docker=${DOCKER:-docker}

say() { echo "lb-image.sh: $*" >&2; }

case "${1:-}" in
  -h | --help)
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  "") ;;
  *)
    say "unexpected argument '$1' (settings are environment variables, see --help)"
    exit 2
    ;;
esac
case "$image" in *:*) ;; *) image="$image:latest" ;; esac

bin="$bindir/kontena-lb"
if [ ! -x "$bin" ]; then
  say "kontena-lb is not built in $bindir (run hack/build.sh, or set KONTENA_BIN_DIR)"
  exit 1
fi
if [ ! -x "$haproxy" ]; then
  say "no haproxy at $haproxy (apt-get install haproxy, or set HAPROXY)"
  exit 1
fi
version=$("$bin" --version 2>/dev/null | awk 'NR == 1 { print $NF }')
if [ -z "$version" ]; then
  say "kontena-lb --version printed nothing"
  exit 1
fi
if ! timeout 10 "$docker" version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  say "Docker does not answer (start it with hack/dockerd.sh start)"
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kontena-lb-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"
tar="$work/rootfs.tar"

# Copy path into the rootfs at the same path, resolving symlinks.
put() { # path
  mkdir -p "$root$(dirname "$1")"
  cp -L "$1" "$root$1"
}

# The libraries of a binary, as ldd lists them: "x.so => /lib/... (0x...)" and the loader's
# own "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
libs_of() { # binary
  local out
  if ! out=$(ldd "$1" 2>&1); then
    say "ldd $1 failed: $out"
    return 1
  fi
  if grep -q 'not found' <<<"$out"; then
    say "$1 needs libraries ldd cannot find: $(grep 'not found' <<<"$out" | tr -s ' \t\n' ' ')"
    return 1
  fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

mkdir -p "$root"/{etc,tmp,proc,sys,dev,var/run,usr/bin,usr/sbin}
chmod 1777 "$root/tmp"
cp "$bin" "$root/usr/bin/kontena-lb"
cp -L "$haproxy" "$root/usr/sbin/haproxy"
nlibs=0
for b in "$bin" "$haproxy"; do
  libs=$(libs_of "$b") || exit 1
  while read -r lib; do
    [ -n "$lib" ] && put "$lib" && nlibs=$((nlibs + 1))
  done <<<"$libs"
done
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$root/etc/ssl/certs"
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
fi
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
printf 'root:x:0:0:root:/:/usr/bin/kontena-lb\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' \
  >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
# A reproducible tar: same inputs, same digest.
tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$tar" .
digest=$(sha256sum "$tar" | awk '{ print $1 }')
have=$("$docker" image inspect -f '{{index .Config.Labels "io.kontena.image.digest"}}' \
  "$image" 2>/dev/null || true)
size=$(du -h "$tar" | awk '{ print $1 }')
if [ "$have" = "$digest" ]; then
  echo "$image up to date ($size, $nlibs libraries)"
else
  if ! timeout 120 "$docker" import \
    --change 'ENTRYPOINT ["/usr/bin/kontena-lb"]' \
    --change "LABEL io.kontena.image.digest=$digest" \
    --change "LABEL io.kontena.image.component=lb" \
    --change "WORKDIR /tmp" \
    "$tar" "$image" >/dev/null; then
    say "docker import of $image failed"
    exit 1
  fi
  echo "$image built ($size, $nlibs libraries, kontena-lb $version, $("$haproxy" -v | awk 'NR == 1 { print $1, $3 }'))"
fi
if [ -z "${KONTENA_LB_IMAGE:-}" ]; then
  "$docker" tag "$image" "kontena/lb:$version"
fi
