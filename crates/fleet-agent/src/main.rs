//! `fleet-agent`: configuration from the environment and an optional
//! config file (see `fleet_agent::config`, `fleet_agent::cli`), logs to
//! stderr, drains and exits 0 on SIGTERM or SIGINT. `fleet-agent enroll`
//! and `fleet-agent rotate-key` are the device commands (ADR 0080).

use fleet_agent::{Agent, AgentConfig, cli, credentials_from_config, device, logging};
use fleet_proto::AgentId;
use fleet_proto::client::ClientTls;
use std::process::ExitCode;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleet-agent: {e}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let config_file = cli
        .config
        .clone()
        .or_else(|| std::env::var_os("FLEET_AGENT_CONFIG").map(Into::into));
    let file = match &config_file {
        None => Vec::new(),
        Some(path) => match device::read_config_file(path) {
            Ok(v) => v,
            Err(e) => {
                eprintln!(
                    "fleet-agent: reading the config file {}: {e}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
    };
    let get = cli::lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()), file);
    match cli.command {
        cli::Command::Help => {
            println!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        cli::Command::Enroll(args) => one_shot_runtime(enroll(args, &get)),
        cli::Command::RotateKey => one_shot_runtime(rotate_key(&get)),
        cli::Command::Run => run_agent(&get),
    }
}

/// Runs a short command (enroll, rotate-key) on a small runtime.
fn one_shot_runtime(task: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    logging::init(fleet_agent::LogFormat::Text);
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(task),
        Err(e) => {
            eprintln!("fleet-agent: could not start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn endpoint(url: String, ca: Option<std::path::PathBuf>) -> device::Endpoint {
    device::Endpoint {
        url,
        tls: match ca {
            Some(ca) => ClientTls::with_ca_file(ca),
            None => ClientTls::default(),
        },
        timeout: std::time::Duration::from_secs(10),
    }
}

async fn enroll(args: cli::EnrollArgs, get: &impl Fn(&str) -> Option<String>) -> ExitCode {
    let Some(url) = args.url.or_else(|| get("FLEET_NATS_URL")) else {
        eprintln!("fleet-agent enroll: --url (or FLEET_NATS_URL) is required");
        return ExitCode::from(2);
    };
    let token = match (args.token, args.token_file) {
        (Some(t), _) => t,
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!(
                    "fleet-agent enroll: reading the token file {}: {e}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
        (None, None) => match get("FLEET_ENROLL_TOKEN") {
            Some(t) => t,
            None => {
                eprintln!(
                    "fleet-agent enroll: --token, --token-file or FLEET_ENROLL_TOKEN is required"
                );
                return ExitCode::from(2);
            }
        },
    };
    let state_dir = args
        .state_dir
        .or_else(|| get("FLEET_DEVICE_STATE_DIR").map(Into::into))
        .unwrap_or_else(|| cli::DEFAULT_STATE_DIR.into());
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().split('.').next().unwrap_or_default().to_string());
    let Some(id_text) = args.agent_id.or_else(|| get("FLEET_AGENT_ID")).or(hostname) else {
        eprintln!("fleet-agent enroll: --agent-id is required (no hostname to default to)");
        return ExitCode::from(2);
    };
    let agent_id = match AgentId::new(id_text) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("fleet-agent enroll: {e}");
            return ExitCode::from(2);
        }
    };
    let ca = args
        .ca
        .or_else(|| get("FLEET_NATS_CA_FILE").map(Into::into));
    match device::enroll(&endpoint(url, ca), &state_dir, &token, &agent_id).await {
        Ok(public_key) => {
            println!(
                "enrolled as agent {agent_id} (public key {public_key}); state in {}.\n\
                 Unless the token auto-approves, approve it with:\n  \
                 kubectl patch fleetagent <name> --type merge -p '{{\"spec\":{{\"approved\":true}}}}'",
                state_dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fleet-agent enroll: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn rotate_key(get: &impl Fn(&str) -> Option<String>) -> ExitCode {
    let (Some(url), Some(dir)) = (get("FLEET_NATS_URL"), get("FLEET_DEVICE_STATE_DIR")) else {
        eprintln!("fleet-agent rotate-key: FLEET_NATS_URL and FLEET_DEVICE_STATE_DIR are required");
        return ExitCode::from(2);
    };
    let ca = get("FLEET_NATS_CA_FILE").map(Into::into);
    match device::rotate_key(&endpoint(url, ca), std::path::Path::new(&dir)).await {
        Ok(public_key) => {
            println!("device key rotated; new public key {public_key}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fleet-agent rotate-key: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_agent(get: &impl Fn(&str) -> Option<String>) -> ExitCode {
    // Device mode: the agent id defaults to the one recorded at enrollment.
    let enrolled = match get("FLEET_DEVICE_STATE_DIR") {
        Some(dir) if get("FLEET_AGENT_ID").is_none() => {
            match device::enrolled_agent_id(std::path::Path::new(&dir)) {
                Ok(id) => Some(id.to_string()),
                Err(e) => {
                    eprintln!("fleet-agent: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => None,
    };
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string());
    let config = match AgentConfig::from_lookup(
        |k| match (k, &enrolled) {
            ("FLEET_AGENT_ID", Some(id)) => Some(id.clone()),
            _ => get(k),
        },
        hostname,
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleet-agent: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_format);

    // Two workers are plenty for one connection and a few tasks, and keep
    // the idle footprint small on many-core nodes.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "could not start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: AgentConfig) -> ExitCode {
    let shutdown = CancellationToken::new();
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "could not install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "shutdown requested; draining");
            shutdown.cancel();
        });
    }

    let credentials = credentials_from_config(&config.auth);
    let agent = match Agent::bind(config, credentials).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "agent could not start");
            return ExitCode::FAILURE;
        }
    };
    match agent.run(shutdown).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE, // already logged by Agent::run
    }
}
