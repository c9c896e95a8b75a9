#!/bin/sh
# Installs fleet-agent on a device: binary, systemd unit, config, user.
#
#   sudo deploy/device/install.sh --binary ./fleet-agent --url tls://nats.example.net:30422 \
#        --ca ./ca.crt [--labels site=lab] [--prefix /]
#
# Then enroll (the token is read from a file so it never shows in `ps`):
#   sudo -u fleet-agent fleet-agent enroll --config /etc/fleet-agent/agent.conf --token-file TOKEN_FILE
#   sudo systemctl enable --now fleet-agent
#
# --prefix installs into another root (the tests use a temporary directory);
# systemctl and useradd are only run when the prefix is /.
set -eu

usage() { sed -n '2,12p' "$0" >&2; exit 2; }

binary= url= ca= labels= prefix=/
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary=$2; shift 2 ;;
        --url) url=$2; shift 2 ;;
        --ca) ca=$2; shift 2 ;;
        --labels) labels=$2; shift 2 ;;
        --prefix) prefix=$2; shift 2 ;;
        -h|--help) usage ;;
        *) echo "install.sh: unknown option $1" >&2; usage ;;
    esac
done
[ -n "$binary" ] && [ -n "$url" ] && [ -n "$ca" ] || usage
[ -x "$binary" ] || { echo "install.sh: $binary is not an executable" >&2; exit 1; }
[ -r "$ca" ] || { echo "install.sh: cannot read the CA file $ca" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
root=${prefix%/}

install -d -m 0755 "$root/usr/local/bin" "$root/etc/systemd/system" "$root/etc/fleet-agent"
install -m 0755 "$binary" "$root/usr/local/bin/fleet-agent"
install -m 0644 "$here/fleet-agent.service" "$root/etc/systemd/system/fleet-agent.service"
install -m 0644 "$ca" "$root/etc/fleet-agent/ca.crt"
install -d -m 0700 "$root/var/lib/fleet-agent"

conf="$root/etc/fleet-agent/agent.conf"
if [ -e "$conf" ]; then
    echo "install.sh: keeping the existing $conf"
else
    tmp=$(mktemp)
    sed -e "s|^FLEET_NATS_URL=.*|FLEET_NATS_URL=$url|" \
        -e "s|^FLEET_AGENT_LABELS=.*|FLEET_AGENT_LABELS=$labels|" \
        "$here/agent.conf.example" > "$tmp"
    install -m 0644 "$tmp" "$conf"
    rm -f "$tmp"
fi

if [ "$root" = "" ]; then
    if ! id fleet-agent >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /var/lib/fleet-agent \
            --shell /usr/sbin/nologin fleet-agent
    fi
    chown fleet-agent:fleet-agent /var/lib/fleet-agent
    systemctl daemon-reload
fi
echo "fleet-agent installed under ${prefix}; next: fleet-agent enroll --config /etc/fleet-agent/agent.conf --token-file TOKEN_FILE"
