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
    let out = run(
        &format!("kubectl {}", args.join(" ")),
        Command::new("kubectl").args(args),
        stdin,
    )?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Installs CRDs and the controller once per test binary and waits until the
/// controller Deployment is available.
pub async fn ensure_controller() -> Result<()> {
    INSTALLED.get_or_try_init(install).await.map(|_| ())
}

async fn install() -> Result<()> {
    let root = repo_root();
    // One install path for users (quickstart) and tests: scripts/install-controller
    // renders the bootstrap chart with the real Helm engine and waits for the
    // controller Deployment to be available.
    run(
        "scripts/install-controller",
        Command::new(root.join("scripts/install-controller")).arg(CONTROLLER_NAMESPACE),
        None,
    )?;
    // Belt and braces: the Deployment must really be serving, not just applied.
    let deployments: Api<Deployment> = Api::namespaced(client().await?, CONTROLLER_NAMESPACE);
    poll(
        "the fleet-reconciler Deployment to be available",
        Duration::from_secs(60),
        || async {
            let list = deployments
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let available = list.items.iter().any(|d| {
                d.status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0)
                    > 0
            });
            Ok(available.then_some(()))
        },
    )
    .await
}
