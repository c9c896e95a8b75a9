//! deploy/device/install.sh puts the binary, the systemd unit, the CA and
//! the config in place (into a temporary root here), with the modes the
//! device key's state directory needs; the unit passes systemd-analyze.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn install_script_lays_out_binary_unit_config_and_state_dir() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("root");
    let binary = tmp.path().join("fleet-agent");
    std::fs::write(&binary, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let ca = tmp.path().join("ca.crt");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").expect("write");

    let run = |extra: &[&str]| {
        let out = Command::new("sh")
            .arg(repo().join("deploy/device/install.sh"))
            .args(["--binary", binary.to_str().expect("utf-8")])
            .args([
                "--url",
                "tls://nats.test:30422",
                "--ca",
                ca.to_str().expect("utf-8"),
            ])
            .args([
                "--labels",
                "site=lab",
                "--prefix",
                root.to_str().expect("utf-8"),
            ])
            .args(extra)
            .output()
            .expect("install.sh runs");
        assert!(
            out.status.success(),
            "install.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[]);
    assert_eq!(mode(&root.join("usr/local/bin/fleet-agent")), 0o755);
    assert_eq!(mode(&root.join("var/lib/fleet-agent")), 0o700);
    assert!(
        root.join("etc/systemd/system/fleet-agent.service")
            .is_file()
    );
    assert!(root.join("etc/fleet-agent/ca.crt").is_file());
    let conf = std::fs::read_to_string(root.join("etc/fleet-agent/agent.conf")).expect("conf");
    assert!(
        conf.contains("FLEET_NATS_URL=tls://nats.test:30422\n"),
        "{conf}"
    );
    assert!(conf.contains("FLEET_AGENT_LABELS=site=lab\n"), "{conf}");
    assert!(
        conf.contains("FLEET_DEVICE_STATE_DIR=/var/lib/fleet-agent\n"),
        "{conf}"
    );

    // A second run keeps a config the user edited.
    std::fs::write(
        root.join("etc/fleet-agent/agent.conf"),
        "FLEET_NATS_URL=edited\n",
    )
    .expect("edit");
    run(&[]);
    assert_eq!(
        std::fs::read_to_string(root.join("etc/fleet-agent/agent.conf")).expect("conf"),
        "FLEET_NATS_URL=edited\n"
    );

    // Missing arguments are refused.
    let out = Command::new("sh")
        .arg(repo().join("deploy/device/install.sh"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

/// The unit is valid for systemd (when systemd-analyze is installed; the
/// binary path is the only thing it may miss on a build machine).
#[test]
fn the_systemd_unit_verifies() {
    let unit = repo().join("deploy/device/fleet-agent.service");
    let Ok(out) = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
    else {
        eprintln!("systemd-analyze not installed; unit not verified");
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("/usr/local/bin/fleet-agent is not executable"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(problems.is_empty(), "systemd-analyze: {problems:?}");
}
