//! Spec checks the OpenAPI schema of a Kubernetes 1.20 API server cannot
//! express (it has no CEL): "exactly one of", cross-field requirements,
//! label syntax in map keys, quantity syntax, reserved variants.
//!
//! Every error names the field path (`spec.agents.labels["x y"]`) because
//! it ends up verbatim in the `Stalled` condition a user reads.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::stack::*;

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
    if spec.operator.is_some() && spec.nats.is_none() {
        errors.push(err("spec.operator", "requires spec.nats"));
    }
    if let Some(agents) = &spec.agents {
        check_agents(agents, spec, &mut errors);
    }
    if spec.probe.timeout_seconds >= spec.probe.ready_deadline_seconds {
        errors.push(err(
            "spec.probe.timeoutSeconds",
            format!(
                "must be smaller than spec.probe.readyDeadlineSeconds ({})",
                spec.probe.ready_deadline_seconds
            ),
        ));
    }
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
/// API server allows up to 253 characters; its children do not).
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
    Ok(())
}

fn check_nats(nats: &NatsSpec, spec: &FleetStackSpec, errors: &mut Vec<SpecError>) {
    if nats.jetstream.enabled {
        check_quantity(
            "spec.nats.jetstream.storageSize",
            &nats.jetstream.storage_size,
            errors,
        );
    }
    if let Some(res) = &nats.resources {
        check_quantities("spec.nats.resources.requests", &res.requests, errors);
        check_quantities("spec.nats.resources.limits", &res.limits, errors);
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
        (Some(managed), None) => {
            if managed.database.mode == DatabaseMode::External
                && managed.database.secret_ref.is_none()
            {
                errors.push(err(
                    "spec.identity.managed.database.secretRef",
                    "required when spec.identity.managed.database.mode is External",
                ));
            }
        }
        (None, Some(_)) => {}
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
    let external = spec.identity.as_ref().is_some_and(|i| i.external.is_some());
    if external && callout.audience.is_none() {
        errors.push(err(
            "spec.callout.audience",
            "required with spec.identity.external: the `aud` agents' access tokens carry",
        ));
    }
    if let Some(claim) = &callout.identity_claim
        && (claim.is_empty() || claim.chars().any(char::is_whitespace))
    {
        errors.push(err(
            "spec.callout.identityClaim",
            "must be a claim name without spaces (e.g. sub, azp, client_id)",
        ));
    }
}

fn check_agents(agents: &AgentsSpec, spec: &FleetStackSpec, errors: &mut Vec<SpecError>) {
    if agents.target == AgentTarget::Vm {
        errors.push(err(
            "spec.agents.target",
            "Vm is reserved in the API but not implemented yet; use Pod",
        ));
    }
    if spec.nats.is_none() && agents.replicas > 0 {
        errors.push(err("spec.agents.replicas", "agents require spec.nats"));
    }
    for (key, value) in &agents.labels {
        let path = format!("spec.agents.labels[{key:?}]");
        if let Err(why) = check_label_key(key) {
            errors.push(err(&path, format!("invalid label key: {why}")));
        } else if key.starts_with("app.kubernetes.io/") {
            errors.push(err(
                &path,
                "app.kubernetes.io/ labels are set by the reconciler",
            ));
        }
        if let Err(why) = check_label_value(value) {
            errors.push(err(&path, format!("invalid label value: {why}")));
        }
    }
}

fn check_quantities(path: &str, map: &BTreeMap<String, Quantity>, errors: &mut Vec<SpecError>) {
    for (name, q) in map {
        check_quantity(&format!("{path}.{name}"), q, errors);
    }
}

fn check_quantity(path: &str, q: &Quantity, errors: &mut Vec<SpecError>) {
    if !is_quantity(&q.0) {
        errors.push(err(
            path,
            format!("{:?} is not a Kubernetes quantity (e.g. 500m, 1Gi)", q.0),
        ));
    }
}

/// `<number><suffix>`: a positive decimal with an optional binary or decimal
/// SI suffix. Exponent forms (`1e3`) are accepted too.
pub fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix('+').unwrap_or(s);
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    let valid_number = !num.is_empty()
        && num != "."
        && num.matches('.').count() <= 1
        && num.chars().any(|c| c.is_ascii_digit());
    let valid_suffix = matches!(
        suffix,
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "m" | "k" | "M" | "G" | "T" | "P" | "E"
    ) || (suffix.len() > 1
        && (suffix.starts_with('e') || suffix.starts_with('E'))
        && suffix[1..]
            .strip_prefix(['+', '-'])
            .unwrap_or(&suffix[1..])
            .chars()
            .all(|c| c.is_ascii_digit())
        && suffix[1..].chars().any(|c| c.is_ascii_digit()));
    valid_number && valid_suffix
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// Label key: `[prefix/]name` (Kubernetes `IsQualifiedName`).
pub fn check_label_key(key: &str) -> Result<(), &'static str> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return Err("prefix must be a DNS subdomain");
    }
    if !is_name_part(name) {
        return Err(
            "name must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
        );
    }
    Ok(())
}

