//! `kubectl fleet`, a kubectl plugin for FleetStack (docs/adr/0070-kubectl-fleet-plugin.md).
//!
//! * [`cli`]: the command line (kubectl's flags);
//! * [`client`]: the kubeconfig handling;
//! * [`status`], [`agents`], [`ping`]: one module per command, each a pure
//!   view (what `-o json|yaml` prints) plus its table;
//! * [`table`], [`output`], [`age`]: kubectl-like tables, colours only on a
//!   terminal, kubectl-like ages;
//! * [`generic`]: status fields read from raw JSON, so the plugin tolerates
//!   CRDs older or newer than itself;
//! * [`selector`]: kubectl's label selector syntax.
//!
//! Entry point: [`run`] (the binary calls it; it only talks to the API).

pub mod age;
pub mod agents;
pub mod cli;
pub mod client;
pub mod error;
pub mod generic;
pub mod output;
pub mod ping;
pub mod selector;
pub mod status;
pub mod table;
pub mod tokens;

use std::io::Write;

use fleet_crds::{FleetAgent, FleetCommand, FleetEnrollmentToken, FleetStack};
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::SelectorExt;
use kube::{Api, Client, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use cli::{Args, Command};
pub use error::PluginError;
use output::Format;
use table::Style;

/// Runs one command, writing its output to `out`; returns the exit code
/// for a command that ran (`ping` returns 3 when an agent failed).
pub async fn run(args: Args, style: Style, out: &mut dyn Write) -> Result<i32, PluginError> {
    match &args.command {
        Command::Help => {
            write(out, cli::USAGE)?;
            Ok(0)
        }
        Command::Version => {
            write(
                out,
                &format!("kubectl-fleet {}\n", env!("CARGO_PKG_VERSION")),
            )?;
            Ok(0)
        }
        Command::Status { stack } => {
            let (client, namespace) = client::connect(&args.cluster).await?;
            let (typed, raw): (FleetStack, Value) =
                get_raw(&client, &namespace, stack, "FleetStack").await?;
            let raw_status = raw.get("status").cloned().unwrap_or(Value::Null);
            let view = status::StackView::new(&typed, &raw_status);
            emit(out, args.format, &view, || {
                view.render(style, Timestamp::now())
            })?;
            Ok(0)
        }
        Command::Agents {
            selector,
            all_namespaces,
        } => {
            let (client, namespace) = client::connect(&args.cluster).await?;
            let filter = selector::parse(selector.as_deref().unwrap_or(""))?;
            let scope = (!*all_namespaces).then_some(namespace.as_str());
            let mut views: Vec<agents::AgentView> =
                list_raw::<FleetAgent>(&client, scope, "FleetAgent")
                    .await?
                    .into_iter()
                    .filter(|(a, _)| filter.matches(&a.status.clone().unwrap_or_default().labels))
                    .map(|(a, raw)| agents::AgentView::new(&a, &raw))
                    .collect();
            views.sort_by(|a, b| (&a.namespace, &a.agent_id).cmp(&(&b.namespace, &b.agent_id)));
            match (args.format, views.is_empty()) {
                (Format::Table, true) => write(out, &agents::none_found(scope))?,
                (Format::Table, false) | (Format::Encoded(_), _) => {
                    emit(out, args.format, &views, || {
                        agents::render(&views, *all_namespaces, style, Timestamp::now())
                    })?
                }
            }
            Ok(0)
        }
        Command::TokenCreate(new) => {
            let (client, namespace) = client::connect(&args.cluster).await?;
            let secret = tokens::new_secret();
            let object = tokens::token_object(new, &secret, Timestamp::now())?;
            let api: Api<FleetEnrollmentToken> = Api::namespaced(client, &namespace);
            let created = api
                .create(&PostParams::default(), &object)
                .await
                .map_err(|e| {
                    PluginError::api("creating", "FleetEnrollmentToken", &namespace, None, e)
                })?;
            let view = tokens::IssuedView::new(&created, &secret);
            emit(out, args.format, &view, || view.render("created"))?;
            Ok(0)
        }
        Command::TokenRotate { name } => {
            let (client, namespace) = client::connect(&args.cluster).await?;
            let secret = tokens::new_secret();
            let api: Api<FleetEnrollmentToken> = Api::namespaced(client, &namespace);
            let patch = serde_json::json!({"spec": {"secretHash": tokens::secret_hash(&secret)}});
            let rotated = api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| {
                    PluginError::api(
                        "rotating",
                        "FleetEnrollmentToken",
                        &namespace,
                        Some(name),
                        e,
                    )
                })?;
            let view = tokens::IssuedView::new(&rotated, &secret);
            emit(out, args.format, &view, || view.render("rotated"))?;
            Ok(0)
        }
        Command::TokenRevoke { name } => {
            let (client, namespace) = client::connect(&args.cluster).await?;
            let api: Api<FleetEnrollmentToken> = Api::namespaced(client, &namespace);
            let patch = serde_json::json!({"spec": {"disabled": true}});
            let revoked = api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| {
                    PluginError::api(
                        "revoking",
                        "FleetEnrollmentToken",
                        &namespace,
                        Some(name),
                        e,
                    )
                })?;
            let view = tokens::TokenView::new(&revoked, Timestamp::now());
            emit(out, args.format, &view, || {
                format!("FleetEnrollmentToken {namespace}/{name} revoked\n")
            })?;
            Ok(0)
        }
        Command::TokenList => {
            let (client, namespace) = client::connect(&args.cluster).await?;
            let now = Timestamp::now();
            let mut views: Vec<tokens::TokenView> =
                list_raw::<FleetEnrollmentToken>(&client, Some(&namespace), "FleetEnrollmentToken")
                    .await?
                    .iter()
                    .map(|(t, _)| tokens::TokenView::new(t, now))
                    .collect();
            views.sort_by(|a, b| a.name.cmp(&b.name));
            match (args.format, views.is_empty()) {
                (Format::Table, true) => write(out, &tokens::none_found(&namespace))?,
                (Format::Table, false) | (Format::Encoded(_), _) => {
                    emit(out, args.format, &views, || {
                        tokens::render(&views, style, now)
                    })?
                }
            }
            Ok(0)
        }
        Command::Admit { agent, change } => {
            let (client, namespace) = client::connect(&args.cluster).await?;
            let api: Api<FleetAgent> = Api::namespaced(client, &namespace);
            let changed = api
                .patch(
                    agent,
                    &PatchParams::default(),
                    &Patch::Merge(&change.patch()),
                )
                .await
                .map_err(|e| {
                    PluginError::api("patching", "FleetAgent", &namespace, Some(agent), e)
                })?;
            let raw =
                serde_json::to_value(&changed).map_err(|e| PluginError::Encode(e.to_string()))?;
            let view = agents::AgentView::new(&changed, &raw);
            emit(out, args.format, &view, || {
                format!("FleetAgent {namespace}/{agent} {}\n", change.done())
            })?;
            Ok(0)
        }
        Command::Ping {
            selector: text,
            timeout,
            agent_timeout_seconds,
            keep,
        } => {
            let parsed = selector::parse(text)?;
            let (client, namespace) = client::connect(&args.cluster).await?;
            let api: Api<FleetCommand> = Api::namespaced(client, &namespace);
            let created = api
                .create(
                    &PostParams::default(),
                    &ping::command(&namespace, parsed, *agent_timeout_seconds),
                )
                .await
                .map_err(|e| PluginError::api("creating", "FleetCommand", &namespace, None, e))?;
            let name = created.name_any();
            let what = format!("{namespace}/{name}");
            let waited = tokio::time::timeout(
                *timeout,
                kube::runtime::wait::await_condition(
                    api.clone(),
                    &name,
                    |c: Option<&FleetCommand>| c.is_some_and(ping::finished),
                ),
            )
            .await;
            let done = match waited {
                Err(_elapsed) => {
                    return Err(PluginError::Timeout {
                        what,
                        waited: *timeout,
                    });
                }
                Ok(Err(e)) => {
                    return Err(PluginError::Watch {
                        what,
                        error: e.to_string(),
                    });
                }
                Ok(Ok(None)) => return Err(PluginError::Vanished { what }),
                Ok(Ok(Some(done))) => done,
            };
            let view = ping::PingView::new(&done, text);
            if !*keep {
                api.delete(&name, &DeleteParams::background())
                    .await
                    .map_err(|e| {
                        PluginError::api("deleting", "FleetCommand", &namespace, Some(&name), e)
                    })?;
            }
            emit(out, args.format, &view, || view.render(style))?;
            Ok(view.exit_code())
        }
    }
}

