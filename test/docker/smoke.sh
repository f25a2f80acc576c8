#!/usr/bin/env bash
# Docker smoke test: builds the image, runs a chat completion (plain and streaming) through a container, then
# runs the compose `scale` setup (2 replicas behind nginx) and shows that requests reach both replicas.
#
# Runs unattended as root on a Debian machine without a Docker engine or Docker Hub: it installs podman, runc,
# debootstrap and podman-compose with apt when missing, keeps all container state in a private podman root
# (PHI4_PODMAN_DIR, default /var/tmp/phi4-podman) and builds the base images offline when they can't be pulled:
#   docker.io/library/debian:bookworm-slim  debootstrap --variant=minbase bookworm (+ the host's CA certificates)
#   docker.io/library/node:20-bookworm-slim that + the host's node 20 binary and npm, user node (uid 1000)
#   docker.io/library/nginx:1.27            that + Debian's nginx package (test/docker/nginx-offline.Dockerfile)
# Those are cached in the private root, so a rerun only rebuilds the app image (layer cache) and runs the tests.
# Containers only ever publish on 127.0.0.1, and everything started here is removed on exit.
#
# Environment:
#   PHI4_PODMAN_DIR   private podman state (default /var/tmp/phi4-podman); delete it to start from scratch
#   SMOKE_OFFLINE=1   don't try to pull base images, build them offline right away
#   SMOKE_REBUILD_BASE=1  rebuild the cached base images
#   SMOKE_KEEP=1      leave the containers running on exit (for debugging)
#   SMOKE_SKIP_COMPOSE=1  only the single-container part
#   SMOKE_DEBIAN_MIRROR   Debian mirror for debootstrap (default http://deb.debian.org/debian)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${PHI4_PODMAN_DIR:-/var/tmp/phi4-podman}"
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
NODE_IMAGE=docker.io/library/node:20-bookworm-slim   # the Dockerfile's default NODE_IMAGE
NGINX_IMAGE=docker.io/library/nginx:1.27             # docker-compose.yml's nginx image
APP_IMAGE=localhost/phi4-local-server:smoke
RUN_ID="phi4smoke$$"
PROJECT="$RUN_ID"
SINGLE="${RUN_ID}-single"
OFFLINE_CHECK="${RUN_ID}-nonet"
READY_TIMEOUT=${SMOKE_READY_TIMEOUT:-300}
REQUESTS_METRIC=phi4_requests_total   # src/server/metrics.ts: requests by endpoint, status, finish_reason

T_START=$SECONDS
declare -a RESULTS=()
COMPOSE_STARTED=0
unset CONTAINERS_CONF CONTAINERS_STORAGE_CONF CONTAINERS_REGISTRIES_CONF

log() { printf '\n\033[1m== %s\033[0m  (+%ss)\n' "$*" "$((SECONDS - T_START))"; }
info() { printf '   %s\n' "$*"; }
pass() { RESULTS+=("PASS  $*"); info "PASS: $*"; }
fail() { RESULTS+=("FAIL  $*"); info "FAIL: $*"; }
die() { fail "$*"; exit 1; }

summary() {
  local rc=$?
  set +e
  cleanup
  local r n_fail=0
  for r in "${RESULTS[@]}"; do [[ "$r" == FAIL* ]] && n_fail=$((n_fail + 1)); done
  if [ "$rc" -ne 0 ] && [ "$n_fail" -eq 0 ]; then RESULTS+=("FAIL  aborted (exit $rc)"); n_fail=1; fi
  printf '\n======== docker smoke test summary (%ss) ========\n' "$((SECONDS - T_START))"
  for r in "${RESULTS[@]}"; do printf '%s\n' "$r"; done
  [ "$n_fail" -eq 0 ] && echo PASS || echo FAIL
  printf 'docker-smoke: %d passed, %d failed\n' "$(( ${#RESULTS[@]} - n_fail ))" "$n_fail"
  [ "$n_fail" -eq 0 ] && exit 0
  exit 1
}

