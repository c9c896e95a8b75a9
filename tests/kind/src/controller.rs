//! Installs the fleet-reconciler the way users do: the CRDs from
//! `charts/bootstrap/crds` and the bootstrap chart rendered by the real Helm
//! engine (`scripts/helm template`), applied with server-side apply. Never
//! `cargo run`: the e2e suite tests what we ship.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use tokio::sync::OnceCell;

use crate::{E2eError, Result, client, poll};

/// Namespace the chart is installed into by the e2e suite.
pub const CONTROLLER_NAMESPACE: &str = "fleet-system";
/// Helm release name used by the e2e suite.
pub const RELEASE: &str = "fleet";

static INSTALLED: OnceCell<()> = OnceCell::const_new();

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(what: &str, cmd: &mut Command, stdin: Option<&[u8]>) -> Result<Vec<u8>> {
    use std::io::Write;
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|e| E2eError::Command {
        what: what.into(),
        output: e.to_string(),
    })?;
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin was piped")
            .write_all(input)
            .map_err(|e| E2eError::Command {
                what: what.into(),
                output: e.to_string(),
            })?;
    }
    let out = child.wait_with_output().map_err(|e| E2eError::Command {
        what: what.into(),
        output: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(E2eError::Command {
            what: what.into(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(out.stdout)
}

/// `kubectl` with the suite's KUBECONFIG (inherited from the environment).
pub fn kubectl(args: &[&str], stdin: Option<&[u8]>) -> Result<String> {
    let out = run(&format!("kubectl {}", args.join(" ")), Command::new("kubectl").args(args), stdin)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Installs CRDs and the controller once per test binary and waits until the
/// controller Deployment is available.
pub async fn ensure_controller() -> Result<()> {
    INSTALLED.get_or_try_init(install).await.map(|_| ())
}

async fn install() -> Result<()> {
    let root = repo_root();
    let crds = root.join("charts/bootstrap/crds");
    kubectl(&["apply", "--server-side", "--force-conflicts", "-f", crds.to_str().expect("utf-8 path")], None)?;
    kubectl(&["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"], None)?;

    let rendered = run(
        "scripts/helm template (render the bootstrap chart)",
        Command::new(root.join("scripts/helm")).args([
            "template",
            RELEASE,
            root.join("charts/bootstrap").to_str().expect("utf-8 path"),
            "--namespace",
            CONTROLLER_NAMESPACE,
        ]),
        None,
    )?;
    let ns = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {CONTROLLER_NAMESPACE}\n"
    );
    kubectl(&["apply", "--server-side", "-f", "-"], Some(ns.as_bytes()))?;
    kubectl(
        &["apply", "--server-side", "--force-conflicts", "-n", CONTROLLER_NAMESPACE, "-f", "-"],
        Some(&rendered),
    )?;

    let deployments: Api<Deployment> = Api::namespaced(client().await?, CONTROLLER_NAMESPACE);
    poll(
        "the fleet-reconciler Deployment to become available",
        Duration::from_secs(120),
        || async {
            let list = deployments
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let Some(d) = list.items.first() else {
                return Err("no Deployment in the controller namespace".into());
            };
            let status = d.status.clone().unwrap_or_default();
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            if status.available_replicas.unwrap_or(0) >= want {
                Ok(Some(()))
            } else {
                Err(format!(
                    "{} of {want} replicas available",
                    status.available_replicas.unwrap_or(0)
                ))
            }
        },
    )
    .await
}
