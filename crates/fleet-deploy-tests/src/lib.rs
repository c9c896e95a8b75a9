//! Helpers for testing what users deploy: the bootstrap chart (rendered by
//! the real Helm engine through `scripts/helm`), the examples, and the
//! Argo CD health checks. Applies go to the real API server in `KUBECONFIG`
//! through `kubectl`, the same client users have.
//!
//! Everything here returns typed errors that carry the command and its
//! stderr, so a failing test says what the tool said.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Kinds the test cluster cannot accept because their CRDs are not installed
/// there (the Prometheus Operator's ServiceMonitor).
pub const KINDS_WITHOUT_CRD_ON_TEST_CLUSTER: &[&str] = &["ServiceMonitor"];

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("could not start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{stderr}{stdout}")]
    Failed {
        command: String,
        status: String,
        stdout: String,
        stderr: String,
    },
    #[error("`{command}` printed YAML that does not parse: {source}")]
    Yaml {
        command: String,
        source: serde_yaml::Error,
    },
    #[error(
        "KUBECONFIG is not set: this test applies to a real API server. Run it through \
         scripts/test, or start the local cluster with `tests/kind/cluster up --control-plane` \
         and export KUBECONFIG=/var/lib/fleetstack-cluster/kubeconfig"
    )]
    NoKubeconfig,
    #[error("could not read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The workspace root (this crate lives in `crates/fleet-deploy-tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate is two levels below the workspace root")
        .to_path_buf()
}

pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/bootstrap")
}

