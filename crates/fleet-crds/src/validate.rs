//! Spec checks beyond what the OpenAPI schema of a Kubernetes 1.20 API
//! server can express (it has no CEL): "exactly one of", cross-field
//! requirements, quantity syntax and limits >= requests, label, name and
//! image syntax, reserved variants; plus the schema's own ranges again, so
//! a Rust caller that never went through the API server gets the same
//! answer.
//!
//! Two rules hold for every check here:
//! * every field is checked whenever it is present, whether or not its
//!   feature is on (`nats.jetstream.storageSize: lots` is refused while
//!   JetStream is off: turning it on later must not turn a Ready stack
//!   into a Stalled one);
//! * every error names the field path (`spec.agents.labels["x y"]`),
//!   because it ends up verbatim in the `Stalled` condition a user reads.
//!
//! Anything we pass through to a child object is checked with the rule the
//! API server (or the kubelet) would apply to it, so a spec that passes
//! here is not refused later with a raw API error.

pub mod nats_config;
pub mod overrides;
pub mod quantity;
pub mod syntax;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::pod_overrides::Workload;
use crate::stack::*;
use syntax::ResourceKind;

/// One invalid field: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SpecError {
    pub path: String,
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        path: path.into(),
        message: message.into(),
    }
}

/// Ranges of the integer fields; the CRD schema carries the same numbers
/// (`schemars(range(...))` in stack.rs; a test keeps them equal).
pub const SERVER_REPLICAS: RangeInclusive<i32> = 1..=9;
pub const AGENT_REPLICAS: RangeInclusive<i32> = 0..=1000;
pub const PROBE_INTERVAL_SECONDS: RangeInclusive<i32> = 5..=86400;
pub const PROBE_TIMEOUT_SECONDS: RangeInclusive<i32> = 1..=300;
pub const READY_DEADLINE_SECONDS: RangeInclusive<i32> = 10..=86400;

/// `parent.key` for a plain resource name, `parent["key"]` otherwise (a
/// name with `.` or `/` would read as more path segments).
pub fn key_path(parent: &str, key: &str) -> String {
    if !key.is_empty()
        && key
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        format!("{parent}.{key}")
    } else {
        format!("{parent}[{key:?}]")
    }
}

