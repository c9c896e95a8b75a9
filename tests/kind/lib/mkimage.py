#!/usr/bin/env python3
"""Write a single-layer container image as a docker-archive tar, without Docker.

The format is what `docker save` writes and what both `ctr images import` and
`kind load image-archive` read: manifest.json, a config blob and one layer tar
whose sha256 is the config's rootfs diff_id. Every file gets a fixed mtime and
owner so the same inputs give byte-identical images.

    mkimage.py --name fleetstack/fleet-agent:0.1.0 --out x.tar \
        --file /path/to/binary:/usr/local/bin/fleet-agent:0755 \
        --entrypoint /usr/local/bin/fleet-agent --user 65532:65532 [--env K=V]...
"""
import argparse, hashlib, io, json, os, subprocess, sys, tarfile

NONROOT = 65532


def add_bytes(tar, path, data, mode=0o644, uid=0):
    info = tarfile.TarInfo(path.lstrip("/"))
    info.size, info.mode, info.mtime, info.uid, info.gid = len(data), mode, 0, uid, uid
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, path, mode=0o755, uid=0):
    info = tarfile.TarInfo(path.lstrip("/"))
    info.type, info.mode, info.mtime, info.uid, info.gid = tarfile.DIRTYPE, mode, 0, uid, uid
    tar.addfile(info)


def shared_libs(binary):
    """Libraries the dynamic loader needs for `binary` (empty for static ones)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if out.returncode != 0 or "not a dynamic executable" in out.stdout + out.stderr:
        return []
    libs = []
    for line in out.stdout.splitlines():
        parts = line.split()
        if "=>" in parts:
            target = parts[parts.index("=>") + 1]
            if target.startswith("/"):
                libs.append(target)
            elif target == "not":
                sys.exit(f"mkimage: {binary} needs a library that is not installed: {line.strip()}")
        elif parts and parts[0].startswith("/"):
            libs.append(parts[0])  # the dynamic loader itself
    return libs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--file", action="append", default=[], help="SRC:DEST[:MODE]")
    ap.add_argument("--entrypoint", required=True)
    ap.add_argument("--user", default=f"{NONROOT}:{NONROOT}")
    ap.add_argument("--env", action="append", default=[])
    args = ap.parse_args()

    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in ["etc", "tmp", "usr", "usr/local", "usr/local/bin", "lib", "lib64", "var", "var/run"]:
            add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        add_bytes(tar, "etc/passwd", f"root:x:0:0:root:/:/sbin/nologin\nnonroot:x:{NONROOT}:{NONROOT}:nonroot:/tmp:/sbin/nologin\n".encode())
        add_bytes(tar, "etc/group", f"root:x:0:\nnonroot:x:{NONROOT}:\n".encode())
        add_bytes(tar, "etc/nsswitch.conf", b"hosts: files dns\n")
        seen = set()
        for spec in args.file:
            src, dest, *mode = spec.split(":")
            with open(src, "rb") as f:
                add_bytes(tar, dest, f.read(), int(mode[0], 8) if mode else 0o755)
            for lib in shared_libs(src):
                real = os.path.realpath(lib)
                if lib in seen:
                    continue
                seen.add(lib)
                parent = os.path.dirname(lib).lstrip("/")
                acc = ""
                for part in parent.split("/"):
                    acc = f"{acc}/{part}" if acc else part
                    if acc not in seen:
                        seen.add(acc)
                        add_dir(tar, acc)
                with open(real, "rb") as f:
                    add_bytes(tar, lib, f.read(), 0o755)
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()

    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": [args.entrypoint],
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"] + args.env,
            "User": args.user,
            "WorkingDir": "/tmp",
            "Labels": {"org.opencontainers.image.source": "https://github.com/nationtech/fleetstack"},
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "tests/kind/lib/mkimage.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [args.name], "Layers": ["layer.tar"]}]

    tmp = args.out + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.GNU_FORMAT) as out:
        add_bytes(out, "manifest.json", json.dumps(manifest).encode())
        add_bytes(out, config_name, config_bytes)
        add_bytes(out, "layer.tar", layer_bytes)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
