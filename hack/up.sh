#!/usr/bin/env bash
# Bring up a working local platform in one command:
#   installs missing packages, builds, starts an embedded etcd (own data directory and
#   port) and kontena-apiserver (HTTPS, self-signed certificate), creates the admin user,
#   logs the CLI in, creates and selects a grid, and prints how to use it.
# Idempotent: running it again reuses what is already running and what exists.
#
# Settings (environment):
#   KONTENA_DATA_DIR  where state, logs and pid files go   (default ~/.kontena-local)
#   KONTENA_PORT      API port on 127.0.0.1                  (default 9292)
#   KONTENA_ETCD_PORT embedded etcd client port              (default 23790; peer = +1)
#   KONTENA_GRID      grid to create and select              (default local)
# Stop everything with hack/down.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

data=${KONTENA_DATA_DIR:-$HOME/.kontena-local}
port=${KONTENA_PORT:-9292}
etcd_port=${KONTENA_ETCD_PORT:-23790}
peer_port=$((etcd_port + 1))
grid=${KONTENA_GRID:-local}
url="https://127.0.0.1:$port"
etcd_url="http://127.0.0.1:$etcd_port"

step() { printf '\n==> %s\n' "$*"; }
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_http() { # url what seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    curl -ksf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "up.sh: $2 did not answer at $1 within $3 s" >&2
  return 1
}

step "Installing missing packages"
hack/install-deps.sh

step "Building"
hack/build.sh >/dev/null
bin=$root/build/bin
echo "binaries in $bin"

mkdir -p "$data"
chmod 700 "$data"

step "Starting the embedded etcd ($etcd_url, data in $data/etcd)"
if running "$data/etcd.pid"; then
  echo "already running (pid $(cat "$data/etcd.pid"))"
else
  setsid nohup etcd --name kontena-local --data-dir "$data/etcd" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "kontena-local=http://127.0.0.1:$peer_port" \
    >>"$data/etcd.log" 2>&1 </dev/null &
  echo $! >"$data/etcd.pid"
fi
wait_http "$etcd_url/health" etcd 20

if [ ! -s "$data/admin-password" ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$data/admin-password")
fi
admin_pw=$(cat "$data/admin-password")

step "Starting kontena-apiserver ($url)"
if running "$data/apiserver.pid"; then
  echo "already running (pid $(cat "$data/apiserver.pid"))"
else
  KONTENA_INITIAL_ADMIN_PASSWORD=$admin_pw setsid nohup "$bin/kontena-apiserver" \
    --listen "127.0.0.1:$port" --etcd-endpoints "$etcd_url" --name local \
    --cert-out "$data/master.pem" >>"$data/apiserver.log" 2>&1 </dev/null &
  echo $! >"$data/apiserver.pid"
fi
wait_http "$url/v1/ping" kontena-apiserver 30

step "Logging the CLI in as admin"
export PATH="$bin:$PATH"
kontena master login --ca-cert "$data/master.pem" --name local -u admin \
  --password-stdin --skip-grid-auto-select "$url" <<<"$admin_pw"

step "Selecting grid '$grid'"
if kontena grid ls -q | grep -qx "$grid"; then
  kontena grid use "$grid"
else
  kontena grid create --initial-size 1 "$grid" 2>/dev/null
fi

step "Applying the example stack hack/examples/hello.yml"
# Idempotent: a second run prints that nothing changed. Deploy records are created, but
# nothing places containers until the scheduler and the agents exist (issues 4 and 5), so
# the CLI does not wait for them.
kontena stack apply --no-wait "$root/hack/examples/hello.yml"
kontena stack ls

cat <<SUMMARY

Kontena is up.
  API         $url  (certificate: $data/master.pem)
  etcd        $etcd_url  (data: $data/etcd)
  admin       user 'admin', password in $data/admin-password
  logs        $data/apiserver.log, $data/etcd.log
  CLI         $bin/kontena  (config: ${KONTENA_CONFIG:-$HOME/.kontena_client.json})

Try:
  export PATH="$bin:\$PATH"
  kontena whoami
  kontena grid ls
  kontena grid show $grid
  kontena stack show hello
  kontena service ls
  kontena stack apply --dry-run -v workers=3 $root/hack/examples/hello.yml
  kontena master user add --password-stdin alice@example.com <<< 'a-long-password'
  kontena master token create --description ci
  kontena master audit-log
  etcdctl --endpoints $etcd_url get --prefix /kontena/grids/

Stop it with: hack/down.sh   (state stays in $data; hack/up.sh brings it back)
SUMMARY
