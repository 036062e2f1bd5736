#!/usr/bin/env bash
# Build a container image of each controller (and, when asked, the agent and the API server)
# without a registry: a rootfs holding the binary and exactly the shared libraries `ldd`
# lists (plus the dynamic loader, the CA bundle, /etc/nsswitch.conf, /etc/passwd, /tmp) is
# tarred and handed to `docker import` with ENTRYPOINT ["/kontena-<name>"].
#
#   hack/images.sh                 scheduler ipam rescheduler health lbconfig
#   hack/images.sh NAME...         any of scheduler ipam rescheduler health lbconfig agent apiserver
#
# Each image is tagged <repo>/<name>:<version> (version from `kontena-<name> --version`) and
# <repo>/<name>:latest. Idempotent and fast: the image carries the SHA-256 of its rootfs tar
# as label io.kontena.image.digest, and an image whose digest matches is left alone
# ("up to date"). Prints one line per image: built or up to date.
#
# Settings (environment):
#   KONTENA_BIN_DIR     where the binaries are          (default build/bin)
#   KONTENA_IMAGE_REPO  image repository prefix         (default kontena)
#   DOCKER              docker client                   (default docker)
# Exit status: 0 when every image exists, 1 when one could not be built (missing binary,
# a library ldd cannot find, Docker refusing the import), 2 on a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."

bindir=${KONTENA_BIN_DIR:-build/bin}
repo=${KONTENA_IMAGE_REPO:-kontena}
docker=${DOCKER:-docker}

say() { echo "images.sh: $*" >&2; }

names=("$@")
[ ${#names[@]} -eq 0 ] && names=(scheduler ipam rescheduler health lbconfig)
for n in "${names[@]}"; do
  case "$n" in
    scheduler | ipam | rescheduler | health | lbconfig | agent | apiserver) ;;
    -h | --help)
      sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      say "unknown image '$n' (scheduler, ipam, rescheduler, health, lbconfig, agent, apiserver)"
      exit 2
      ;;
  esac
done

if ! timeout 10 "$docker" version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  say "Docker does not answer (start it with hack/dockerd.sh start)"
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kontena-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Copy path into the rootfs at the same path, resolving symlinks (the file itself is what
# the loader must find under the listed name).
put() { # rootfs path
  mkdir -p "$1$(dirname "$2")"
  cp -L "$2" "$1$2"
}

build_one() { # name
  local name=$1 bin="$bindir/kontena-$1" root="$work/$1/root" tar="$work/$1/rootfs.tar"
  local version libs lib digest have image
  if [ ! -x "$bin" ]; then
    say "kontena-$name is not built in $bindir (run hack/build.sh, or set KONTENA_BIN_DIR)"
    return 1
  fi
  version=$("$bin" --version 2>/dev/null | awk 'NR == 1 { print $NF }')
  if [ -z "$version" ]; then
    say "kontena-$name --version printed nothing"
    return 1
  fi
  image="$repo/$name:$version"
  if ! libs=$(ldd "$bin" 2>&1); then
    say "ldd kontena-$name failed: $libs"
    return 1
  fi
  if grep -q 'not found' <<<"$libs"; then
    say "kontena-$name needs libraries ldd cannot find: $(grep 'not found' <<<"$libs" | tr -s ' \t\n' ' ')"
    return 1
  fi
  mkdir -p "$root"/{etc,tmp,proc,sys,dev}
  chmod 1777 "$root/tmp"
  cp "$bin" "$root/kontena-$name"
  # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and the loader's own line
  # "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
  while read -r lib; do
    [ -n "$lib" ] && put "$root" "$lib"
  done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$libs")
  if grep -q libcurl <<<"$libs" && [ -d /etc/ssl/certs ]; then
    mkdir -p "$root/etc/ssl/certs"
    [ -f /etc/ssl/certs/ca-certificates.crt ] &&
      cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  fi
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
  echo 'root:x:0:0:root:/:/kontena-'"$name" >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  # A reproducible tar: same inputs, same digest.
  tar -C "$root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$tar" .
  digest=$(sha256sum "$tar" | awk '{ print $1 }')
  have=$("$docker" image inspect -f '{{index .Config.Labels "io.kontena.image.digest"}}' \
    "$image" 2>/dev/null || true)
  if [ "$have" = "$digest" ]; then
    "$docker" tag "$image" "$repo/$name:latest"
    echo "$image up to date ($(du -h "$tar" | awk '{ print $1 }'), $(grep -c . <<<"$libs") ldd entries)"
    return 0
  fi
  if ! timeout 120 "$docker" import \
    --change "ENTRYPOINT [\"/kontena-$name\"]" \
    --change "LABEL io.kontena.image.digest=$digest" \
    --change "LABEL io.kontena.image.component=$name" \
    --change "WORKDIR /tmp" \
    "$tar" "$image" >/dev/null; then
    say "docker import of $image failed"
    return 1
  fi
  "$docker" tag "$image" "$repo/$name:latest"
  echo "$image built ($(du -h "$tar" | awk '{ print $1 }'), $(grep -c . <<<"$libs") ldd entries)"
}

status=0
for n in "${names[@]}"; do
  build_one "$n" || status=1
done
exit $status
