//! `nats-server -t`: the merged nats.conf is checked by the real server
//! binary before the ConfigMap holding it is applied, so a configuration
//! nats-server would refuse never reaches a pod (issue 17 item 2;
//! docs/adr/0073-nats-config-escape-hatch.md).
//!
//! The binary is `FLEET_NATS_SERVER_BIN`, else `nats-server` on `PATH`
//! (the reconciler image carries it: tests/kind/images, images/Dockerfile).
//! Without one, a spec with `spec.nats.config` cannot be checked and fails
//! with [`CheckError::Unavailable`] (a retried error, not a Stalled spec:
//! the fix is the reconciler's image); a spec without it runs unchecked,
//! as it did before: everything else in the configuration is ours, typed
//! and validated, and rendered the way tests run against the real server.
//!
//! nats-server resolves `$VAR` references at parse time, so the check runs
//! with an environment holding a placeholder for each variable the
//! configuration references (never the reconciler's own environment, and
//! never a real secret: the message nats-server prints is quoted in the
//! FleetStack's status). Accepted configurations are remembered by hash, so
//! an unchanged stack does not spawn a process on every reconcile.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use fleet_crds::SpecError;
use sha2::{Digest, Sha256};

/// Env var naming the nats-server binary of the check.
pub const BIN_ENV: &str = "FLEET_NATS_SERVER_BIN";
/// Longest quote of nats-server's message in the Stalled condition.
pub const MAX_MESSAGE: usize = 600;
/// Deadline of one check (it parses a file; it takes milliseconds).
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Accepted configurations remembered (then the memory starts over).
const MAX_REMEMBERED: usize = 1024;

/// Why a configuration could not be checked (the configuration itself may
/// be fine).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(
        "spec.nats.config needs nats-server to check the merged configuration, and none was found \
         ({BIN_ENV} unset and no nats-server on PATH): use a reconciler image that carries it"
    )]
    Unavailable,
    #[error("running {bin} -t: {source}")]
    Run { bin: String, source: std::io::Error },
    #[error("{bin} -t did not finish within {TIMEOUT:?}")]
    Timeout { bin: String },
}

/// The outcome of a check that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// nats-server's message (file path replaced by `nats.conf`).
    Rejected(String),
}

/// The binary: `FLEET_NATS_SERVER_BIN`, else the first `nats-server` on PATH.
pub fn binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os(BIN_ENV).filter(|b| !b.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

/// The variables `config` references (`$NAME` outside quotes), each with a
/// placeholder value of the right shape.
pub fn placeholders(config: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in config.lines() {
        let mut quote: Option<char> = None;
        for (i, c) in line.char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') => break,
                (None, '$') => {
                    let name: String = line[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        // Route URLs are parsed as URLs at load time,
                        // and duplicates are refused: one host per route.
                        let value = if name.starts_with("ROUTE_") && name != "ROUTE_PASSWORD" {
                            format!(
                                "nats-route://route:placeholder@{}.invalid:6222",
                                name.to_ascii_lowercase().replace('_', "-")
                            )
                        } else {
                            "placeholder".to_string()
                        };
                        out.insert(name, value);
                    }
                }
                (None, _) => {}
            }
        }
    }
    out
}

