#!/usr/bin/env bash
# Builds the Kubernetes server binaries (v1.20.2) from Debian bookworm's
# `kubernetes` source package and caches them under
# $XDG_CACHE_HOME/fleetstack/kubernetes-v<version>/bin. Only the first run on a
# machine pays for the build (5-8 minutes on 2 cores); later runs return at once.
# See docs/adr/0003-local-cluster-for-tests.md for why this exists.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
. "$here/common.sh"

BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

cached() {
  for b in "${BINARIES[@]}"; do [ -s "$K8S_BIN_CACHE/$b" ] || return 1; done
  [ -s "$K8S_BIN_CACHE/pause" ]
}

if cached; then
  exit 0
fi

need_root
apt_install golang-go rsync make gcc libc6-dev golang-github-modern-go-reflect2-dev dpkg-dev

src_root="$FLEET_CACHE/src"
mkdir -p "$src_root"
check_disk "$src_root" 4000

# The source package is fetched with apt's own client; this needs a deb-src
# entry for bookworm, which Debian images often lack.
if ! ls "$src_root"/kubernetes_*.orig.tar.gz >/dev/null 2>&1; then
  if ! apt-get source --print-uris kubernetes >/dev/null 2>&1 || ! grep -rqs "deb-src\|deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding a deb-src entry for bookworm (/etc/apt/sources.list.d/fleetstack-src.sources)"
    cat > /etc/apt/sources.list.d/fleetstack-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq >&2 || die "apt-get update failed after adding deb-src"
  fi
  log "downloading Debian's kubernetes source package"
  (cd "$src_root" && apt-get source --download-only kubernetes >&2) \
    || die "apt-get source kubernetes failed; the bookworm deb-src entry must be reachable"
fi

orig=$(ls "$src_root"/kubernetes_*.orig.tar.gz | head -n1)
work="$src_root/kubernetes-$K8S_VERSION"
if [ ! -f "$work/.extracted" ]; then
  rm -rf "$work"
  mkdir -p "$work"
  log "extracting $(basename "$orig")"
  tar -xzf "$orig" -C "$work" --strip-components=1
  touch "$work/.extracted"
fi

# Mandatory patch: vendored reflect2 v1.0.1 segfaults (mapiterinit) under
# Go >= 1.18 the first time a custom resource is written. Debian ships 1.0.2.
r2_src=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -d "$r2_src" ] || die "reflect2 sources missing at $r2_src (package golang-github-modern-go-reflect2-dev)"
if [ ! -f "$work/.reflect2-patched" ]; then
  log "replacing vendor/github.com/modern-go/reflect2 with Debian's 1.0.2"
  rm -rf "$work/vendor/github.com/modern-go/reflect2"
  cp -r "$r2_src" "$work/vendor/github.com/modern-go/reflect2"
  rm -f "$work/vendor/github.com/modern-go/reflect2/go.mod"
  touch "$work/.reflect2-patched"
fi

# GOPATH layout the 1.20 makefile expects.
gopath="$work/.go"
mkdir -p "$gopath/src/k8s.io"
ln -sfn "$work" "$gopath/src/k8s.io/kubernetes"

export GOPATH="$gopath" CGO_ENABLED=0 GOPROXY=off GOFLAGS=-mod=vendor GO111MODULE=on
export GOCACHE="$FLEET_CACHE/gocache"
# A failed earlier make can leave zero-byte generators behind.
if [ -d "$work/_output" ] && find "$work/_output" -type f -size 0 | grep -q .; then
  log "removing a half-built _output from a failed earlier build"
  rm -rf "$work/_output"
fi

log "building ${BINARIES[*]} (first run on this machine: 5-8 minutes)"
start=$SECONDS
whats=""
for b in "${BINARIES[@]}"; do whats="$whats cmd/$b"; done
(cd "$gopath/src/k8s.io/kubernetes" && make WHAT="${whats# }" >"$FLEET_CACHE/build-kubernetes.log" 2>&1) || {
  tail -n 30 "$FLEET_CACHE/build-kubernetes.log" >&2
  rm -rf "$work/_output"
  die "Kubernetes build failed; full log: $FLEET_CACHE/build-kubernetes.log"
}

# pause: the sandbox process of every pod, statically linked so the image
# needs nothing else.
gcc -Os -static -o "$work/_output/pause" "$work/build/pause/linux/pause.c" \
  || die "compiling pause.c failed (needs gcc and libc6-dev)"

mkdir -p "$K8S_BIN_CACHE.tmp"
for b in "${BINARIES[@]}"; do
  cp "$work/_output/bin/$b" "$K8S_BIN_CACHE.tmp/$b"
done
cp "$work/_output/pause" "$K8S_BIN_CACHE.tmp/pause"
rm -rf "$K8S_BIN_CACHE"
mv "$K8S_BIN_CACHE.tmp" "$K8S_BIN_CACHE"
log "built in $((SECONDS - start))s; cached in $K8S_BIN_CACHE"