pub fn read(path: &Path) -> Result<String, DeployError> {
    std::fs::read_to_string(path).map_err(|source| DeployError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Output of a finished command.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command, optionally feeding `stdin`; never fails on a non-zero
/// exit (callers decide: some tests expect a refusal).
pub fn run(program: &Path, args: &[&str], stdin: Option<&str>) -> Result<Output, DeployError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(repo_root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| DeployError::Spawn {
        program: program.display().to_string(),
        source,
    })?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        // A child that exits early closes the pipe; its stderr says why.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| DeployError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
    Ok(Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Like [`run`], but a non-zero exit is an error carrying the output.
pub fn run_ok(program: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, DeployError> {
    let out = run(program, args, stdin)?;
    if out.success {
        Ok(out.stdout)
    } else {
        Err(DeployError::Failed {
            command: format!("{} {}", program.display(), args.join(" ")),
            status: "non-zero exit".into(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

fn helm() -> PathBuf {
    repo_root().join("scripts/helm")
}

/// `scripts/helm lint <chart> --strict <extra...>`.
pub fn helm_lint(extra: &[&str]) -> Result<Output, DeployError> {
    let chart = chart_dir();
    let mut args = vec!["lint", chart.to_str().expect("utf-8 path"), "--strict"];
    args.extend_from_slice(extra);
    run(&helm(), &args, None)
}

/// `scripts/helm template <release> <chart> -n <namespace> <extra...>`:
/// the raw stream, or the failure (schema refusals are failures).
pub fn helm_template_raw(
    release: &str,
    namespace: &str,
    extra: &[&str],
) -> Result<Output, DeployError> {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        release,
        chart.to_str().expect("utf-8 path"),
        "-n",
        namespace,
    ];
    args.extend_from_slice(extra);
    run(&helm(), &args, None)
}

/// Renders the chart and parses every document.
pub fn helm_template(
    release: &str,
    namespace: &str,
    extra: &[&str],
) -> Result<Rendered, DeployError> {
    let out = helm_template_raw(release, namespace, extra)?;
    let command = format!(
        "scripts/helm template {release} charts/bootstrap {}",
        extra.join(" ")
    );
    if !out.success {
        return Err(DeployError::Failed {
            command,
            status: "non-zero exit".into(),
            stdout: out.stdout,
            stderr: out.stderr,
        });
    }
    let docs = parse_stream(&out.stdout).map_err(|source| DeployError::Yaml { command, source })?;
    Ok(Rendered {
        text: out.stdout,
        docs,
    })
}

/// Every non-empty document of a multi-document YAML stream.
pub fn parse_stream(text: &str) -> Result<Vec<serde_yaml::Value>, serde_yaml::Error> {
    let mut docs = Vec::new();
    for de in serde_yaml::Deserializer::from_str(text) {
        let v = serde_yaml::Value::deserialize(de)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

use serde::Deserialize as _;

/// A rendered chart: the stream as printed and its parsed documents.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub text: String,
    pub docs: Vec<serde_yaml::Value>,
}

impl Rendered {
    pub fn of_kind(&self, kind: &str) -> Vec<&serde_yaml::Value> {
        self.docs
            .iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .collect()
    }

    /// The single object of a kind; panics with the kinds present otherwise.
    pub fn one(&self, kind: &str) -> &serde_yaml::Value {
        let found = self.of_kind(kind);
        assert_eq!(
            found.len(),
            1,
            "expected exactly one {kind}, rendered kinds: {:?}",
            self.kinds()
        );
        found[0]
    }

    pub fn kinds(&self) -> Vec<String> {
        self.docs
            .iter()
            .map(|d| d["kind"].as_str().unwrap_or("<none>").to_string())
            .collect()
    }

    /// The documents as one YAML stream, without the given kinds.
    pub fn stream_without(&self, kinds: &[&str]) -> String {
        let mut out = String::new();
        for d in &self.docs {
            if kinds.contains(&d["kind"].as_str().unwrap_or("")) {
                continue;
            }
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(d).expect("a parsed value serializes"));
        }
        out
    }
}

/// `kubectl` against the cluster in `KUBECONFIG`; refuses to run without it
/// so a test never talks to whatever cluster the machine's default config
/// points at.
pub struct Kubectl {
    kubeconfig: String,
}

impl Kubectl {
    pub fn from_env() -> Result<Self, DeployError> {
        match std::env::var("KUBECONFIG") {
            Ok(k) if !k.is_empty() => Ok(Kubectl { kubeconfig: k }),
            _ => Err(DeployError::NoKubeconfig),
        }
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Output, DeployError> {
        let mut full = vec!["--kubeconfig", self.kubeconfig.as_str()];
        full.extend_from_slice(args);
        run(Path::new("kubectl"), &full, stdin)
    }

    pub fn run_ok(&self, args: &[&str], stdin: Option<&str>) -> Result<String, DeployError> {
        let mut full = vec!["--kubeconfig", self.kubeconfig.as_str()];
        full.extend_from_slice(args);
        run_ok(Path::new("kubectl"), &full, stdin)
    }

    /// Installs (for real) the generated CRDs of `charts/bootstrap/crds` and
    /// waits until the API server serves them. Server-side apply with
    /// `--force-conflicts`: other suites on the shared cluster install the
    /// same files under their own field managers.
    pub fn install_crds(&self) -> Result<(), DeployError> {
        let dir = chart_dir().join("crds");
        let dir = dir.to_str().expect("utf-8 path");
        self.run_ok(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=fleet-deploy-tests",
                "-f",
                dir,
            ],
            None,
        )?;
        self.run_ok(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "-f",
                dir,
            ],
            None,
        )?;
        Ok(())
    }

    /// Server-side dry-run apply of a YAML stream into `namespace`: the API
    /// server runs defaulting, schema validation and admission, and
    /// persists nothing.
    pub fn dry_run_apply(&self, namespace: &str, yaml: &str) -> Result<String, DeployError> {
        self.run_ok(
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "--field-manager=fleet-deploy-tests",
                "-n",
                namespace,
                "-o",
                "name",
                "-f",
                "-",
            ],
            Some(yaml),
        )
    }

    /// Creates a fresh namespace that is deleted when the guard drops.
    pub fn temp_namespace(&self, prefix: &str) -> Result<TempNamespace<'_>, DeployError> {
        let name = format!("{prefix}-{}", unique_suffix());
        self.run_ok(&["create", "namespace", &name], None)?;
        Ok(TempNamespace {
            kubectl: self,
            name,
        })
    }
}

pub struct TempNamespace<'a> {
    kubectl: &'a Kubectl,
    pub name: String,
}

impl Drop for TempNamespace<'_> {
    fn drop(&mut self) {
        // --wait=false: the namespace finalizer runs in the background; the
        // test must not block on it (nothing real was created inside).
        if let Err(e) = self
            .kubectl
            .run_ok(&["delete", "namespace", &self.name, "--wait=false"], None)
        {
            eprintln!("could not delete namespace {}: {e}", self.name);
        }
    }
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:05x}", std::process::id() & 0xfff, nanos & 0xfffff)
}

/// Directory of the Argo CD health check of `kind` (argo-cd's layout).
pub fn argocd_kind_dir(kind: &str) -> PathBuf {
    repo_root()
        .join("deploy/argocd/resource_customizations/fleet.nationtech.io")
        .join(kind)
}

/// What an Argo CD health check returns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct HealthStatus {
    pub status: String,
    pub message: String,
}

/// Runs `health.lua` of `kind` on `obj` in a fresh Lua 5.1 interpreter, the
/// way Argo CD does: only the base, table, string and math libraries, the
/// object as the global `obj` with JSON null as nil (Argo's decoding; mlua's
/// default NULL sentinel would be invisible to `~= nil` tests).
pub fn argocd_health(kind: &str, obj: &serde_json::Value) -> Result<HealthStatus, mlua::Error> {
    use mlua::{Lua, LuaOptions, LuaSerdeExt, SerializeOptions, StdLib, Table};
    let script_path = argocd_kind_dir(kind).join("health.lua");
    let script = read(&script_path).map_err(mlua::Error::external)?;
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::default(),
    )?;
    let opts = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    lua.globals().set("obj", lua.to_value_with(obj, opts)?)?;
    let hs: Table = lua
        .load(script)
        .set_name(script_path.display().to_string())
        .eval()?;
    Ok(HealthStatus {
        status: hs.get("status")?,
        message: hs.get("message")?,
    })
}