/// Runs `bin -t` on `config`.
pub async fn run(bin: &std::path::Path, config: &str) -> Result<Verdict, CheckError> {
    let display = bin.display().to_string();
    let dir = std::env::temp_dir().join(format!(
        "fleet-nats-check-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let run_err = |source| CheckError::Run {
        bin: display.clone(),
        source,
    };
    tokio::fs::create_dir_all(&dir).await.map_err(run_err)?;
    let file = dir.join("nats.conf");
    let result = async {
        let config = with_local_tls_files(config, &dir).await.map_err(run_err)?;
        tokio::fs::write(&file, &config).await.map_err(run_err)?;
        let child = tokio::process::Command::new(bin)
            .arg("-t")
            .arg("-c")
            .arg(&file)
            .env_clear()
            .envs(placeholders(&config))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(TIMEOUT, child)
            .await
            .map_err(|_| CheckError::Timeout {
                bin: display.clone(),
            })?
            .map_err(run_err)?;
        if output.status.success() {
            return Ok(Verdict::Accepted);
        }
        let text =
            String::from_utf8_lossy(&output.stderr).replace(&*file.to_string_lossy(), "nats.conf");
        Ok(Verdict::Rejected(clean(&text)))
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

/// nats-server loads the certificate files a `tls` block names while it
/// parses, and the pod's (`/etc/nats-tls`) do not exist where the check
/// runs: the copy that is checked names a throwaway self-signed
/// certificate in the check's directory instead (the real files are
/// Secrets the reconciler issued; what is checked here is the
/// configuration around them).
async fn with_local_tls_files(config: &str, dir: &std::path::Path) -> std::io::Result<String> {
    let pod_dir = format!("\"{}/", super::config::TLS_DIR);
    if !config.contains(&pod_dir) {
        return Ok(config.to_string());
    }
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .map_err(std::io::Error::other)?;
    let cert = certified.cert.pem();
    tokio::fs::write(dir.join("tls.crt"), &cert).await?;
    tokio::fs::write(dir.join("ca.crt"), &cert).await?;
    tokio::fs::write(dir.join("tls.key"), certified.signing_key.serialize_pem()).await?;
    Ok(config.replace(&pod_dir, &format!("\"{}/", dir.display())))
}

/// One line, no control characters, the program name dropped, cut short.
fn clean(text: &str) -> String {
    let one: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix("nats-server: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("; ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if one.chars().count() > MAX_MESSAGE {
        let cut: String = one.chars().take(MAX_MESSAGE).collect();
        format!("{cut}...")
    } else if one.is_empty() {
        "nats-server refused it without a message".into()
    } else {
        one
    }
}

static ACCEPTED: Mutex<Option<HashSet<[u8; 32]>>> = Mutex::new(None);

/// The check the NATS Score runs before applying the ConfigMap:
/// `Ok(None)` when accepted (or skipped: no user keys and no binary),
/// `Ok(Some(error))` naming `spec.nats.config` when nats-server rejects it
/// (the caller stops: nothing is applied, nothing rolls).
pub async fn verify(config: &str, user_keys: bool) -> Result<Option<SpecError>, CheckError> {
    verify_with(binary().as_deref(), config, user_keys).await
}

/// [`verify`] with the binary given (`None`: there is none).
pub async fn verify_with(
    bin: Option<&std::path::Path>,
    config: &str,
    user_keys: bool,
) -> Result<Option<SpecError>, CheckError> {
    let hash: [u8; 32] = Sha256::digest(config.as_bytes()).into();
    let remembered = |h: &[u8; 32]| {
        ACCEPTED
            .lock()
            .map(|set| set.as_ref().is_some_and(|s| s.contains(h)))
            .unwrap_or(false)
    };
    if remembered(&hash) {
        return Ok(None);
    }
    let Some(bin) = bin else {
        return if user_keys {
            Err(CheckError::Unavailable)
        } else {
            Ok(None)
        };
    };
    match run(bin, config).await? {
        Verdict::Accepted => {
            if let Ok(mut set) = ACCEPTED.lock() {
                let set = set.get_or_insert_with(HashSet::new);
                if set.len() >= MAX_REMEMBERED {
                    set.clear();
                }
                set.insert(hash);
            }
            Ok(None)
        }
        Verdict::Rejected(message) => Ok(Some(SpecError {
            path: "spec.nats.config".into(),
            message: format!("nats-server rejected the merged configuration: {message}"),
        })),
    }
}

/// [`verify`] as the NATS Interpret's one call: a rejection becomes
/// [`InterpretError::Refused`] (Stalled, nothing applied after it).
pub async fn refuse_rejected(
    config: &str,
    spec: &fleet_crds::NatsSpec,
) -> Result<(), crate::score::InterpretError> {
    match verify(config, !spec.config.is_empty()).await? {
        None => Ok(()),
        Some(error) => Err(crate::score::InterpretError::Refused(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_gets_a_placeholder_of_its_shape() {
        let p = placeholders(
            "server_name: $SERVER_NAME\nroutes: [\n  $ROUTE_0\n]\npassword: $ROUTE_PASSWORD\nx: \"$NOT_A_VAR\" # $COMMENT\n",
        );
        assert_eq!(
            p.keys().map(String::as_str).collect::<Vec<_>>(),
            ["ROUTE_0", "ROUTE_PASSWORD", "SERVER_NAME"]
        );
        assert!(p["ROUTE_0"].starts_with("nats-route://"));
        assert_eq!(p["ROUTE_PASSWORD"], "placeholder");
    }

    #[test]
    fn messages_are_one_short_line() {
        let long = "x".repeat(2000);
        assert_eq!(clean("nats-server: a\n\n b\x07\n").as_str(), "a; b");
        assert!(clean(&long).len() <= MAX_MESSAGE + 3);
    }
}
