#!/usr/bin/env python3
"""Cluster DNS for the local cluster: keeps dnsmasq's hosts file in step with
Services and Endpoints, since Debian bookworm has no CoreDNS.

Writes, for every Service, `<clusterIP> <svc>.<ns>.svc.cluster.local`; for
headless Services every ready or publishNotReady address under the Service
name; and for endpoints with a hostname (StatefulSet pods behind their
governing Service) `<ip> <hostname>.<svc>.<ns>.svc.cluster.local`. On a change
it rewrites the file atomically and sends dnsmasq SIGHUP to reload it.
"""
import argparse, json, os, signal, subprocess, sys, time

ZONE = "svc.cluster.local"


def kubectl_json(kubeconfig, *args):
    out = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "get", *args, "-A", "-o", "json"],
                         capture_output=True, text=True, timeout=20)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return json.loads(out.stdout)["items"]


def render(services, endpoints):
    lines = set()
    headless = set()
    for s in services:
        ns, name = s["metadata"]["namespace"], s["metadata"]["name"]
        ip = s.get("spec", {}).get("clusterIP")
        if ip and ip != "None":
            lines.add(f"{ip} {name}.{ns}.{ZONE}")
        elif ip == "None":
            headless.add((ns, name))
    for e in endpoints:
        ns, name = e["metadata"]["namespace"], e["metadata"]["name"]
        for subset in e.get("subsets") or []:
            for addr in (subset.get("addresses") or []) + (subset.get("notReadyAddresses") or []):
                ip = addr.get("ip")
                if not ip:
                    continue
                if (ns, name) in headless and addr in (subset.get("addresses") or []):
                    lines.add(f"{ip} {name}.{ns}.{ZONE}")
                if addr.get("hostname"):
                    lines.add(f"{ip} {addr['hostname']}.{name}.{ns}.{ZONE}")
    return "".join(sorted(l + "\n" for l in lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--hosts", required=True)
    ap.add_argument("--dnsmasq-pidfile", required=True)
    ap.add_argument("--interval", type=float, default=1.0)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    current = None
    while True:
        try:
            text = render(kubectl_json(args.kubeconfig, "services"), kubectl_json(args.kubeconfig, "endpoints"))
            if text != current:
                tmp = args.hosts + ".tmp"
                with open(tmp, "w") as f:
                    f.write(text)
                os.replace(tmp, args.hosts)
                current = text
                with open(args.dnsmasq_pidfile) as f:
                    os.kill(int(f.readline()), signal.SIGHUP)
                print(f"dns-sync: {len(text.splitlines())} records", flush=True)
        except Exception as e:  # keep serving; the next round retries
            print(f"dns-sync: {e}", flush=True)
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
