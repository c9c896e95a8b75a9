# Shared helpers for the local-cluster scripts. Sourced, never executed.
# Every function here fails loudly with a message that names what went wrong
# and how to fix it: a newcomer should never have to read this file to
# understand an error.

K8S_VERSION="${K8S_VERSION:-1.20.2}"
FLEET_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/fleetstack"
K8S_BIN_CACHE="$FLEET_CACHE/kubernetes-v$K8S_VERSION/bin"
# Runtime state of the local cluster (pids, certs, etcd data, containerd root).
FLEET_STATE="${FLEET_CLUSTER_STATE:-/var/lib/fleetstack-cluster}"
FLEET_RUN="$FLEET_STATE/run"
FLEET_LOGS="$FLEET_STATE/logs"

log()  { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

# wait_for DESCRIPTION DEADLINE_SECONDS COMMAND...
# Polls COMMAND every 0.2 s until it succeeds; on timeout names what it
# waited for and where to look, instead of hanging.
wait_for() {
  local what="$1" deadline="$2"; shift 2
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - start >= deadline )); then
      log "timed out after ${deadline}s waiting for: $what"
      return 1
    fi
    sleep 0.2
  done
}

need_root() {
  [ "$(id -u)" = 0 ] || die "the local cluster needs root (it runs containerd, kubelet and edits iptables); re-run as root or with sudo"
}

# apt_install PKG... : installs only what is missing; apt-get update runs at
# most once per script run.
_APT_UPDATED=""
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages: ${missing[*]}; this script installs them with apt-get, which is not available here. Install them by hand."
  if [ -z "$_APT_UPDATED" ]; then
    log "apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed; check the Debian package mirror is reachable"
    _APT_UPDATED=1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || die "apt-get install ${missing[*]} failed"
}

# Free space check: a nearly full disk makes kubelet evict every pod and
# containerd fail image imports with confusing errors. Fail early instead.
check_disk() {
  local dir="$1" need_mb="$2" avail
  mkdir -p "$dir"
  avail=$(df -Pm "$dir" | awk 'NR==2 {print $4}')
  if [ "${avail:-0}" -lt "$need_mb" ]; then
    die "only ${avail} MB free under $dir, need at least ${need_mb} MB; free some disk (e.g. 'cargo clean', remove old images) and retry"
  fi
}

# check_port PORT NAME: refuses to start when something else already listens.
check_port() {
  local port="$1" name="$2" owner
  if owner=$(ss -Hltnp "sport = :$port" 2>/dev/null) && [ -n "$owner" ]; then
    die "port $port (needed by $name) is already in use: $owner. Stop that process, or run 'tests/kind/cluster down' if it is a leftover cluster."
  fi
}

node_ip() {
  # The address pods use to reach the API server and DNS: the source address
  # of the default route (falls back to the first global IPv4 address).
  local ip
  ip=$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for(i=1;i<NF;i++) if ($i=="src") {print $(i+1); exit}}')
  [ -n "$ip" ] || ip=$(ip -4 -o addr show scope global | awk '{split($4,a,"/"); print a[1]; exit}')
  [ -n "$ip" ] || die "could not find a global IPv4 address for the node; the cluster needs one network interface with an IPv4 address"
  echo "$ip"
}

# write_if_changed FILE < content: replaces FILE only when the content
# differs. Components watch their config files (kube-proxy exits when its
# file changes), so a second `up` must not touch files of running processes.
write_if_changed() {
  local file="$1" tmp
  tmp=$(mktemp "$file.XXXXXX")
  cat > "$tmp"
  if [ -f "$file" ] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
  else
    mv "$tmp" "$file"
  fi
}
