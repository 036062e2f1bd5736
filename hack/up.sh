#!/usr/bin/env bash
# Bring up a whole local platform in one command:
#   installs missing packages, builds, starts the machine's dockerd and the busybox test
#   image, an embedded etcd (own data directory and port), kontena-apiserver (HTTPS,
#   self-signed certificate, agents' endpoint), the five controllers (kontena-scheduler,
#   -ipam, -rescheduler, -health, -lbconfig) and the agents node-1..node-N; builds the load
#   balancer image kontena/lb (hack/lb-image.sh); creates the admin user, logs the CLI in,
#   creates and selects a grid, installs the example stacks hack/examples/hello.yml,
#   hack/examples/lb.yml (a kontena/lb load balancer, host network, in front of a web
#   service and a tcp service) and, with --hosts, hack/examples/discovery.yml (a client that
#   reaches `web` by its bare name across hosts), waits until every instance runs and the
#   load balancer answers, and prints what runs where and how to reach it.
# Idempotent: running it again reuses what is already running and what exists.
#
#   hack/up.sh --hosts           N "hosts" (hack/hosts.sh: a network namespace and a dockerd
#                                each), one agent per host with --overlay (VXLAN between the
#                                hosts, the grid's trusted subnet is their underlay, and DNS
#                                <service>.<stack>.<grid>.kontena.local); etcd and the agents'
#                                endpoint also listen on the hosts' master address
#   hack/up.sh --shared-dockerd  the N agents share the machine's dockerd and network
#                                namespace, without --overlay (no service discovery)
#   hack/up.sh                   the same as hack/up.sh --hosts
#   --controllers-in-containers  controllers as containers (hack/images.sh images,
#                                --network host, --restart unless-stopped), either mode
# Switching modes needs a hack/down.sh first (state is kept).
#
# Settings (environment):
#   KONTENA_DATA_DIR   where state, logs and pid files go   (default ~/.kontena-local)
#   KONTENA_PORT       API port on 127.0.0.1                  (default 9292)
#   KONTENA_AGENT_PORT agents' endpoint port                  (default 9293; on 127.0.0.1, with
#                      --hosts on the master address)
#   KONTENA_ETCD_PORT  embedded etcd client port              (default 23790; peer = +1)
#   KONTENA_CTL_PORT   first controller /metrics port         (default 9301: scheduler 9301,
#                      ipam 9302, rescheduler 9303, health 9304, lbconfig 9305)
#   KONTENA_METRICS_PORT the API server's /metrics port        (default 9300)
#   KONTENA_AGENT_METRICS_PORT agents' /metrics: node-N on this + N (default 9320; with
#                      --hosts on each host's underlay address)
#   KONTENA_LB_PORT    the example load balancer's HTTP port  (default 8080)
#   KONTENA_LB_TCP_PORT  ... and its tcp service's port       (default 8070)
#   KONTENA_GRID       grid to create and select              (default local)
#   KONTENA_NODES      how many agents (and hosts)            (default 3)
#   KONTENA_HOSTS_PREFIX hack/hosts.sh prefix of --hosts       (default kup)
#   KONTENA_HOSTS_SUBNET hack/hosts.sh subnet K of --hosts     (default 100: underlay
#                      10.250.K.0/24, master address 10.251.K.1)
#   KONTENA_BIN_DIR    use these binaries instead of building build/bin
#   KONTENA_CONFIG     the CLI's configuration file           (default ~/.kontena_client.json)
# Stop everything with hack/down.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

in_containers=0
mode=hosts
for a in "$@"; do
  case "$a" in
    --controllers-in-containers) in_containers=1 ;;
    --hosts) mode=hosts ;;
    --shared-dockerd) mode=shared ;;
    -h | --help)
      sed -n '2,47p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "up.sh: unknown option '$a' (--hosts, --shared-dockerd, --controllers-in-containers, --help)" >&2
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
disc_example=$root/hack/examples/discovery.yml
disc_stack=discovery
hprefix=${KONTENA_HOSTS_PREFIX:-kup}
hsubnet=${KONTENA_HOSTS_SUBNET:-100}
if ! [[ "$nodes" =~ ^[0-9]{1,3}$ ]] || [ "$nodes" -lt 1 ] || [ "$nodes" -gt 200 ]; then
  echo "up.sh: KONTENA_NODES '$nodes' must be 1..200" >&2
  exit 2
