#!/usr/bin/env bash
# Installs what the build and tests need beyond the Rust toolchain, from the
# ordinary package clients only. Idempotent: does nothing when all is present.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../tests/kind/lib/common.sh"
# binutils: objcopy strips binaries for images; python3: image and DNS tools.
# tcpdump: the TLS e2e captures the node's traffic and looks for secrets in clear.
need=(binutils python3 python3-venv curl tcpdump)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt_install "${missing[@]}"; else die "missing packages: ${missing[*]} (apt-get install them)"; fi
fi
for c in cargo python3 kubectl; do
  command -v "$c" >/dev/null || die "'$c' is not on PATH"
done
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt >&2 || true
