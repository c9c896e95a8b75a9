//! The command line, parsed by hand (a few flags do not justify a parser
//! dependency). Flags follow kubectl: `--kubeconfig`, `--context`,
//! `-n/--namespace`, `-A/--all-namespaces`, `-l/--selector`, `-o/--output`,
//! each as `--flag value` or `--flag=value` (`-nvalue` for short ones), in
//! any position.

use std::time::Duration;

use crate::error::PluginError;
use crate::output::Format;

pub const USAGE: &str = "\
kubectl fleet: FleetStack status, FleetAgents and pings from the command line.

Usage:
  kubectl fleet status <stack> [flags]     components, last probe, endpoints, certificates, agents
  kubectl fleet agents [-l selector] [-A]  FleetAgents with labels, version, heartbeat, state
  kubectl fleet ping <selector> [flags]    ping the matching agents through a FleetCommand
  kubectl fleet token create <name> [--ttl 24h] [--uses 1] [--auto-approve] [--labels k=v,...]
                                           an enrollment token for devices; printed once
  kubectl fleet token list                 enrollment tokens: state, uses, expiry, labels
  kubectl fleet token rotate <name>        a new secret for the token (the old one stops working)
  kubectl fleet token revoke <name>        refuse the token from now on (kept as a record)
  kubectl fleet approve <agent>            let an enrolled device connect
  kubectl fleet disable <agent>            refuse the device and disconnect it now
  kubectl fleet enable <agent>             undo disable
  kubectl fleet version                    the plugin's version

Flags:
  -n, --namespace <ns>        namespace (default: the kubeconfig context's)
  -A, --all-namespaces        agents: list every namespace
  -l, --selector <selector>   agents: filter by the labels the agents report (k=v,k!=v,k in (a,b))
  -o, --output json|yaml      print the view as JSON or YAML instead of a table
      --kubeconfig <path>     kubeconfig file (default: KUBECONFIG, then ~/.kube/config)
      --context <name>        kubeconfig context
      --timeout <duration>    ping: how long to wait for every answer (default 30s; 10s, 2m)
      --agent-timeout <secs>  ping: how long each agent has to answer (default 10, 1-300)
      --keep                  ping: keep the FleetCommand instead of deleting it afterwards
      --ttl <duration>        token create: lifetime (default 24h)
      --uses <n>              token create: how many devices may enroll with it (default 1)
      --auto-approve          token create: devices are approved at once
      --labels <k=v,...>      token create: labels stamped on every FleetAgent enrolled with it

Ping selects agents by the labels they report (`site=lab`; `all` selects every
agent of the namespace). Exit codes: 0 success, 1 error, 2 bad usage, 3 some
agent failed or timed out.
";

/// Where to connect and which namespace to use (shared by every command).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterFlags {
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status {
        stack: String,
    },
    Agents {
        selector: Option<String>,
        all_namespaces: bool,
    },
    Ping {
        selector: String,
        timeout: Duration,
        agent_timeout_seconds: i32,
        keep: bool,
    },
    TokenCreate(crate::tokens::NewToken),
    TokenList,
    TokenRotate {
        name: String,
    },
    TokenRevoke {
        name: String,
    },
    /// `approve`, `disable`, `enable`: one FleetAgent spec field.
    Admit {
        agent: String,
        change: Admission,
    },
    Version,
    Help,
}

/// What `approve`, `disable` and `enable` set on a FleetAgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Approve,
    Disable,
    Enable,
}

impl Admission {
    /// The merge patch of the FleetAgent's spec.
    pub fn patch(self) -> serde_json::Value {
        match self {
            Admission::Approve => serde_json::json!({"spec": {"approved": true}}),
            Admission::Disable => serde_json::json!({"spec": {"disabled": true}}),
            Admission::Enable => serde_json::json!({"spec": {"disabled": false}}),
        }
    }