/// Checks a spec; returns every problem found (in field order) so a user
/// fixes them in one go.
pub fn validate_spec(spec: &FleetStackSpec) -> Result<(), Vec<SpecError>> {
    let mut errors = Vec::new();
    if let Some(nats) = &spec.nats {
        check_nats(nats, spec, &mut errors);
    }
    if let Some(identity) = &spec.identity {
        check_identity(identity, &mut errors);
    }
    if spec.callout.is_some() && spec.nats.is_none() {
        errors.push(err("spec.callout", "requires spec.nats"));
    }
    if spec.callout.is_some() && spec.identity.is_none() {
        errors.push(err("spec.callout", "requires spec.identity"));
    }
    if let Some(callout) = &spec.callout {
        check_callout(callout, spec, &mut errors);
    }
    if let Some(operator) = &spec.operator {
        if spec.nats.is_none() {
            errors.push(err("spec.operator", "requires spec.nats"));
        }
        check_image("spec.operator.image", &operator.image, &mut errors);
        check_range(
            "spec.operator.replicas",
            operator.replicas,
            SERVER_REPLICAS,
            &mut errors,
        );
        if let Some(pod) = &operator.pod {
            overrides::check(Workload::Operator, pod, None, &mut errors);
        }
    }
    if let Some(agents) = &spec.agents {
        check_agents(agents, spec, &mut errors);
    }
    check_probe(&spec.probe, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Longest FleetStack name: every child is named `<stack>-<suffix>`, and
/// the tightest limit is a StatefulSet's `controller-revision-hash` label
/// value (`<statefulset>-<10 characters>`, at most 63): `<stack>-zitadel-db`
/// leaves 41; 40 keeps one character of room for future components.
pub const MAX_STACK_NAME: usize = 40;

/// The FleetStack's own name, which every child name derives from (the
/// API server allows up to 253 characters and dots; its children do not:
/// `<name>-nats` is a Service name, a DNS-1035 label).
pub fn validate_name(name: &str) -> Result<(), SpecError> {
    if name.len() > MAX_STACK_NAME {
        return Err(err(
            "metadata.name",
            format!(
                "at most {MAX_STACK_NAME} characters ({} given): children are named \
                 <name>-<component> and must stay within Kubernetes' 63-character limits",
                name.len()
            ),
        ));
    }
    syntax::check_dns_1035_label(name).map_err(|why| {
        err(
            "metadata.name",
            format!("{why}: children such as the Service <name>-nats are named after it"),
        )
    })
}

fn check_nats(nats: &NatsSpec, spec: &FleetStackSpec, errors: &mut Vec<SpecError>) {
    check_range("spec.nats.replicas", nats.replicas, SERVER_REPLICAS, errors);
    crate::validate_tls::check_nats_tls_and_expose(nats, errors);
    check_image("spec.nats.image", &nats.image, errors);
    if let Some(res) = &nats.resources {
        check_resources("spec.nats.resources", res, errors);
    }
    // Checked with JetStream off too: see the module doc.
    check_storage_size(
        "spec.nats.jetstream.storageSize",
        &nats.jetstream.storage_size,
        errors,
    );
    if let Some(class) = &nats.jetstream.storage_class_name
        && let Err(why) = syntax::check_dns_subdomain(class)
    {
        errors.push(err(
            "spec.nats.jetstream.storageClassName",
            format!("{why} (a StorageClass name)"),
        ));
    }
    check_jetstream_limits(&nats.jetstream, errors);
    check_jetstream_memory(nats, errors);
    nats_config::check(nats, errors);
    if let Some(pod) = &nats.pod {
        overrides::check(Workload::Nats, pod, nats.resources.as_ref(), errors);
    }
    if nats.auth.mode == NatsAuthMode::Callout {
        if spec.callout.is_none() {
            errors.push(err(
                "spec.nats.auth.mode",
                "Callout requires spec.callout (the auth-callout service)",
            ));
        }
        if spec.identity.is_none() {
            errors.push(err(
                "spec.nats.auth.mode",
                "Callout requires spec.identity (the issuer the callout checks tokens against)",
            ));
        }
    }
}

/// Most streams of the FLEET account (the schema carries the same range).
pub const MAX_STREAMS: RangeInclusive<i32> = 1..=100_000;

fn check_jetstream_limits(js: &JetStreamSpec, errors: &mut Vec<SpecError>) {
    if let Some(q) = &js.max_memory_store {
        check_storage_size("spec.nats.jetstream.maxMemoryStore", q, errors);
    }
    if let Some(q) = &js.max_file_store {
        check_storage_size("spec.nats.jetstream.maxFileStore", q, errors);
        // More than the volume holds would let JetStream accept writes the
        // disk cannot take.
        if let (Ok(max), Ok(size)) = (quantity::parse(&q.0), quantity::parse(&js.storage_size.0))
            && max.compare(&size) == Some(Ordering::Greater)
        {
            errors.push(err(
                "spec.nats.jetstream.maxFileStore",
                format!(
                    "{} must not exceed spec.nats.jetstream.storageSize {} (the volume)",
                    q.0, js.storage_size.0
                ),
            ));
        }
    }
    if let Some(n) = js.max_streams {
        check_range("spec.nats.jetstream.maxStreams", n, MAX_STREAMS, errors);
    }
}

/// Memory storage and the memory it may take: memory streams live in the
/// nats container, so their cap must be set (nats-server's default is 75%
/// of the node's memory, far above any container limit) and fit under the
/// container's memory limit; file settings mean nothing without a volume.
fn check_jetstream_memory(nats: &NatsSpec, errors: &mut Vec<SpecError>) {
    let js = &nats.jetstream;
    if js.enabled && js.storage == JetStreamStorage::Memory {
        if js.max_memory_store.is_none() {
            errors.push(err(
                "spec.nats.jetstream.maxMemoryStore",
                "storage: Memory requires maxMemoryStore (without it nats-server allows memory streams 75% of the node's memory)",
            ));
        }
        for (path, set) in [
            (
                "spec.nats.jetstream.maxFileStore",
                js.max_file_store.is_some(),
            ),
            (
                "spec.nats.jetstream.storageClassName",
                js.storage_class_name.is_some(),
            ),
        ] {
            if set {
                errors.push(err(
                    path,
                    "has no effect with storage: Memory (no volume is claimed); remove it or use storage: File",
                ));
            }
        }
    }
    let limit = nats.resources.as_ref().and_then(|r| r.limits.get("memory"));
    if let (Some(max), Some(limit)) = (&js.max_memory_store, limit)
        && let (Ok(m), Ok(l)) = (quantity::parse(&max.0), quantity::parse(&limit.0))
        && m.compare(&l) != Some(Ordering::Less)
    {
        errors.push(err(
            "spec.nats.jetstream.maxMemoryStore",
            format!(
                "{} must be below spec.nats.resources.limits.memory {} (memory streams live in the nats container, which would be OOM-killed first)",
                max.0, limit.0
            ),
        ));
    }
}

fn check_identity(identity: &IdentitySpec, errors: &mut Vec<SpecError>) {
    match (&identity.managed, &identity.external) {
        (None, None) => errors.push(err(
            "spec.identity",
            "set exactly one of spec.identity.managed or spec.identity.external",
        )),
        (Some(_), Some(_)) => errors.push(err(
            "spec.identity",
            "spec.identity.managed and spec.identity.external are mutually exclusive",
        )),
        (Some(_), None) | (None, Some(_)) => {}
    }
    // Both sections are checked even when they conflict: a user fixes
    // everything in one go.
    if let Some(managed) = &identity.managed {
        check_image("spec.identity.managed.image", &managed.image, errors);
        if let Err(why) = syntax::check_dns_subdomain(&managed.external_domain) {
            errors.push(err(
                "spec.identity.managed.externalDomain",
                format!("{why} (a domain name)"),
            ));
        }
        check_image(
            "spec.identity.managed.bootstrapImage",
            &managed.bootstrap_image,
            errors,
        );
        if let Some(pod) = &managed.pod {
            overrides::check(Workload::Zitadel, pod, None, errors);
        }
        if let Some(pod) = &managed.database.pod {
            if managed.database.mode == DatabaseMode::External {
                errors.push(err(
                    "spec.identity.managed.database.pod",
                    "only with mode: Bundled (an external database runs no pod of ours)",
                ));
            }
            overrides::check(Workload::ZitadelDatabase, pod, None, errors);
        }
        match (managed.database.mode, &managed.database.secret_ref) {
            (DatabaseMode::External, None) => errors.push(err(
                "spec.identity.managed.database.secretRef",
                "required when spec.identity.managed.database.mode is External",
            )),
            (DatabaseMode::External | DatabaseMode::Bundled, Some(secret)) => check_secret_ref(
                "spec.identity.managed.database.secretRef.name",
                secret,
                errors,
            ),
            (DatabaseMode::Bundled, None) => {}
        }
    }
    if let Some(external) = &identity.external {
        check_issuer("spec.identity.external.issuer", &external.issuer, errors);
        check_secret_ref(
            "spec.identity.external.clientCredentials.name",
            &external.client_credentials,
            errors,
        );
    }
    if let Some(secret) = &identity.agent_credentials {
        check_secret_ref("spec.identity.agentCredentials.name", secret, errors);
    }
    if let Some(scope) = &identity.scope {
        check_env_text("spec.identity.scope", scope, 1024, errors);
    }
}

fn check_callout(callout: &CalloutSpec, spec: &FleetStackSpec, errors: &mut Vec<SpecError>) {
    // Without callout mode NATS never asks the callout anything, and has no
    // AUTH user for it to log in with: the Deployment would only crash-loop.
    if let Some(nats) = &spec.nats
        && nats.auth.mode != NatsAuthMode::Callout
    {
        errors.push(err(
            "spec.callout",
            "requires spec.nats.auth.mode: Callout (NATS only consults the callout in that mode)",
        ));
    }
    check_image("spec.callout.image", &callout.image, errors);
    check_range(
        "spec.callout.replicas",
        callout.replicas,
        SERVER_REPLICAS,
        errors,
    );
    let external = spec.identity.as_ref().is_some_and(|i| i.external.is_some());
    match &callout.audience {
        None if external => errors.push(err(
            "spec.callout.audience",
            "required with spec.identity.external: the `aud` agents' access tokens carry",
        )),
        None => {}
        Some(audience) => check_env_text("spec.callout.audience", audience, 1024, errors),
    }
    if let Some(claim) = &callout.identity_claim
        && (claim.is_empty() || claim.len() > 128 || claim.chars().any(char::is_whitespace))
    {
        errors.push(err(
            "spec.callout.identityClaim",
            "must be a claim name of 1-128 characters without spaces (e.g. sub, azp, client_id)",
        ));
    }
    if let Some(secret) = &callout.introspection_credentials {
        check_secret_ref("spec.callout.introspectionCredentials.name", secret, errors);
    }
    if let Some(pod) = &callout.pod {
        overrides::check(Workload::Callout, pod, None, errors);
    }
}

fn check_agents(agents: &AgentsSpec, spec: &FleetStackSpec, errors: &mut Vec<SpecError>) {
    match agents.target {
        AgentTarget::Vm => errors.push(err(
            "spec.agents.target",
            "Vm is reserved in the API but not implemented yet; use Pod",
        )),
        AgentTarget::Pod => {}
    }
    check_range(
        "spec.agents.replicas",
        agents.replicas,
        AGENT_REPLICAS,
        errors,
    );
    if spec.nats.is_none() && agents.replicas > 0 {
        errors.push(err("spec.agents.replicas", "agents require spec.nats"));
    }
    check_image("spec.agents.image", &agents.image, errors);
    for (key, value) in &agents.labels {
        let path = format!("spec.agents.labels[{key:?}]");
        if let Err(why) = syntax::check_qualified_name(key) {
            errors.push(err(&path, format!("invalid label key: {why}")));
        } else if key.starts_with("app.kubernetes.io/") {
            errors.push(err(
                &path,
                "app.kubernetes.io/ labels are set by the reconciler",
            ));
        }
        if let Err(why) = syntax::check_label_value(value) {
            errors.push(err(&path, format!("invalid label value: {why}")));
        }
    }
    if let Some(res) = &agents.resources {
        check_resources("spec.agents.resources", res, errors);
    }
    if let Some(pod) = &agents.pod {
        overrides::check(Workload::Agents, pod, agents.resources.as_ref(), errors);
        // spec.agents.labels are the agents' fleet identity and go on the
        // pods too: one key in both would be two values for one label.
        for key in pod.labels.keys().filter(|k| agents.labels.contains_key(*k)) {
            errors.push(err(
                format!("spec.agents.pod.labels[{key:?}]"),
                "also in spec.agents.labels (which label the pods already): set it once",
            ));
        }
    }
}

fn check_probe(probe: &ProbeSpec, errors: &mut Vec<SpecError>) {
    check_range(
        "spec.probe.intervalSeconds",
        probe.interval_seconds,
        PROBE_INTERVAL_SECONDS,
        errors,
    );
    check_range(
        "spec.probe.timeoutSeconds",
        probe.timeout_seconds,
        PROBE_TIMEOUT_SECONDS,
        errors,
    );
    check_range(
        "spec.probe.readyDeadlineSeconds",
        probe.ready_deadline_seconds,
        READY_DEADLINE_SECONDS,
        errors,
    );
    if probe.timeout_seconds >= probe.ready_deadline_seconds {
        errors.push(err(
            "spec.probe.timeoutSeconds",
            format!(
                "must be smaller than spec.probe.readyDeadlineSeconds ({})",
                probe.ready_deadline_seconds
            ),
        ));
    }
}

fn check_range(path: &str, value: i32, range: RangeInclusive<i32>, errors: &mut Vec<SpecError>) {
    if !range.contains(&value) {
        errors.push(err(
            path,
            format!(
                "must be between {} and {} ({value} given)",
                range.start(),
                range.end()
            ),
        ));
    }
}

fn check_image(path: &str, image: &str, errors: &mut Vec<SpecError>) {
    if let Err(why) = syntax::check_image(image) {
        errors.push(err(
            path,
            format!("{image:?} is not a container image reference: {why}"),
        ));
    }
}

fn check_secret_ref(path: &str, secret: &SecretRef, errors: &mut Vec<SpecError>) {
    if let Err(why) = syntax::check_dns_subdomain(&secret.name) {
        errors.push(err(path, format!("{why} (a Secret name)")));
    }
}

fn check_issuer(path: &str, issuer: &str, errors: &mut Vec<SpecError>) {
    let host = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"));
    match host {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
            if issuer.chars().any(|c| c.is_whitespace() || c.is_control()) {
                errors.push(err(path, "must not contain spaces or control characters"));
            }
        }
        Some(_) | None => errors.push(err(
            path,
            "must be an http:// or https:// URL with a host (the tokens' `iss`)",
        )),
    }
}

/// Text that ends up in a container's environment.
fn check_env_text(path: &str, value: &str, max: usize, errors: &mut Vec<SpecError>) {
    if value.is_empty() || value.len() > max {
        errors.push(err(path, format!("must be 1-{max} characters")));
    } else if let Err(why) = syntax::check_printable(value) {
        errors.push(err(path, why));
    }
}

fn check_storage_size(path: &str, q: &Quantity, errors: &mut Vec<SpecError>) {
    match quantity::parse(&q.0) {
        Err(why) => errors.push(err(
            path,
            format!("{:?} is not a Kubernetes quantity (e.g. 1Gi): {why}", q.0),
        )),
        Ok(p) if p.is_zero() || p.is_negative() => {
            errors.push(err(path, format!("{:?} must be greater than zero", q.0)))
        }
        Ok(_) => {}
    }
}

/// A container's requests and limits with the rules of the API server's
/// `ValidateResourceRequirements`: known resource names, non-negative
/// quantities, requests <= limits (== for resources that cannot be
/// overcommitted, which also need a limit), extended resources whole.
pub(crate) fn check_resources(path: &str, res: &ComputeResources, errors: &mut Vec<SpecError>) {
    let parsed_requests = parse_all(&format!("{path}.requests"), &res.requests, errors);
    let parsed_limits = parse_all(&format!("{path}.limits"), &res.limits, errors);
    for (name, (kind, request)) in &parsed_requests {
        let request_path = key_path(&format!("{path}.requests"), name);
        let limit = parsed_limits.get(name).map(|(_, q)| q);
        let overcommit = match kind {
            ResourceKind::Standard => true,
            ResourceKind::HugePages | ResourceKind::Extended => false,
        };
        match (limit, overcommit) {
            (None, true) => {}
            (None, false) => errors.push(err(
                key_path(&format!("{path}.limits"), name),
                format!("required: {name} cannot be overcommitted, so it needs a limit"),
            )),
            (Some(limit), true) => {
                if request.compare(limit) == Some(Ordering::Greater) {
                    errors.push(err(
                        request_path,
                        format!(
                            "{} must be less than or equal to the {name} limit {}",
                            res.requests[name].0, res.limits[name].0
                        ),
                    ));
                }
            }
            (Some(limit), false) => {
                if request.compare(limit) != Some(Ordering::Equal) {
                    errors.push(err(
                        request_path,
                        format!(
                            "{} must be equal to the {name} limit {} ({name} cannot be overcommitted)",
                            res.requests[name].0, res.limits[name].0
                        ),
                    ));
                }
            }
        }
    }
    let huge_pages = parsed_requests
        .values()
        .chain(parsed_limits.values())
        .any(|(kind, _)| *kind == ResourceKind::HugePages);
    let cpu_or_memory = ["cpu", "memory"]
        .iter()
        .any(|r| res.requests.contains_key(*r) || res.limits.contains_key(*r));
    if huge_pages && !cpu_or_memory {
        errors.push(err(
            path,
            "hugepages require a cpu or memory request or limit",
        ));
    }
}

/// Parses each quantity of a requests or limits map; reports bad names and
/// values and returns the good ones.
fn parse_all(
    path: &str,
    map: &BTreeMap<String, Quantity>,
    errors: &mut Vec<SpecError>,
) -> BTreeMap<String, (ResourceKind, quantity::Parsed)> {
    let mut out = BTreeMap::new();
    for (name, q) in map {
        let field = key_path(path, name);
        let kind = match syntax::resource_kind(name) {
            Ok(kind) => kind,
            Err(why) => {
                errors.push(err(&field, why));
                continue;
            }
        };
        match quantity::parse(&q.0) {
            Err(why) => errors.push(err(
                &field,
                format!(
                    "{:?} is not a Kubernetes quantity (e.g. 500m, 1Gi): {why}",
                    q.0
                ),
            )),
            Ok(p) if p.is_negative() => errors.push(err(
                &field,
                format!("{:?} must be greater than or equal to 0", q.0),
            )),
            Ok(p) if kind == ResourceKind::Extended && !p.is_integer() => errors.push(err(
                &field,
                format!(
                    "{:?} must be a whole number ({name} is an extended resource)",
                    q.0
                ),
            )),
            Ok(p) => {
                out.insert(name.clone(), (kind, p));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