fi

step() { printf '\n==> [%3ss] %s\n' "$SECONDS" "$*"; }
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
data=$(cd "$data" && pwd -P) # one spelling: the hosts' owner file compares it

# One mode per data dir at a time: etcd and the apiserver listen on other addresses in each.
# A platform started before there were modes (no mode file) shares the machine's dockerd.
if running "$data/etcd.pid"; then
  old_mode=$(cat "$data/mode" 2>/dev/null || echo shared)
  if [ "$old_mode" != "$mode" ]; then
    die "the platform in $data runs in the $([ "$old_mode" = hosts ] && echo --hosts || echo --shared-dockerd) mode: stop it with hack/down.sh first (state is kept), then run hack/up.sh $([ "$mode" = hosts ] && echo --hosts || echo --shared-dockerd); or run hack/up.sh $([ "$old_mode" = hosts ] && echo --hosts || echo --shared-dockerd)"
  fi
fi
echo "$mode" >"$data/mode"

etcd_listen=$etcd_url
agent_listen=127.0.0.1:$agent_port
agent_etcd=$etcd_url
if [ "$mode" = hosts ]; then
  step "Starting $nodes hosts (hack/hosts.sh up $nodes --prefix $hprefix --subnet $hsubnet)"
  # hosts of one prefix belong to one data dir: another platform's hosts are never reused
  owner_file=/run/kontena-hosts/$hprefix/kontena-up-data-dir
  owner=$(cat "$owner_file" 2>/dev/null || true)
  if [ -n "$owner" ] && [ "$owner" != "$data" ]; then
    die "the hosts $hprefix-h* belong to the platform in $owner: set KONTENA_HOSTS_PREFIX and KONTENA_HOSTS_SUBNET to others (or stop that one with KONTENA_DATA_DIR=$owner hack/down.sh)"
  fi
  echo "$hprefix" >"$data/hosts-prefix"
  hosts_out=$(hack/hosts.sh up "$nodes" --prefix "$hprefix" --subnet "$hsubnet") ||
    die "hack/hosts.sh could not make the hosts (another prefix on subnet $hsubnet? KONTENA_HOSTS_SUBNET picks another; hack/hosts.sh down --prefix $hprefix cleans up)"
  echo "$data" >"$owner_file"
  master=$(awk '$1 == "master" { print $2 }' <<<"$hosts_out")
  declare -a host_ns host_ip host_sock
  while read -r what i ns ip sock; do
    [ "$what" = host ] || continue
    host_ns[i]=$ns
    host_ip[i]=$ip
    host_sock[i]=$sock
  done <<<"$hosts_out"
  if [ -z "$master" ] || [ ${#host_ns[@]} -ne "$nodes" ]; then
    die "unexpected output of hack/hosts.sh up: $hosts_out"
  fi
  for ((n = 1; n <= nodes; n++)); do
    echo "node-$n: netns ${host_ns[n]}, underlay ${host_ip[n]}, dockerd ${host_sock[n]}"
  done
  # what the hosts need from the root netns: etcd (agents, the load balancer) and the agents'
  # endpoint, on the master address (the hosts reach nothing else)
  etcd_listen=$etcd_url,http://$master:$etcd_port
  agent_listen=$master:$agent_port
  agents_uri="wss://$master:$agent_port/"
  agent_etcd=http://$master:$etcd_port
fi

step "Building the load balancer image kontena/lb (hack/lb-image.sh)"
KONTENA_BIN_DIR=$bin hack/lb-image.sh || die "cannot build the load balancer image kontena/lb"
if [ "$mode" = hosts ]; then
  # the hosts have no registry: copy the image into each host's dockerd when it differs,
  # before the agents start (an instance whose image is missing waits for a resync)
  lb_id=$(docker image inspect -f '{{.Id}}' kontena/lb:latest)
  for ((n = 1; n <= nodes; n++)); do
    h=(docker -H "unix://${host_sock[n]}")
    if [ "$("${h[@]}" image inspect -f '{{.Id}}' kontena/lb:latest 2>/dev/null || true)" = "$lb_id" ]; then
      echo "node-$n: kontena/lb up to date"
    else
      docker save kontena/lb:latest | "${h[@]}" load >/dev/null ||
        die "cannot load kontena/lb into the dockerd of node-$n (${host_sock[n]})"
      echo "node-$n: kontena/lb loaded"
    fi
  done
fi

step "Starting the embedded etcd ($etcd_url, data in $data/etcd)"
if running "$data/etcd.pid"; then
  echo "already running (pid $(cat "$data/etcd.pid"))"
else
  setsid nohup etcd --name kontena-local --data-dir "$data/etcd" \
    --listen-client-urls "$etcd_listen" --advertise-client-urls "$etcd_url" \
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
    --listen "127.0.0.1:$port" --agent-listen "$agent_listen" \
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
if [ "$mode" = hosts ]; then
  # the hosts share one machine: plain VXLAN between them, no WireGuard
  trusted=10.250.$hsubnet.0/24
  if kontena grid trusted-subnet ls | grep -qx "$trusted"; then
    echo "trusted subnet $trusted already set"
  else
    kontena grid trusted-subnet add "$trusted"
  fi
  # the generated certificate names 127.0.0.1 (and is kept in etcd): the agents dialling the
  # master address pin it instead
  # (SHA-256 of the first certificate's DER: coreutils only, no openssl CLI needed)
  pin=$(awk '/-----BEGIN CERTIFICATE-----/ { on = 1; next } /-----END CERTIFICATE-----/ { exit }
    on' "$data/master.pem" | base64 -d | sha256sum | cut -d' ' -f1)
  [[ "$pin" =~ ^[0-9a-f]{64}$ ]] || die "cannot read the certificate in $data/master.pem"
fi

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

if [ "$mode" = hosts ]; then
  step "Starting $nodes agents (node-N in host N's netns, --overlay, dialling $agents_uri)"
else
  step "Starting $nodes agents (node-1..node-$nodes) on the one dockerd"
fi
for ((n = 1; n <= nodes; n++)); do
  node=node-$n
  if running "$data/agent-$node.pid"; then
    echo "$node: already running (pid $(cat "$data/agent-$node.pid"))"
    continue
  fi
  if [ "$mode" = hosts ]; then
    # ip netns exec and setsid exec in place: the pid is the agent's
    setsid nohup ip netns exec "${host_ns[n]}" "$bin/kontena-agent" --uri "$agents_uri" \
      --token "$grid_token" --pin-sha256 "$pin" --node-name "$node" --grid "$grid" \
      --etcd-endpoints "$agent_etcd" --docker-socket "${host_sock[n]}" \
      --private-ip "${host_ip[n]}" --public-ip "${host_ip[n]}" --overlay \
      --metrics-listen "${host_ip[n]}:$((agent_metrics_port + n))" \
      >>"$data/agent-$node.log" 2>&1 </dev/null &
  else
    setsid nohup "$bin/kontena-agent" --uri "$agents_uri" --token "$grid_token" \
      --ca-cert "$data/master.pem" --node-name "$node" --etcd-endpoints "$etcd_url" \
      --docker-name-prefix "$node." --metrics-listen "127.0.0.1:$((agent_metrics_port + n))" \
      >>"$data/agent-$node.log" 2>&1 </dev/null &
  fi
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

stacks=("$stack" "$lb_stack")
step "Installing the example stacks $example and $lb_example"
# apply: install the first time, upgrade when the file changed, nothing otherwise; it waits
# for the deploys. The load balancer runs with host networking and reads this etcd.
kontena stack apply --timeout 300 "$example"
kontena stack apply --timeout 300 -v "etcd_endpoints=$agent_etcd" -v "http_port=$lb_port" \
  -v "tcp_port=$lb_tcp_port" "$lb_example"
if [ "$mode" = hosts ] && [ "$nodes" -ge 2 ]; then
  # the client keeps off web's nodes (affinity service!=web), so web answers across hosts
  step "Installing the discovery example $disc_example"
  web_n=$((nodes - 1 < 2 ? nodes - 1 : 2))
  kontena stack apply --timeout 300 -v "web_instances=$web_n" "$disc_example"
  stacks+=("$disc_stack")
elif [ "$mode" = hosts ]; then
  echo "(the discovery example $disc_example needs 2 nodes: not installed)"
fi

step "Waiting until every instance runs"
for s in "${stacks[@]}"; do
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
if [ "$mode" = hosts ]; then
  # the LB listens in the netns of the host it runs on: its underlay address
  lb_node=$(kontena container ls -q | awk -F/ -v c="$lb_stack.lb-1" '$2 == c { print $1; exit }')
  [[ "$lb_node" =~ ^node-([0-9]+)$ ]] || die "cannot tell which node runs $lb_stack.lb-1: $(kontena container ls)"
  lb_ip=${host_ip[${BASH_REMATCH[1]}]}
  lb_url="http://$lb_ip:$lb_port/"
fi
wait_http "$lb_url" "the load balancer (stack $lb_stack)" 30 ||
  die "the load balancer does not serve $lb_url (docker logs of the $lb_stack.lb-1 container; kontena-lbconfig log $data/lbconfig.log)"
echo "the load balancer answers at $lb_url: $(curl -s "$lb_url")"

echo
echo "Where each instance runs (NODE/CONTAINER):"
kontena container ls

if [ "$mode" = hosts ]; then
  agents_where="$agents_uri (on the master address $master; $nodes nodes, one per host)"
  lb_where="$lb_url  (stack $lb_stack: kontena/lb on the network of node-${lb_node#node-}'s host,
              ${lb_ip}, in front of web on the overlay; tcp service on $lb_ip:$lb_tcp_port)"
  etcd_where="$etcd_url and http://$master:$etcd_port for the hosts"
else
  agents_where="$agents_uri  ($nodes nodes: node-1..node-$nodes on the machine's dockerd,
              no overlay)"
  lb_where="$lb_url  (stack $lb_stack: kontena/lb on the host network in front of web;
              tcp service on 127.0.0.1:$lb_tcp_port; the LB reads this etcd)"
  etcd_where=$etcd_url