    pub fn done(self) -> &'static str {
        match self {
            Admission::Approve => "approved",
            Admission::Disable => "disabled",
            Admission::Enable => "enabled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub cluster: ClusterFlags,
    pub format: Format,
    pub command: Command,
}

/// Flags that take a value, by every spelling.
const VALUE_FLAGS: &[(&str, &str)] = &[
    ("--kubeconfig", "kubeconfig"),
    ("--context", "context"),
    ("-n", "namespace"),
    ("--namespace", "namespace"),
    ("-l", "selector"),
    ("--selector", "selector"),
    ("-o", "output"),
    ("--output", "output"),
    ("--timeout", "timeout"),
    ("--agent-timeout", "agent-timeout"),
    ("--ttl", "ttl"),
    ("--uses", "uses"),
    ("--labels", "labels"),
];

#[derive(Default)]
struct Raw {
    positional: Vec<String>,
    kubeconfig: Option<String>,
    context: Option<String>,
    namespace: Option<String>,
    selector: Option<String>,
    output: Option<String>,
    timeout: Option<String>,
    agent_timeout: Option<String>,
    ttl: Option<String>,
    uses: Option<String>,
    labels: Option<String>,
    all_namespaces: bool,
    keep: bool,
    auto_approve: bool,
    help: bool,
}

impl Raw {
    fn set(&mut self, key: &str, value: String) -> Result<(), PluginError> {
        let slot = match key {
            "kubeconfig" => &mut self.kubeconfig,
            "context" => &mut self.context,
            "namespace" => &mut self.namespace,
            "selector" => &mut self.selector,
            "output" => &mut self.output,
            "timeout" => &mut self.timeout,
            "agent-timeout" => &mut self.agent_timeout,
            "ttl" => &mut self.ttl,
            "uses" => &mut self.uses,
            "labels" => &mut self.labels,
            other => return Err(PluginError::Usage(format!("unknown flag {other}"))),
        };
        *slot = Some(value);
        Ok(())
    }
}

/// Parses the arguments after the program name.
pub fn parse<I, S>(args: I) -> Result<Args, PluginError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut raw = Raw::default();
    let mut it = args.into_iter().map(Into::into);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-A" | "--all-namespaces" => raw.all_namespaces = true,
            "--keep" => raw.keep = true,
            "--auto-approve" => raw.auto_approve = true,
            "-h" | "--help" => raw.help = true,
            "--" => raw.positional.extend(it.by_ref()),
            _ if arg.starts_with('-') && arg.len() > 1 => {
                let (flag, inline) = split_flag(&arg);
                let key = VALUE_FLAGS
                    .iter()
                    .find(|(spelling, _)| *spelling == flag)
                    .map(|(_, key)| *key)
                    .ok_or_else(|| PluginError::Usage(format!("unknown flag {flag}")))?;
                let value = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .ok_or_else(|| PluginError::Usage(format!("flag {flag} needs a value")))?,
                };
                raw.set(key, value)?;
            }
            _ => raw.positional.push(arg),
        }
    }
    build(raw)
}

/// `--flag=value` and `-nvalue` carry their value inline.
fn split_flag(arg: &str) -> (&str, Option<String>) {
    if let Some((flag, value)) = arg.split_once('=')
        && arg.starts_with("--")
    {
        return (flag, Some(value.to_string()));
    }
    if !arg.starts_with("--") && arg.len() > 2 {
        let (flag, value) = arg.split_at(2);
        return (flag, Some(value.trim_start_matches('=').to_string()));
    }
    (arg, None)
}