fn write(out: &mut dyn Write, text: &str) -> Result<(), PluginError> {
    out.write_all(text.as_bytes()).map_err(PluginError::Write)
}

/// The table (rendered only when asked for) or the view encoded.
fn emit<T: serde::Serialize>(
    out: &mut dyn Write,
    format: Format,
    view: &T,
    table: impl FnOnce() -> String,
) -> Result<(), PluginError> {
    let text = match format {
        Format::Table => table(),
        Format::Encoded(encoding) => output::serialize(view, encoding)?,
    };
    write(out, &text)
}

fn resource<K: kube::Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// Reads `K` both typed and as raw JSON (for fields the types lack).
async fn get_raw<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    kind: &'static str,
) -> Result<(K, Value), PluginError>
where
    K: kube::Resource<DynamicType = ()> + DeserializeOwned,
{
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource::<K>());
    let obj = api
        .get(name)
        .await
        .map_err(|e| PluginError::api("reading", kind, namespace, Some(name), e))?;
    decode(obj, kind)
}

/// Lists `K` in `namespace` (all namespaces for `None`), typed and raw.
async fn list_raw<K>(
    client: &Client,
    namespace: Option<&str>,
    kind: &'static str,
) -> Result<Vec<(K, Value)>, PluginError>
where
    K: kube::Resource<DynamicType = ()> + DeserializeOwned,
{
    let ar = resource::<K>();
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let list = api.list(&ListParams::default()).await.map_err(|e| {
        PluginError::api(
            "listing",
            kind,
            namespace.unwrap_or("all namespaces"),
            None,
            e,
        )
    })?;
    list.items.into_iter().map(|o| decode(o, kind)).collect()
}

