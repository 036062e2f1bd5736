#!/usr/bin/env bash
# Bring up a whole local platform in one command:
#   installs missing packages, builds, starts the machine's dockerd and the busybox test
#   image, an embedded etcd (own data directory and port), kontena-apiserver (HTTPS,
#   self-signed certificate, agents' endpoint), the five controllers (kontena-scheduler,
#   -ipam, -rescheduler, -health, -lbconfig), three agents node-1..node-3 on the one
#   dockerd; builds the load balancer image kontena/lb (hack/lb-image.sh); creates the admin
#   user, logs the CLI in, creates and selects a grid, installs the example stacks
#   hack/examples/hello.yml and hack/examples/lb.yml (a kontena/lb load balancer, host
#   network, in front of a web service and a tcp service), waits until every instance runs
#   and the load balancer answers, and prints where and its URL.
# Idempotent: running it again reuses what is already running and what exists.
#
#   hack/up.sh                            controllers as host processes
#   hack/up.sh --controllers-in-containers  controllers as containers (hack/images.sh images,
#                                         --network host, --restart unless-stopped)
#
# Settings (environment):
#   KONTENA_DATA_DIR   where state, logs and pid files go   (default ~/.kontena-local)
#   KONTENA_PORT       API port on 127.0.0.1                  (default 9292)
#   KONTENA_AGENT_PORT agents' endpoint port on 127.0.0.1     (default 9293)
#   KONTENA_ETCD_PORT  embedded etcd client port              (default 23790; peer = +1)
#   KONTENA_CTL_PORT   first controller /metrics port         (default 9301: scheduler 9301,
#                      ipam 9302, rescheduler 9303, health 9304, lbconfig 9305)
#   KONTENA_METRICS_PORT the API server's /metrics port        (default 9300)
#   KONTENA_AGENT_METRICS_PORT agents' /metrics: node-N on this + N (default 9320)
#   KONTENA_LB_PORT    the example load balancer's HTTP port  (default 8080)
#   KONTENA_LB_TCP_PORT  ... and its tcp service's port       (default 8070)
#   KONTENA_GRID       grid to create and select              (default local)
#   KONTENA_NODES      how many agents                        (default 3)
#   KONTENA_BIN_DIR    use these binaries instead of building build/bin
# Stop everything with hack/down.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

in_containers=0
for a in "$@"; do
  case "$a" in
    --controllers-in-containers) in_containers=1 ;;
    -h | --help)
      sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "up.sh: unknown option '$a' (--controllers-in-containers, --help)" >&2
      exit 2
      ;;
  esac
done

data=${KONTENA_DATA_DIR:-$HOME/.kontena-local}
port=${KONTENA_PORT:-9292}
agent_port=${KONTENA_AGENT_PORT:-9293}
etcd_port=${KONTENA_ETCD_PORT:-23790}
ctl_port=${KONTENA_CTL_PORT:-9301}
metrics_port=${KONTENA_METRICS_PORT:-9300}
agent_metrics_port=${KONTENA_AGENT_METRICS_PORT:-9320}
peer_port=$((etcd_port + 1))
grid=${KONTENA_GRID:-local}
nodes=${KONTENA_NODES:-3}
url="https://127.0.0.1:$port"
agents_uri="wss://127.0.0.1:$agent_port/"
etcd_url="http://127.0.0.1:$etcd_port"
lb_port=${KONTENA_LB_PORT:-8080}
lb_tcp_port=${KONTENA_LB_TCP_PORT:-8070}
controllers=(scheduler ipam rescheduler health lbconfig)
example=$root/hack/examples/hello.yml
stack=hello
lb_example=$root/hack/examples/lb.yml
lb_stack=lb

step() { printf '\n==> %s\n' "$*"; }
die() { echo "up.sh: $*" >&2; exit 1; }
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
ctl_http() { # index -> port
  echo $((ctl_port + $1))
}
container_name() { echo "kontena-$grid-$1"; }

step "Installing missing packages"
hack/install-deps.sh

if [ -n "${KONTENA_BIN_DIR:-}" ]; then
  bin=$(cd "$KONTENA_BIN_DIR" && pwd)
  step "Using the binaries in $bin (KONTENA_BIN_DIR)"
else
  step "Building"
  hack/build.sh >/dev/null
  bin=$root/build/bin
  echo "binaries in $bin"