fn build(raw: Raw) -> Result<Args, PluginError> {
    let format = match &raw.output {
        Some(o) => Format::parse(o)?,
        None => Format::Table,
    };
    let cluster = ClusterFlags {
        kubeconfig: raw.kubeconfig.clone(),
        context: raw.context.clone(),
        namespace: raw.namespace.clone(),
    };
    let mut positional = raw.positional.into_iter();
    let verb = positional.next();
    let operand = positional.next();
    // `token <verb> <name>`: the only command with three words.
    let third = match verb.as_deref() {
        Some("token") => positional.next(),
        _ => None,
    };
    if let Some(extra) = positional.next() {
        return Err(PluginError::Usage(format!("unexpected argument {extra:?}")));
    }
    let token_flags =
        raw.ttl.is_some() || raw.uses.is_some() || raw.labels.is_some() || raw.auto_approve;
    if token_flags && !(verb.as_deref() == Some("token") && operand.as_deref() == Some("create")) {
        return Err(PluginError::Usage(
            "--ttl, --uses, --labels and --auto-approve are flags of `token create`".into(),
        ));
    }
    let only_for = |flag: &str, set: bool, verb: &str| {
        if set {
            Err(PluginError::Usage(format!(
                "{flag} is not a flag of `{verb}`"
            )))
        } else {
            Ok(())
        }
    };
    let command = match (raw.help, verb.as_deref()) {
        (true, _) | (false, None | Some("help")) => Command::Help,
        (false, Some("version")) => Command::Version,
        (false, Some("status")) => {
            let stack = operand
                .ok_or_else(|| PluginError::Usage("status needs the FleetStack's name".into()))?;
            only_for("--selector", raw.selector.is_some(), "status")?;
            only_for("--all-namespaces", raw.all_namespaces, "status")?;
            Command::Status { stack }
        }
        (false, Some("agents")) => {
            if let Some(extra) = operand {
                return Err(PluginError::Usage(format!(
                    "agents takes no argument (got {extra:?}); filter with -l"
                )));
            }
            Command::Agents {
                selector: raw.selector,
                all_namespaces: raw.all_namespaces,
            }
        }
        (false, Some("ping")) => {
            let selector = match (operand, raw.selector) {
                (Some(s), None) | (None, Some(s)) => s,
                (Some(_), Some(_)) => {
                    return Err(PluginError::Usage(
                        "ping takes the selector once (argument or -l)".into(),
                    ));
                }
                (None, None) => {
                    return Err(PluginError::Usage(
                        "ping needs a label selector (`site=lab`, or `all`)".into(),
                    ));
                }
            };
            only_for("--all-namespaces", raw.all_namespaces, "ping")?;
            let timeout = match &raw.timeout {
                Some(t) => parse_duration(t)?,
                None => Duration::from_secs(30),
            };
            let agent_timeout_seconds = match &raw.agent_timeout {
                Some(t) => t
                    .parse::<i32>()
                    .ok()
                    .filter(|n| (1..=300).contains(n))
                    .ok_or_else(|| {
                        PluginError::Usage(format!(
                            "--agent-timeout {t:?}: whole seconds from 1 to 300"
                        ))
                    })?,
                None => 10,
            };
            Command::Ping {
                selector,
                timeout,
                agent_timeout_seconds,
                keep: raw.keep,
            }
        }
        (false, Some("token")) => {
            let named = |sub: &str| {
                third.clone().ok_or_else(|| {
                    PluginError::Usage(format!("token {sub} needs the token's name"))
                })
            };
            match operand.as_deref() {
                Some("create") => Command::TokenCreate(crate::tokens::NewToken {
                    name: named("create")?,
                    ttl: match &raw.ttl {
                        Some(t) => parse_duration(t)?,
                        None => Duration::from_secs(24 * 3600),
                    },
                    max_uses: match &raw.uses {
                        Some(n) => n
                            .parse::<i32>()
                            .ok()
                            .filter(|n| (1..=100_000).contains(n))
                            .ok_or_else(|| {
                                PluginError::Usage(format!(
                                    "--uses {n:?}: a whole number from 1 to 100000"
                                ))
                            })?,
                        None => 1,
                    },
                    auto_approve: raw.auto_approve,
                    labels: crate::tokens::parse_labels(raw.labels.as_deref().unwrap_or(""))?,
                }),
                Some("list") => {
                    if let Some(extra) = third {
                        return Err(PluginError::Usage(format!(
                            "token list takes no argument (got {extra:?})"
                        )));
                    }
                    Command::TokenList
                }
                Some("rotate") => Command::TokenRotate {
                    name: named("rotate")?,
                },
                Some("revoke") => Command::TokenRevoke {
                    name: named("revoke")?,
                },
                Some(other) => {
                    return Err(PluginError::Usage(format!(
                        "unknown token command {other:?} (create, list, rotate, revoke)"
                    )));
                }
                None => {
                    return Err(PluginError::Usage(
                        "token needs a command: create, list, rotate, revoke".into(),
                    ));
                }
            }
        }
        (false, Some(verb @ ("approve" | "disable" | "enable"))) => {
            let agent = operand
                .ok_or_else(|| PluginError::Usage(format!("{verb} needs the FleetAgent's name")))?;
            let change = match verb {
                "approve" => Admission::Approve,
                "disable" => Admission::Disable,
                _ => Admission::Enable,
            };
            Command::Admit { agent, change }
        }
        (false, Some(other)) => {
            return Err(PluginError::Usage(format!("unknown command {other:?}")));
        }
    };
    Ok(Args {
        cluster,
        format,
        command,
    })
}