fi
cat <<SUMMARY

Kontena is up ($([ "$mode" = hosts ] && echo "--hosts: $nodes hosts, overlay and DNS" || echo "--shared-dockerd: one dockerd, no overlay")).
  API         $url  (certificate: $data/master.pem)
  agents      $agents_where
              logs $data/agent-node-*.log
  metrics     http://127.0.0.1:$metrics_port/metrics  (the API server's, with the grid's stats)
  log window  $data/logs  (containers' lines, kept by the API server)
  etcd        $etcd_where  (data: $data/etcd)
  admin       user 'admin', password in $data/admin-password
  controllers $([ $in_containers = 1 ] && echo "containers $(container_name '<name>')" || echo "host processes, logs $data/<name>.log")
SUMMARY
for i in "${!controllers[@]}"; do
  printf '    %-12s http://127.0.0.1:%s/metrics  (/healthz)\n' "${controllers[$i]}" "$(ctl_http "$i")"
done
if [ "$mode" = hosts ]; then
  echo "  hosts       (hack/hosts.sh status --prefix $hprefix; master address $master)"
  for ((n = 1; n <= nodes; n++)); do
    printf '    node-%-3s netns %-10s underlay %-14s docker -H unix://%s\n' "$n" "${host_ns[n]}" \
      "${host_ip[n]}" "${host_sock[n]}"
    printf '             agent /metrics http://%s:%s/metrics, log %s\n' "${host_ip[n]}" \
      "$((agent_metrics_port + n))" "$data/agent-node-$n.log"
  done
else
  echo "  agents' /metrics on 127.0.0.1:$((agent_metrics_port + 1))..$((agent_metrics_port + nodes))"
fi
cat <<SUMMARY
  load balancer $lb_where
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
SUMMARY
if [ "$mode" = hosts ]; then
  cat <<SUMMARY
  kontena service logs --tail 5 $disc_stack/client   # the client reaches web by its bare name
  ip netns exec ${host_ns[1]} ping -c1 10.81.0.2         # node-2's overlay address, from node-1's host
SUMMARY
fi
cat <<SUMMARY

Stop it with: hack/down.sh   (state stays in $data; hack/up.sh brings it back)
SUMMARY