fi
missing=()
for p in kontena kontena-apiserver kontena-agent kontena-lb "${controllers[@]/#/kontena-}"; do
  [ -x "$bin/$p" ] || missing+=("$p")
done
if [ ${#missing[@]} -ne 0 ]; then
  die "not built in $bin: ${missing[*]} (each controller is controllers/<name>.c, kontena-lb is lb/; nothing was started)"
fi

step "Starting the machine's dockerd and the test image"
hack/dockerd.sh start
hack/test-image.sh

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

step "Starting kontena-apiserver ($url, agents' endpoint $agents_uri)"
if running "$data/apiserver.pid"; then
  echo "already running (pid $(cat "$data/apiserver.pid"))"
else
  KONTENA_INITIAL_ADMIN_PASSWORD=$admin_pw setsid nohup "$bin/kontena-apiserver" \
    --listen "127.0.0.1:$port" --agent-listen "127.0.0.1:$agent_port" \
    --etcd-endpoints "$etcd_url" --name local \
    --log-dir "$data/logs" --metrics-listen "127.0.0.1:$metrics_port" \
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
grid_token=$(kontena grid show --token "$grid")

step "Starting the controllers ($([ $in_containers = 1 ] && echo containers || echo host processes))"
if [ $in_containers = 1 ]; then
  hack/images.sh "${controllers[@]}" ||
    die "cannot build the controller images (hack/images.sh must know each of: ${controllers[*]})"
fi
for i in "${!controllers[@]}"; do
  name=${controllers[$i]}
  listen="127.0.0.1:$(ctl_http "$i")"
  args=(--etcd-endpoints "$etcd_url" --http-listen "$listen" --id "$name-local")
  cname=$(container_name "$name")
  if [ $in_containers = 1 ]; then
    # a host process of an earlier run in the other mode goes first
    if running "$data/$name.pid"; then
      kill -TERM "$(cat "$data/$name.pid")" 2>/dev/null || true
      rm -f "$data/$name.pid"
    fi
    state=$(docker inspect -f '{{.State.Running}} {{.Config.Image}}' "$cname" 2>/dev/null || true)
    if [ "$state" = "true kontena/$name:latest" ]; then
      echo "kontena-$name: container $cname already running"
      continue
    fi
    docker rm -f "$cname" >/dev/null 2>&1 || true
    docker run -d --name "$cname" --network host --restart unless-stopped \
      --label "io.kontena.local=$grid" "kontena/$name:latest" "${args[@]}" >/dev/null
    echo "kontena-$name: container $cname started"
  else
    if docker inspect "$cname" >/dev/null 2>&1; then
      docker rm -f "$cname" >/dev/null
      echo "kontena-$name: removed container $cname of an earlier --controllers-in-containers run"
    fi
    if running "$data/$name.pid"; then
      echo "kontena-$name: already running (pid $(cat "$data/$name.pid"))"
      continue
    fi
    setsid nohup "$bin/kontena-$name" "${args[@]}" >>"$data/$name.log" 2>&1 </dev/null &
    echo $! >"$data/$name.pid"
    echo "kontena-$name: started (pid $!), log $data/$name.log"
  fi
done

step "Starting $nodes agents (node-1..node-$nodes) on the one dockerd"
for ((n = 1; n <= nodes; n++)); do
  node=node-$n
  if running "$data/agent-$node.pid"; then
    echo "$node: already running (pid $(cat "$data/agent-$node.pid"))"
    continue
  fi
  setsid nohup "$bin/kontena-agent" --uri "$agents_uri" --token "$grid_token" \
    --ca-cert "$data/master.pem" --node-name "$node" --etcd-endpoints "$etcd_url" \
    --docker-name-prefix "$node." --metrics-listen "127.0.0.1:$((agent_metrics_port + n))" \
    >>"$data/agent-$node.log" 2>&1 </dev/null &
  echo $! >"$data/agent-$node.pid"
  echo "$node: started (pid $!), log $data/agent-$node.log"
done

step "Waiting for the nodes to be online and the controllers healthy"
for ((n = 1; n <= nodes; n++)); do
  for ((i = 0; ; i++)); do
    [ -n "$(etcdctl --endpoints "$etcd_url" get --print-value-only \
      "/kontena/node_status/$grid/node-$n" 2>/dev/null)" ] && break
    if ((i >= 300)); then
      tail -n 5 "$data/agent-node-$n.log" >&2 || true
      die "node-$n is not online after 30 s (log $data/agent-node-$n.log)"
    fi
    sleep 0.1
  done
done
echo "nodes online: $(seq -s ' ' -f 'node-%g' 1 "$nodes")"
for i in "${!controllers[@]}"; do
  wait_http "http://127.0.0.1:$(ctl_http "$i")/healthz" "kontena-${controllers[$i]}" 30 ||
    die "kontena-${controllers[$i]} is not healthy (log: $data/${controllers[$i]}.log or docker logs $(container_name "${controllers[$i]}"))"
done
echo "controllers healthy: ${controllers[*]}"

step "Building the load balancer image kontena/lb (hack/lb-image.sh)"
KONTENA_BIN_DIR=$bin hack/lb-image.sh || die "cannot build the load balancer image kontena/lb"

step "Installing the example stacks $example and $lb_example"
# apply: install the first time, upgrade when the file changed, nothing otherwise; it waits
# for the deploys. The load balancer runs with host networking and reads this etcd.
kontena stack apply --timeout 300 "$example"
kontena stack apply --timeout 300 -v "etcd_endpoints=$etcd_url" -v "http_port=$lb_port" \
  -v "tcp_port=$lb_tcp_port" "$lb_example"

step "Waiting until every instance runs"
for s in "$stack" "$lb_stack"; do
  for ((i = 0; ; i++)); do
    # NAME  INSTANCES ("running / wanted") ...: every row at its wanted count
    if kontena service ls --stack "$s" | awk 'NR > 1 { if ($3 != $5 || $5 == 0) bad = 1 } END { exit bad }'; then
      break
    fi
    ((i >= 600)) && die "not every instance of stack $s runs after 60 s: $(kontena service ls --stack "$s")"
    sleep 0.1
  done
  kontena service ls --stack "$s"
done
lb_url="http://127.0.0.1:$lb_port/"
wait_http "$lb_url" "the load balancer (stack $lb_stack)" 30 ||
  die "the load balancer does not serve $lb_url (docker logs of the $lb_stack.lb-1 container; kontena-lbconfig log $data/lbconfig.log)"
echo "the load balancer answers at $lb_url: $(curl -s "$lb_url")"

echo
echo "Where each instance runs (NODE/CONTAINER):"
kontena container ls

cat <<SUMMARY

Kontena is up.
  API         $url  (certificate: $data/master.pem)
  agents      $agents_uri  ($nodes nodes: node-1..node-$nodes, logs $data/agent-node-*.log,
              /metrics on 127.0.0.1:$((agent_metrics_port + 1))..$((agent_metrics_port + nodes)))
  metrics     http://127.0.0.1:$metrics_port/metrics  (the API server's, with the grid's stats)
  log window  $data/logs  (containers' lines, kept by the API server)
  etcd        $etcd_url  (data: $data/etcd)
  admin       user 'admin', password in $data/admin-password
  controllers $([ $in_containers = 1 ] && echo "containers $(container_name '<name>')" || echo "host processes, logs $data/<name>.log")
SUMMARY
for i in "${!controllers[@]}"; do
  printf '    %-12s http://127.0.0.1:%s/metrics  (/healthz)\n' "${controllers[$i]}" "$(ctl_http "$i")"
done
cat <<SUMMARY
  load balancer $lb_url  (stack $lb_stack: kontena/lb on the host network in front of web;
              tcp service on 127.0.0.1:$lb_tcp_port; the LB reads this etcd)
  logs        $data/apiserver.log, $data/etcd.log
  CLI         $bin/kontena  (config: ${KONTENA_CONFIG:-$HOME/.kontena_client.json})

Try:
  export PATH="$bin:\$PATH"
  kontena node ls
  kontena stack show $stack
  kontena service ls
  kontena service scale $stack/web 3
  curl $lb_url                    # web-1, web-2, web-3 in turn
  kontena service scale $lb_stack/web 5
  kontena node update --availability drain node-1
  kontena container ls
  kontena service logs --tail 20 $lb_stack/web
  kontena grid logs -f            # every container of the grid, live (^C to stop)
  kontena service stats $lb_stack/web
  curl -s http://127.0.0.1:$ctl_port/metrics | grep ^kontena_
  curl -s http://127.0.0.1:$metrics_port/metrics | grep ^kontena_container
  etcdctl --endpoints $etcd_url get --prefix /kontena/instances/$grid/ --keys-only

Stop it with: hack/down.sh   (state stays in $data; hack/up.sh brings it back)
SUMMARY