/// `30s`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, PluginError> {
    let bad = || PluginError::Usage(format!("duration {s:?}: use 30s, 2m or 1h"));
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Encoding;

    #[test]
    fn status_with_kubectl_flags_in_any_position() {
        let a = parse([
            "-n",
            "fleet",
            "status",
            "minimal",
            "--context=kind",
            "-oyaml",
        ])
        .unwrap();
        assert_eq!(
            a.command,
            Command::Status {
                stack: "minimal".into()
            }
        );
        assert_eq!(a.cluster.namespace.as_deref(), Some("fleet"));
        assert_eq!(a.cluster.context.as_deref(), Some("kind"));
        assert_eq!(a.format, Format::Encoded(Encoding::Yaml));
    }

    #[test]
    fn agents_with_selector_and_all_namespaces() {
        let a = parse(["agents", "-l", "site=lab", "-A", "--kubeconfig", "/k"]).unwrap();
        assert_eq!(
            a.command,
            Command::Agents {
                selector: Some("site=lab".into()),
                all_namespaces: true
            }
        );
        assert_eq!(a.cluster.kubeconfig.as_deref(), Some("/k"));
    }

    #[test]
    fn ping_defaults_and_timeouts() {
        let a = parse(["ping", "site=lab"]).unwrap();
        assert_eq!(
            a.command,
            Command::Ping {
                selector: "site=lab".into(),
                timeout: Duration::from_secs(30),
                agent_timeout_seconds: 10,
                keep: false
            }
        );
        let a = parse([
            "ping",
            "--timeout",
            "2m",
            "--agent-timeout=5",
            "all",
            "--keep",
        ])
        .unwrap();
        assert_eq!(
            a.command,
            Command::Ping {
                selector: "all".into(),
                timeout: Duration::from_secs(120),
                agent_timeout_seconds: 5,
                keep: true
            }
        );
    }

    #[test]
    fn bad_usage_is_named() {
        for (args, needle) in [
            (vec!["status"], "needs the FleetStack"),
            (vec!["ping"], "needs a label selector"),
            (vec!["frobnicate"], "frobnicate"),
            (vec!["agents", "--bogus"], "--bogus"),
            (vec!["status", "x", "-o"], "needs a value"),
            (vec!["ping", "a=b", "--agent-timeout", "0"], "1 to 300"),
            (vec!["ping", "a=b", "--timeout", "soon"], "soon"),
            (vec!["status", "x", "-A"], "not a flag of `status`"),
        ] {
            let err = parse(args.clone()).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(err.to_string().contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn no_arguments_is_help() {
        assert_eq!(parse(Vec::<String>::new()).unwrap().command, Command::Help);
        assert_eq!(parse(["status", "-h"]).unwrap().command, Command::Help);
    }

    #[test]
    fn token_commands_and_their_flags() {
        let a = parse([
            "token",
            "create",
            "site-a",
            "--ttl=2h",
            "--uses",
            "10",
            "--auto-approve",
            "--labels",
            "site=a,tier=edge",
            "-n",
            "edge",
        ])
        .unwrap();
        assert_eq!(
            a.command,
            Command::TokenCreate(crate::tokens::NewToken {
                name: "site-a".into(),
                ttl: Duration::from_secs(7200),
                max_uses: 10,
                auto_approve: true,
                labels: [
                    ("site".to_string(), "a".to_string()),
                    ("tier".to_string(), "edge".to_string())
                ]
                .into(),
            })
        );
        let d = parse(["token", "create", "t"]).unwrap();
        match d.command {
            Command::TokenCreate(n) => {
                assert_eq!(
                    (n.ttl, n.max_uses, n.auto_approve),
                    (Duration::from_secs(86400), 1, false)
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(["token", "list"]).unwrap().command,
            Command::TokenList
        );
        assert_eq!(
            parse(["token", "revoke", "t"]).unwrap().command,
            Command::TokenRevoke { name: "t".into() }
        );
        assert_eq!(
            parse(["token", "rotate", "t"]).unwrap().command,
            Command::TokenRotate { name: "t".into() }
        );
        for bad in [
            vec!["token"],
            vec!["token", "create"],
            vec!["token", "burn", "t"],
            vec!["token", "create", "t", "--uses", "0"],
            vec!["token", "list", "--ttl", "1h"],
            vec!["agents", "--auto-approve"],
            vec!["approve"],
        ] {
            assert!(
                matches!(parse(bad.clone()), Err(PluginError::Usage(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn approve_disable_enable_patch_one_field() {
        for (verb, change, patch) in [
            (
                "approve",
                Admission::Approve,
                serde_json::json!({"spec": {"approved": true}}),
            ),
            (
                "disable",
                Admission::Disable,
                serde_json::json!({"spec": {"disabled": true}}),
            ),
            (
                "enable",
                Admission::Enable,
                serde_json::json!({"spec": {"disabled": false}}),
            ),
        ] {
            let a = parse([verb, "dev-1"]).unwrap();
            assert_eq!(
                a.command,
                Command::Admit {
                    agent: "dev-1".into(),
                    change
                }
            );
            assert_eq!(change.patch(), patch);
        }
    }
}