fn decode<K: DeserializeOwned>(
    obj: DynamicObject,
    kind: &'static str,
) -> Result<(K, Value), PluginError> {
    let what = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    let raw = serde_json::to_value(&obj).map_err(|e| PluginError::Decode {
        kind,
        what: what.clone(),
        error: e.to_string(),
    })?;
    let typed = serde_json::from_value(raw.clone()).map_err(|e| PluginError::Decode {
        kind,
        what,
        error: e.to_string(),
    })?;
    Ok((typed, raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_crds::FleetAgentSpec;

    #[test]
    fn objects_decode_typed_and_keep_fields_the_types_lack() {
        let mut agent = FleetAgent::new(
            "dev-1",
            FleetAgentSpec {
                agent_id: "dev-1".into(),
                ..Default::default()
            },
        );
        agent.metadata.namespace = Some("edge".into());
        let mut json = serde_json::to_value(&agent).unwrap();
        json["spec"]["disabled"] = Value::Bool(true);
        let dynamic: DynamicObject = serde_json::from_value(json).unwrap();
        let (typed, raw): (FleetAgent, Value) = decode(dynamic, "FleetAgent").unwrap();
        assert_eq!(typed.spec.agent_id, "dev-1");
        assert_eq!(raw["spec"]["disabled"], Value::Bool(true));

        let broken: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "fleet.nationtech.io/v1alpha1", "kind": "FleetAgent",
            "metadata": {"name": "x", "namespace": "edge"}, "spec": {"agentId": 5}
        }))
        .unwrap();
        let err = decode::<FleetAgent>(broken, "FleetAgent").unwrap_err();
        assert!(err.to_string().contains("FleetAgent edge/x"), "{err}");
    }
}
