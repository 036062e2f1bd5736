#!/usr/bin/env bash
# Build the test image (default kontena-test/busybox:latest) from the busybox-static binary
# with `docker import`: no registry is reachable from this machine or from CI.
#   hack/test-image.sh [NAME[:TAG]]
# Idempotent: does nothing when the image exists. Serialised with a lock, so parallel test
# binaries can all call it. Bounded: every Docker call has a time limit.
#
# Settings (environment): DOCKER_SOCK (default /var/run/docker.sock).
#
# The image: /bin/busybox plus one symlink per applet in /bin, /etc/passwd and /etc/group
# for root, empty /tmp /proc /sys /dev /root, /var/www/index.html; CMD ["/bin/sh"].
set -euo pipefail

name=${1:-kontena-test/busybox:latest}
case "$name" in *:*) ;; *) name="$name:latest" ;; esac
repo=${name%:*}
tag=${name##*:}
sock=${DOCKER_SOCK:-/var/run/docker.sock}
api=http://localhost/v1.41

say() { echo "test-image.sh: $*" >&2; }

exists() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --unix-socket "$sock" \
    "$api/images/$repo:$tag/json" || true)
  [ "$code" = 200 ]
}

if ! curl -s --max-time 5 --unix-socket "$sock" http://localhost/_ping >/dev/null; then
  say "dockerd does not answer on $sock (start it with hack/dockerd.sh start)"
  exit 1
fi
exists && exit 0

bb=
for c in /bin/busybox /usr/bin/busybox; do
  if [ -x "$c" ] && ! ldd "$c" >/dev/null 2>&1; then bb=$c; break; fi
done
if [ -z "$bb" ]; then
  say "no static busybox found (hack/install-deps.sh installs busybox-static)"
  exit 1
fi

lockdir=${TMPDIR:-/tmp}
exec 9>"$lockdir/kontena-test-image.lock"
flock -w 120 9 || { say "timed out waiting for $lockdir/kontena-test-image.lock"; exit 1; }
exists && exit 0 # another caller built it while we waited

d=$(mktemp -d "${TMPDIR:-/tmp}/kontena-rootfs.XXXXXX")
trap 'rm -rf "$d"' EXIT
mkdir -p "$d"/root/{bin,sbin,usr/bin,usr/sbin,etc,tmp,proc,sys,dev,var/www,root}
chmod 1777 "$d/root/tmp"
cp "$bb" "$d/root/bin/busybox"
for a in $("$d/root/bin/busybox" --list); do
  [ "$a" = busybox ] || ln -sf /bin/busybox "$d/root/bin/$a"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$d/root/etc/passwd"
echo 'root:x:0:' >"$d/root/etc/group"
echo hello-from-kontena-test >"$d/root/var/www/index.html"
tar -C "$d/root" -cf "$d/rootfs.tar" .

# POST /images/create?fromSrc=- with the tarball as body is `docker import`; changes= sets
# the CMD (URL-encoded 'CMD ["/bin/sh"]').
out=$(curl -s --max-time 60 --unix-socket "$sock" -X POST -H 'Content-Type: application/x-tar' \
  --data-binary @"$d/rootfs.tar" \
  "$api/images/create?fromSrc=-&repo=$repo&tag=$tag&changes=CMD%20%5B%22%2Fbin%2Fsh%22%5D") || {
  say "import of $name failed: curl exit $?"
  exit 1
}
if ! exists; then
  say "import of $name failed: $out"
  exit 1
fi
say "imported $name"