/// Label value: empty or a name part.
pub fn check_label_value(value: &str) -> Result<(), &'static str> {
    if value.is_empty() || is_name_part(value) {
        Ok(())
    } else {
        Err(
            "must be empty or 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(spec: &FleetStackSpec) -> Vec<String> {
        match validate_spec(spec) {
            Ok(()) => vec![],
            Err(errors) => errors.into_iter().map(|e| e.path).collect(),
        }
    }

    #[test]
    fn a_nats_only_stack_is_valid() {
        let spec = FleetStackSpec {
            nats: Some(NatsSpec::default()),
            ..Default::default()
        };
        assert_eq!(paths(&spec), Vec::<String>::new());
    }

    #[test]
    fn vm_agents_are_refused_with_the_field_path() {
        let spec = FleetStackSpec {
            nats: Some(NatsSpec::default()),
            agents: Some(AgentsSpec {
                target: AgentTarget::Vm,
                replicas: 1,
                image: "x".into(),
                labels: BTreeMap::new(),
                resources: None,
            }),
            ..Default::default()
        };
        let errors = validate_spec(&spec).expect_err("Vm must be refused");
        assert_eq!(errors[0].path, "spec.agents.target");
        assert!(errors[0].to_string().contains("not implemented"));
    }

    #[test]
    fn agents_without_nats_and_bad_labels_are_reported() {
        let mut labels = BTreeMap::new();
        labels.insert("bad key".to_string(), "ok".to_string());
        labels.insert("site".to_string(), "-bad".to_string());
        labels.insert("app.kubernetes.io/name".to_string(), "x".to_string());
        let spec = FleetStackSpec {
            agents: Some(AgentsSpec {
                target: AgentTarget::Pod,
                replicas: 2,
                image: "x".into(),
                labels,
                resources: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            paths(&spec),
            vec![
                "spec.agents.replicas",
                "spec.agents.labels[\"app.kubernetes.io/name\"]",
                "spec.agents.labels[\"bad key\"]",
                "spec.agents.labels[\"site\"]",
            ]
        );
    }

    #[test]
    fn identity_needs_exactly_one_source() {
        let spec = FleetStackSpec {
            identity: Some(IdentitySpec::default()),
            ..Default::default()
        };
        assert_eq!(paths(&spec), vec!["spec.identity"]);
        let spec = FleetStackSpec {
            identity: Some(IdentitySpec {
                managed: Some(ManagedZitadelSpec {
                    image: "z".into(),
                    external_domain: "id.example.com".into(),
                    database: ZitadelDatabaseSpec {
                        mode: DatabaseMode::External,
                        secret_ref: None,
                    },
                    bootstrap_image: "b".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            paths(&spec),
            vec!["spec.identity.managed.database.secretRef"]
        );
    }

    #[test]
    fn long_stack_names_are_refused_naming_the_field() {
        assert!(validate_name(&"a".repeat(MAX_STACK_NAME)).is_ok());
        let e = validate_name(&"a".repeat(MAX_STACK_NAME + 1)).unwrap_err();
        assert_eq!(e.path, "metadata.name");
        assert!(e.message.contains("41 given"), "{}", e.message);
    }

    #[test]
    fn quantities_are_checked() {
        for good in ["1Gi", "500m", "1", "1.5G", "1e3", "+2Ki"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "Gi", "1GB", "1.2.3", "abc", "1e", "-1"] {
            assert!(!is_quantity(bad), "{bad}");
        }
        let mut spec = FleetStackSpec {
            nats: Some(NatsSpec::default()),
            ..Default::default()
        };
        if let Some(n) = spec.nats.as_mut() {
            n.jetstream.enabled = true;
            n.jetstream.storage_size = Quantity("lots".into());
        }
        assert_eq!(paths(&spec), vec!["spec.nats.jetstream.storageSize"]);
    }

    fn external_identity() -> IdentitySpec {
        IdentitySpec {
            external: Some(ExternalIdentitySpec {
                issuer: "http://issuer:8080".into(),
                client_credentials: SecretRef {
                    name: "probe".into(),
                },
            }),
            ..Default::default()
        }
    }

    fn callout() -> CalloutSpec {
        CalloutSpec {
            image: "c".into(),
            replicas: 1,
            audience: None,
            identity_claim: None,
            introspection_credentials: None,
        }
    }

    #[test]
    fn callout_needs_callout_mode_and_an_audience_with_an_external_issuer() {
        let spec = FleetStackSpec {
            nats: Some(NatsSpec::default()),
            identity: Some(external_identity()),
            callout: Some(CalloutSpec {
                identity_claim: Some("client id".into()),
                ..callout()
            }),
            ..Default::default()
        };
        assert_eq!(
            paths(&spec),
            vec![
                "spec.callout",
                "spec.callout.audience",
                "spec.callout.identityClaim"
            ]
        );
        let mut nats = NatsSpec::default();
        nats.auth.mode = NatsAuthMode::Callout;
        let spec = FleetStackSpec {
            nats: Some(nats),
            identity: Some(external_identity()),
            callout: Some(CalloutSpec {
                audience: Some("fleet-nats".into()),
                ..callout()
            }),
            ..Default::default()
        };
        assert_eq!(paths(&spec), Vec::<String>::new());
    }

    #[test]
    fn callout_mode_needs_callout_and_identity() {
        let mut nats = NatsSpec::default();
        nats.auth.mode = NatsAuthMode::Callout;
        let spec = FleetStackSpec {
            nats: Some(nats),
            ..Default::default()
        };
        assert_eq!(
            paths(&spec),
            vec!["spec.nats.auth.mode", "spec.nats.auth.mode"]
        );
    }
}