cleanup() {
  if [ "${SMOKE_KEEP:-0}" = 1 ]; then
    info "SMOKE_KEEP=1: leaving containers running (podman with CONTAINERS_CONF=$STATE/containers.conf CONTAINERS_STORAGE_CONF=$STATE/storage.conf)"
    return
  fi
  # only ever touch the private podman root (set up below)
  [ "${CONTAINERS_STORAGE_CONF:-}" = "$STATE/storage.conf" ] || return 0
  if [ "$COMPOSE_STARTED" = 1 ]; then
    (cd "$ROOT" && compose down -t 5 >/dev/null 2>&1)
  fi
  local ids
  ids="$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT" 2>/dev/null) $(podman ps -aq --filter "name=^${RUN_ID}" 2>/dev/null)"
  # shellcheck disable=SC2086
  [ -n "${ids// /}" ] && podman rm -f -v $ids >/dev/null 2>&1
  podman network rm -f "${PROJECT}_default" >/dev/null 2>&1
  local vols
  vols="$(podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT" 2>/dev/null)"
  # shellcheck disable=SC2086
  [ -n "$vols" ] && podman volume rm -f $vols >/dev/null 2>&1
  podman volume prune -f >/dev/null 2>&1   # anonymous /models volumes of removed containers
  return 0
}
trap summary EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------------------------
log "tools"
[ "$(id -u)" -eq 0 ] || die "run as root (podman here is configured rootful, apt installs missing tools)"
mkdir -p "$STATE"
# netavark + aardvark-dns: the compose network with service-name DNS (nginx -> server/replica).
missing=()
for pkg in podman runc debootstrap podman-compose netavark aardvark-dns iptables curl; do
  [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" == *"ok installed"* ]] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  info "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${missing[@]}" >"$STATE/apt.log" 2>&1 || { tail -20 "$STATE/apt.log"; die "apt-get install failed"; }
fi
command -v node >/dev/null || die "node (v20) is needed on the host for the offline base image"
info "$(podman --version), $(podman-compose --version 2>/dev/null | grep -m1 -i "compose" || true), node $(node --version)"

# Private podman configuration (crun can't run in this hybrid-cgroup VM; runc can't raise rlimits above the host's).
cat >"$STATE/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$STATE/events.log"
tmp_dir = "$STATE/tmp"
[network]
network_config_dir = "$STATE/networks"
EOF
cat >"$STATE/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$STATE/storage"
runroot = "$STATE/run"
EOF
cat >"$STATE/registries.conf" <<EOF
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
EOF
export CONTAINERS_CONF="$STATE/containers.conf"
export CONTAINERS_STORAGE_CONF="$STATE/storage.conf"
export CONTAINERS_REGISTRIES_CONF="$STATE/registries.conf"

# One run at a time; leftovers of an earlier run (killed, or SMOKE_KEEP=1) are removed first (`podman rm -f` also
# cleans up after a killed conmon: mounts, netns, port-forwarding rules). podman's run-time state lives on disk
# here, not on a tmpfs, so after a reboot it is stale: reset it on the first run of each boot.
exec 9>"$STATE/lock"
flock -w 3600 9 || die "another smoke run holds $STATE/lock"
boot_id="$(cat /proc/sys/kernel/random/boot_id)"
if [ "$(cat "$STATE/boot_id" 2>/dev/null || true)" != "$boot_id" ]; then
  rm -rf "$STATE/run" "$STATE/tmp"
  echo "$boot_id" >"$STATE/boot_id"
fi
stale="$(podman ps -aq --filter 'name=^phi4smoke' 2>/dev/null | tr '\n' ' ')"
[ -n "${stale// /}" ] && { info "removing containers of an earlier run: $stale"; podman rm -f -v $stale >/dev/null 2>&1 || true; }
podman network ls -q 2>/dev/null | grep '^phi4smoke' | xargs -r podman network rm -f >/dev/null 2>&1 || true
podman volume ls -q 2>/dev/null | grep '^phi4smoke' | xargs -r podman volume rm -f >/dev/null 2>&1 || true
rm -f /run/containers/networks/aardvark-dns/phi4smoke*   # DNS entries a killed run's networks left behind

# podman logs an error for every healthcheck it can't schedule (no systemd in this VM); `podman healthcheck run`
# works regardless. Keep those lines out of the output.
podman_q() { podman "$@" 2> >(grep -v 'systemd connection' >&2); }
# compose runs podman-compose (compose v1); `docker compose` v2 isn't installable here.
compose() { podman-compose -p "$PROJECT" -f "$ROOT/docker-compose.yml" "$@"; }

# ---------------------------------------------------------------------------------------------------------------
# Base images: pulled when a registry answers, else built offline; cached in $STATE.
host_cas() { ls /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; }

try_pull() {
  [ "${SMOKE_OFFLINE:-0}" = 1 ] && return 1
  timeout 600 podman pull -q "$1" >/dev/null 2>&1
}

build_debian_offline() {
  local rootfs="$STATE/rootfs-bookworm"
  local mirror="${SMOKE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  info "debootstrap --variant=minbase bookworm from $mirror"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" >"$STATE/debootstrap.log" 2>&1 \
    || { tail -20 "$STATE/debootstrap.log"; die "debootstrap failed (log: $STATE/debootstrap.log)"; }
  # Intercepting-proxy CAs of this host, so HTTPS inside RUN steps (npm ci, apt) works.
  local ca
  for ca in $(host_cas); do cp "$ca" "$rootfs/usr/local/share/ca-certificates/"; done
  chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 || true
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
  tar -C "$rootfs" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["bash"]' \
    --change 'LABEL phi4.offline-base=debootstrap' - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

build_node_offline() {
  local node_bin npm_dir ctx
  node_bin="$(readlink -f "$(command -v node)")"
  [[ "$("$node_bin" --version)" == v20.* ]] || die "host node is $("$node_bin" --version), the image needs v20"
  npm_dir="$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)"
  [ -f "$npm_dir/package.json" ] || die "can't find npm's folder (got $npm_dir)"
  ctx="$STATE/node-context"
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$node_bin" "$ctx/node"
  cp -a "$npm_dir" "$ctx/npm"
  # Node's headers, where the official image has them: the image build compiles native/malloc-trim against them.
  [ -f /usr/include/node/common.gypi ] || die "host Node headers missing (/usr/include/node): the image build needs them"
  cp -a /usr/include/node "$ctx/include-node"
  cat >"$ctx/Dockerfile" <<EOF
FROM $DEBIAN_IMAGE
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY include-node /usr/local/include/node
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
 && node --version && npm --version
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
LABEL phi4.offline-base=host-node
CMD ["node"]
EOF
  podman build --pull=never -q -t "$NODE_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
}

# A pulled node image gets this host's CA certificates (needed behind an intercepting proxy for npm ci).
add_cas_to_pulled_node() {
  [ -n "$(host_cas)" ] || return 0
  local ctx="$STATE/ca-context"
  rm -rf "$ctx" && mkdir -p "$ctx/certs"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/certs/"
  cat >"$ctx/Dockerfile" <<EOF
FROM $NODE_IMAGE
COPY certs/ /usr/local/share/extra-ca/
RUN cat /usr/local/share/extra-ca/*.crt > /usr/local/share/extra-ca/bundle.pem
ENV NODE_EXTRA_CA_CERTS=/usr/local/share/extra-ca/bundle.pem
EOF
  podman build --pull=never -q -t "$NODE_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
}

# A node base built offline before it carried Node's headers is rebuilt.
base_complete() {
  [ "$2" != node ] || podman_q run --rm --pull=never "$1" test -f /usr/local/include/node/common.gypi
}

ensure_base() {
  local image="$1" kind="$2" t0=$SECONDS
  if [ "${SMOKE_REBUILD_BASE:-0}" != 1 ] && podman image exists "$image" && base_complete "$image" "$kind"; then
    info "$image: cached"
    return
  fi
  if try_pull "$image"; then
    [ "$kind" = node ] && add_cas_to_pulled_node
    info "$image: pulled ($((SECONDS - t0))s)"
    return
  fi
  case "$kind" in
    debian) build_debian_offline ;;
    node) ensure_base "$DEBIAN_IMAGE" debian; build_node_offline ;;
    nginx)
      ensure_base "$DEBIAN_IMAGE" debian
      podman build --pull=never -q --build-arg "BASE=$DEBIAN_IMAGE" -t "$NGINX_IMAGE" \
        -f "$ROOT/test/docker/nginx-offline.Dockerfile" "$ROOT/test/docker" >/dev/null ;;
  esac
  info "$image: built offline ($((SECONDS - t0))s)"
}

log "base images"
ensure_base "$NODE_IMAGE" node
[ "${SMOKE_SKIP_COMPOSE:-0}" = 1 ] || ensure_base "$NGINX_IMAGE" nginx
pass "base images ready"

# ---------------------------------------------------------------------------------------------------------------
log "build $APP_IMAGE"
t0=$SECONDS
# --format docker keeps the HEALTHCHECK (the OCI format drops it).
if podman build --pull=never --format docker -t "$APP_IMAGE" "$ROOT" >"$STATE/build.log" 2>&1; then
  pass "image built ($((SECONDS - t0))s, $(podman image inspect --format '{{.Size}}' "$APP_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
else
  tail -40 "$STATE/build.log"
  die "podman build failed (log: $STATE/build.log)"
fi
# Keep the dependency stages tagged (cache for the next run: npm ci is the slow, networked step), then drop
# dangling images from earlier builds so the private root doesn't grow with every source change.
for stage in modules prod-modules; do
  podman build --pull=never --format docker --target "$stage" -t "$APP_IMAGE-$stage" "$ROOT" >>"$STATE/build.log" 2>&1 || true
done
podman image prune -f >/dev/null 2>&1 || true
[ "$(podman image inspect --format '{{.Config.User}}' "$APP_IMAGE")" = node ] && pass "image runs as user node" \
  || fail "image user is '$(podman image inspect --format '{{.Config.User}}' "$APP_IMAGE")', not node"

# ---------------------------------------------------------------------------------------------------------------
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

# in_container NAME PATH: GET http://127.0.0.1:8080PATH from inside the container (no network namespace games).
in_container() {
  podman exec "$1" node -e "fetch('http://127.0.0.1:8080$2').then(async r=>{process.stdout.write(await r.text());process.exit(r.ok?0:1)},e=>{console.error(String(e));process.exit(2)})"
}

# wait_ready NAME [URL]: polls /ready (through URL when given, else inside the container) until 200.
wait_ready() {
  local name="$1" url="${2:-}" deadline=$((SECONDS + READY_TIMEOUT))
  while [ $SECONDS -lt $deadline ]; do
    local state
    state="$(podman inspect --format '{{.State.Status}}' "$name" 2>/dev/null || echo missing)"
    if [ "$state" != running ] && [ "$state" != created ]; then
      info "container $name is $state; its log:"; podman logs --tail 30 "$name" 2>&1 | sed 's/^/     /'
      return 1
    fi
    if [ -n "$url" ]; then
      curl -fsS -m 5 -o /dev/null "$url/ready" 2>/dev/null && return 0
    else
      in_container "$name" /ready >/dev/null 2>&1 && return 0
    fi
    sleep 2
  done
  info "$name not ready after ${READY_TIMEOUT}s; its log:"; podman logs --tail 30 "$name" 2>&1 | sed 's/^/     /'
  return 1
}

chat_body() { # chat_body MODEL STREAM
  printf '{"model":"%s","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":12,"temperature":0,"stream":%s}' "$1" "$2"
}

# chat_checks BASE_URL LABEL: non-streaming and streaming chat completions.
chat_checks() {
  local base="$1" label="$2" model out
  model="$(curl -fsS -m 10 "$base/v1/models" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).data[0].id))')" \
    || { fail "$label: GET /v1/models"; return; }
  info "model: $model"
  out="$(curl -sS -m 120 -H 'content-type: application/json' -d "$(chat_body "$model" false)" "$base/v1/chat/completions")" || true
  if node -e 'const r=JSON.parse(process.argv[1]);if(r.object!=="chat.completion"||typeof r.choices?.[0]?.message?.content!=="string"||!(r.usage?.completion_tokens>0))process.exit(1)' "$out" 2>/dev/null; then
    pass "$label: chat completion (non-streaming): $(node -e 'const r=JSON.parse(process.argv[1]);console.log(JSON.stringify(r.choices[0].message.content).slice(0,60)+" finish="+r.choices[0].finish_reason+" tokens="+r.usage.completion_tokens)' "$out")"
  else
    fail "$label: chat completion (non-streaming): ${out:0:300}"
  fi
  out="$(curl -sS -N -m 120 -H 'content-type: application/json' -d "$(chat_body "$model" true)" "$base/v1/chat/completions")" || true
  local chunks
  chunks="$(grep -c '^data: {.*"chat.completion.chunk"' <<<"$out" || true)"
  local last
  last="$(tr -d '\r' <<<"$out" | grep -v '^$' | tail -n 1 || true)"
  if [ "$chunks" -gt 0 ] && [ "$last" = 'data: [DONE]' ]; then
    pass "$label: chat completion (streaming): $chunks SSE chunks, ends with data: [DONE]"
  else
    fail "$label: chat completion (streaming): ${out:0:300}"
  fi
}

# playground_checks BASE_URL LABEL: the web playground (GET /) and an asset, with their security headers.
playground_checks() {
  local base="$1" label="$2" headers
  headers="$(curl -fsS -m 10 -D - -o /dev/null "$base/" 2>/dev/null | tr -d '\r' || true)"
  if grep -qi "^content-type: text/html" <<<"$headers" && grep -qi "^content-security-policy: default-src 'self'" <<<"$headers"; then
    pass "$label: playground at / (text/html with its Content-Security-Policy)"
  else
    fail "$label: GET / is not the playground: ${headers:0:300}"
  fi
  curl -fsS -m 10 -o /dev/null "$base/playground/app.js" && pass "$label: playground assets" || fail "$label: GET /playground/app.js"
}

# ---------------------------------------------------------------------------------------------------------------
log "single container"
PORT="$(free_port)"
podman_q run -d --name "$SINGLE" -p "127.0.0.1:$PORT:8080" "$APP_IMAGE" >/dev/null
info "$SINGLE on 127.0.0.1:$PORT (empty /models volume: the tiny model is built on first start)"
t0=$SECONDS
if wait_ready "$SINGLE" "http://127.0.0.1:$PORT"; then
  pass "single: /ready after $((SECONDS - t0))s"
  # (no `| grep -q` with pipefail: grep exiting early would fail the pipeline with SIGPIPE)
  grep -q 'SYNTHETIC model' <<<"$(podman logs "$SINGLE" 2>&1)" && pass "single: logs warn about the synthetic model" \
    || fail "single: no synthetic-model warning in the log"
  curl -fsS -m 5 "http://127.0.0.1:$PORT/health" >/dev/null && pass "single: /health" || fail "single: /health"
  chat_checks "http://127.0.0.1:$PORT" single
  playground_checks "http://127.0.0.1:$PORT" single
  metrics="$(curl -fsS -m 5 "http://127.0.0.1:$PORT/metrics" || true)"
  if grep -q "^$REQUESTS_METRIC{.*endpoint=\"/v1/chat/completions\"" <<<"$metrics"; then
    pass "single: /metrics counts the chat requests ($REQUESTS_METRIC)"
  else
    fail "single: /metrics has no $REQUESTS_METRIC for /v1/chat/completions: $(head -c 300 <<<"$metrics")"
  fi
  if hc="$(podman healthcheck run "$SINGLE" 2>&1)"; then pass "single: HEALTHCHECK passes"; else fail "single: HEALTHCHECK: $hc"; fi
  [ "$(podman exec "$SINGLE" id -u)" = 1000 ] && pass "single: runs as uid 1000" || fail "single: not uid 1000"
  t0=$SECONDS
  podman_q stop -t 30 "$SINGLE" >/dev/null
  code="$(podman inspect --format '{{.State.ExitCode}}' "$SINGLE")"
  [ "$code" = 0 ] && pass "single: SIGTERM -> clean exit in $((SECONDS - t0))s" || fail "single: exit code $code after SIGTERM"
else
  fail "single: not ready"
fi
podman rm -f -v "$SINGLE" >/dev/null 2>&1 || true

log "no network at run time"
podman_q run -d --name "$OFFLINE_CHECK" --network none "$APP_IMAGE" >/dev/null
t0=$SECONDS
if wait_ready "$OFFLINE_CHECK"; then
  pass "--network none: builds the tiny model and gets ready ($((SECONDS - t0))s)"
else
  fail "--network none: not ready"
fi
podman rm -f -v "$OFFLINE_CHECK" >/dev/null 2>&1 || true

[ "${SMOKE_SKIP_COMPOSE:-0}" = 1 ] && exit 0

# ---------------------------------------------------------------------------------------------------------------
log "compose: scale profile (server + 1 replica behind nginx)"
# The model volume is the compose default (named volume, prefixed with the project name, so it's new and empty).
unset PHI4_MODELS API_KEY API_KEY_FILE METRICS_PUBLIC CONTEXT_LENGTH MAX_TOKENS_DEFAULT REQUEST_TIMEOUT SHUTDOWN_GRACE MODEL_NAME THREADS MAX_QUEUE
export PHI4_IMAGE="$APP_IMAGE" PHI4_BIND=127.0.0.1 PHI4_PORT PHI4_LB_PORT EXTRA_REPLICAS=1 MEM_LIMIT=2g LOG_LEVEL=info
PHI4_PORT="$(free_port)"
PHI4_LB_PORT="$(free_port)"
while [ "$PHI4_LB_PORT" = "$PHI4_PORT" ]; do PHI4_LB_PORT="$(free_port)"; done
COMPOSE_STARTED=1
cd "$ROOT"
# podman-compose 1.0.x ignores `profiles` and compose v2's `depends_on: condition`, so start in two steps: the
# server first (it builds the tiny model into the shared volume), then nginx with its dependencies.
compose up -d --no-build server >"$STATE/compose.log" 2>&1 || { cat "$STATE/compose.log"; die "podman-compose up server"; }
server_cnt="$(podman ps --filter "label=io.podman.compose.project=$PROJECT" --filter label=com.docker.compose.service=server --format '{{.Names}}' | head -1)"
[ -n "$server_cnt" ] || { cat "$STATE/compose.log"; die "compose: server container not running"; }
wait_ready "$server_cnt" "http://127.0.0.1:$PHI4_PORT" && pass "compose: server ready on 127.0.0.1:$PHI4_PORT" \
  || die "compose: server not ready"
compose up -d --no-build nginx >>"$STATE/compose.log" 2>&1 || { cat "$STATE/compose.log"; die "podman-compose up nginx"; }
mapfile -t replicas < <(podman ps --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}} {{.Labels}}' \
  | grep -E 'com.docker.compose.service:(server|replica)' | awk '{print $1}' | sort)
info "replicas: ${replicas[*]}"
[ "${#replicas[@]}" -eq 2 ] || { cat "$STATE/compose.log"; die "compose: expected 2 replicas, found ${#replicas[@]}"; }
for c in "${replicas[@]}"; do wait_ready "$c" || die "compose: $c not ready"; done
pass "compose: 2 replicas ready"
hc_ok=1; mems=""
for c in "${replicas[@]}"; do
  podman healthcheck run "$c" >/dev/null 2>&1 || hc_ok=0
  mems+="$(podman inspect --format '{{.HostConfig.Memory}}' "$c" | awk '{printf "%.0fG ", $1/2^30}')"
done
[ "$hc_ok" = 1 ] && pass "compose: healthcheck passes on both replicas" || fail "compose: healthcheck failing"
[ "$mems" = "2G 2G " ] && pass "compose: memory limit applied (MEM_LIMIT=2g)" || fail "compose: memory limits are '$mems', expected 2G each"
nginx_cnt="$(podman ps --filter "label=io.podman.compose.project=$PROJECT" --filter label=com.docker.compose.service=nginx --format '{{.Names}}' | head -1)"
[ -n "$nginx_cnt" ] || { cat "$STATE/compose.log"; die "compose: nginx not running"; }
LB="http://127.0.0.1:$PHI4_LB_PORT"
deadline=$((SECONDS + 60))
until curl -fsS -m 5 -o /dev/null "$LB/ready" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || { podman logs --tail 30 "$nginx_cnt"; die "compose: nginx not answering on $LB"; }
  sleep 1
done
pass "compose: nginx answers on 127.0.0.1:$PHI4_LB_PORT"

chat_checks "$LB" "via nginx"
playground_checks "$LB" "via nginx"

# Chat completions a replica answered, from its own /metrics: the sum of phi4_requests_total over the series with
# endpoint="/v1/chat/completions" (0 before the first one).
chat_requests() { # chat_requests CONTAINER
  in_container "$1" /metrics | node -e '
    let text = "";
    process.stdin.on("data", (d) => (text += d)).on("end", () => {
      let total = 0;
      for (const line of text.split("\n")) {
        const m = /^(\w+)\{([^}]*)\}\s+(\S+)/.exec(line);
        if (m && m[1] === process.argv[1] && m[2].includes("endpoint=\"/v1/chat/completions\"")) total += Number(m[3]);
      }
      console.log(total);
    });
  ' "$REQUESTS_METRIC"
}

N=8
declare -A before=()
for c in "${replicas[@]}"; do before[$c]="$(chat_requests "$c")" || die "compose: can't read /metrics of $c"; done
model="$(curl -fsS -m 10 "$LB/v1/models" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).data[0].id))')"
ok=0
pids=()
for i in $(seq 1 "$N"); do
  # two at a time, so least_conn has something to balance
  curl -fsS -m 120 -o "$STATE/lb-$i.json" -H 'content-type: application/json' -d "$(chat_body "$model" false)" "$LB/v1/chat/completions" &
  pids+=($!)
  if [ $((i % 2)) -eq 0 ]; then
    for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
    pids=()
  fi
done
for p in "${pids[@]}"; do wait "$p" && ok=$((ok + 1)); done
rm -f "$STATE"/lb-*.json
[ "$ok" -eq "$N" ] && pass "compose: $N/$N chat completions through nginx" || fail "compose: only $ok/$N requests through nginx succeeded"
all_served=1
counts=""
for c in "${replicas[@]}"; do
  after="$(chat_requests "$c")" || die "compose: can't read /metrics of $c"
  served=$((after - ${before[$c]:-0}))
  counts+="$c=$served "
  [ "$served" -gt 0 ] || all_served=0
done
[ "$all_served" = 1 ] && pass "compose: requests reached both replicas, per their /metrics ($counts)" \
  || fail "compose: not every replica served requests ($counts)"

# Requests of one conversation (same X-Session-Id) all land on one replica, where its prefix is cached.
for c in "${replicas[@]}"; do before[$c]="$(chat_requests "$c")" || die "compose: can't read /metrics of $c"; done
S=6
sok=0
for i in $(seq 1 "$S"); do
  curl -fsS -m 120 -o /dev/null -H 'content-type: application/json' -H 'x-session-id: conversation-42' \
    -d "$(chat_body "$model" false)" "$LB/v1/chat/completions" && sok=$((sok + 1))
done
sticky=""
holders=0
for c in "${replicas[@]}"; do
  served=$(( $(chat_requests "$c") - ${before[$c]:-0} ))
  sticky+="$c=$served "
  [ "$served" -eq 0 ] || holders=$((holders + 1))
done
[ "$sok" -eq "$S" ] && [ "$holders" -eq 1 ] && pass "compose: one session's $S requests all reached one replica ($sticky)" \
  || fail "compose: a session's requests were spread or failed ($sok/$S ok; $sticky)"

# nginx's view (access log: upstream=IP:PORT per request), for the record.
declare -A ip_name=()
for c in "${replicas[@]}"; do
  ip_name[$(podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$c")]="$c"
done
view=""
while read -r n addr; do view+="${ip_name[${addr%:*}]:-$addr}=$n "; done < <(
  podman logs "$nginx_cnt" 2>/dev/null | grep '"POST /v1/chat/completions' | grep -o 'upstream=[^ ]*' | cut -d= -f2 | sort | uniq -c)
info "nginx upstream counts (all chat requests incl. the two checks above): $view"
