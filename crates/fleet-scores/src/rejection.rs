//! From "the API server refused one of our objects" back to the FleetStack
//! field that produced it (pure; issue 13 item 3).
//!
//! [`fleet_crds::validate_spec`] refuses what it can before anything is
//! applied; this is the net for the rest: a rule we do not check (or check
//! differently), a newer API server. The refusals it understands:
//!
//! * an apply/create answered with 422 `Invalid` (or 400): the field paths
//!   come from `details.causes[].field`, or from the message
//!   (`StatefulSet.apps "demo-agent" is invalid: spec.template...: ...`);
//! * a server-side apply answered with 500 whose message is a decode
//!   failure of our object, which is deterministic, not an outage
//!   (`failed to create typed patch object (...): .spec...: ...`, or a
//!   quantity that does not parse);
//! * a `FailedCreate` Event of a StatefulSet or ReplicaSet (or a
//!   Deployment's `ReplicaFailure` condition message): the workload was
//!   accepted but the Pod or claim made from it is refused
//!   (`create Pod demo-nats-0 in StatefulSet demo-nats failed error: Pod
//!   "demo-nats-0" is invalid: spec.containers[0].resources.requests: ...`).
//!
//! Only objects named after the stack, of the workload kinds, are mapped;
//! a Secret never is (its refusal could quote data). Our workloads carry no
//! secret value (env comes from `secretKeyRef`, seeds are mounted files),
//! so quoting the API's message is safe; it is cut to [`MAX_QUOTE`]
//! characters, control characters dropped.
//!
//! `None` means "not produced by a FleetStack field": a refusal of a field
//! we set ourselves is our bug, and stays an ordinary error.

use fleet_crds::SpecError;
use fleet_crds::validate::key_path;
use kube::core::Status;

use crate::score::InterpretError;
use crate::zitadel::ZitadelNames;

/// Longest quote of an API message in a [`SpecError`].
pub const MAX_QUOTE: usize = 600;

/// A failed apply or create of one of our objects.
pub fn from_interpret_error(stack: &str, error: &InterpretError) -> Option<SpecError> {
    match error {
        InterpretError::Api {
            kind, name, source, ..
        } => match source.as_ref() {
            kube::Error::Api(status) => from_api_status(stack, kind, name, status),
            _ => None,
        },
        InterpretError::Refused(error) => Some(error.clone()),
        InterpretError::Build { .. }
        | InterpretError::NatsCheck(_)
        | InterpretError::NotOwned { .. }
        | InterpretError::SecretEncoding { .. }
        | InterpretError::SecretInvalid { .. }
        | InterpretError::SecretRace { .. }
        | InterpretError::Topology(_) => None,
    }
}

/// A Secret the user named in the spec that cannot serve (today the CA of
/// `spec.nats.tls.caSecret`: a key missing, a key that does not match the
/// certificate, not a CA, expired): reported on that field. The caller
/// retries on a timer rather than waiting for a new generation, because
/// the fix is an edit of the Secret, which does not change the stack.
pub fn from_user_secret(
    spec: &fleet_crds::FleetStackSpec,
    error: &InterpretError,
) -> Option<SpecError> {
    let InterpretError::SecretInvalid {
        namespace,
        name,
        key,
        expected,
    } = error
    else {
        return None;
    };
    let ca = spec.nats.as_ref()?.tls.ca_secret.as_ref()?;
    (ca.name == *name).then(|| SpecError {
        path: "spec.nats.tls.caSecret".into(),
        message: format!("Secret {namespace}/{name} key {key} does not hold a valid {expected}"),
    })
}

/// The API server's answer to writing our object `kind`/`name`.
pub fn from_api_status(stack: &str, kind: &str, name: &str, status: &Status) -> Option<SpecError> {
    let target = Target::of(stack, kind, name)?;
    let quote = format!(
        "the API server refused {kind} {name}: {}",
        clean(&status.message)
    );
    let deterministic = match status.code {
        400 | 422 => true,
        500 => DECODE_FAILURES.iter().any(|p| status.message.contains(p)),
        _ => false,
    };
    if !deterministic {
        return None;
    }
    let causes = status
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        .filter(|c| !c.field.is_empty())
        .map(|c| (c.field.as_str(), c.message.as_str()));
    let from_message = fields_in_message(&status.message);
    let object = ObjectKind::of(kind)?;
    for (field, detail) in causes.chain(from_message.iter().map(|(f, d)| (*f, *d))) {
        if let Some(path) = target.field(object, field, detail) {
            return Some(SpecError {
                path,
                message: quote,
            });
        }
    }
    // A quantity that does not parse names no field.
    if QUANTITY_FAILURES.iter().any(|p| status.message.contains(p)) {
        return target.quantities().map(|path| SpecError {
            path: path.to_string(),
            message: quote,
        });
    }
    None
}

/// A Warning Event on our workload `kind`/`name` (StatefulSet, ReplicaSet
/// or Deployment), or a Deployment's `ReplicaFailure` condition (pass
/// reason `FailedCreate`).
pub fn from_event(
    stack: &str,
    kind: &str,
    name: &str,
    reason: &str,
    message: &str,
) -> Option<SpecError> {
    if reason != "FailedCreate" {
        return None;
    }
    let target = Target::of(stack, kind, name)?;
    // `... failed error: Pod "x" is invalid: <errors>` / `Error creating: ...`
    let at = message.find(" is invalid: ")?;
    let (before, _) = message[..at].rsplit_once(" \"")?;
    let refused_kind = before.rsplit([' ', ':']).next().unwrap_or(before);
    let object = ObjectKind::of(refused_kind)?;
    // Quote from the refused object on (`Pod "x" is invalid: ...`).
    let refused = &message[before.len() - refused_kind.len()..];
    let quote = format!("{kind} {name} cannot create its pods: {}", clean(refused));
    fields_in_message(message)
        .into_iter()
        .find_map(|(field, detail)| target.field(object, field, detail))
        .map(|path| SpecError {
            path,
            message: quote,
        })
}

/// 500s that are our object failing to decode, not the server failing.
const DECODE_FAILURES: [&str; 2] = [
    "failed to create typed patch object",
    "quantities must match",
];
const QUANTITY_FAILURES: [&str; 3] = [
    "quantities must match",
    "unable to parse quantity's suffix",
    "unable to parse numeric part of quantity",
];

fn clean(message: &str) -> String {
    let text: String = message.chars().filter(|c| !c.is_control()).collect();
    if text.chars().count() <= MAX_QUOTE {
        text
    } else {
        let cut: String = text.chars().take(MAX_QUOTE).collect();
        format!("{cut}...")
    }
}

/// `(field, detail)` of each field error in an API message:
/// `X "n" is invalid: f: d`, `X "n" is invalid: [f1: d1, f2: d2]`, and the
/// smd form `failed to create typed patch object (...): .f: d`.
fn fields_in_message(message: &str) -> Vec<(&str, &str)> {
    let body = if let Some(i) = message.find(" is invalid: ") {
        &message[i + " is invalid: ".len()..]
    } else if let Some(i) = message.find("): .") {
        &message[i + "): ".len()..]
    } else {
        return Vec::new();
    };
    let body = body.strip_prefix('[').unwrap_or(body);
    // A field error starts at the beginning or after ", ", with a path
    // followed by ": ".
    let mut starts = vec![0];
    starts.extend(body.match_indices(", ").map(|(i, _)| i + 2));
    let mut out = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let rest = &body[start..];
        let Some(colon) = rest.find(": ") else {
            continue;
        };
        let field = &rest[..colon];
        if !looks_like_path(field) {
            continue;
        }
        let end = starts
            .get(n + 1)
            .map_or(body.len(), |next| next.saturating_sub(2));
        let detail = body
            .get(start + colon + 2..end.max(start + colon + 2))
            .unwrap_or("");
        out.push((field, detail));
    }
    out
}

fn looks_like_path(s: &str) -> bool {
    let s = s.strip_prefix('.').unwrap_or(s);
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.contains(' ')
        && (s.contains('.') || s.contains('['))
}

/// One segment of an API field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment<'a> {
    Field(&'a str),
    Index(usize),
    /// `[cpu]`, `["example.com/gpu"]`, smd `[name="agent"]` (the value).
    Key(&'a str),
}

/// `spec.containers[0].resources.requests[cpu]` and the smd form
/// `.spec.containers[name="agent"].resources.requests.cpu` as segments.
fn segments(path: &str) -> Option<Vec<Segment<'_>>> {
    let mut out = Vec::new();
    let mut rest = path.strip_prefix('.').unwrap_or(path);
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']')?;
            let key = &inner[..close];
            let key = key.split_once('=').map_or(key, |(_, v)| v);
            let key = key.trim_matches('"');
            out.push(match key.parse::<usize>() {
                Ok(i) => Segment::Index(i),
                Err(_) => Segment::Key(key),
            });
            rest = &inner[close + 1..];
            rest = rest.strip_prefix('.').unwrap_or(rest);
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(Segment::Field(&rest[..end]));
            rest = &rest[end..];
            rest = rest.strip_prefix('.').unwrap_or(rest);
        }
    }
    Some(out)
}

/// What kind of object a field path is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectKind {
    /// StatefulSet, Deployment, ReplicaSet, Job: `spec.template.spec...`.
    Workload,
    Pod,
    Claim,
}

impl ObjectKind {
    fn of(kind: &str) -> Option<Self> {
        match kind {
            "StatefulSet" | "StatefulSet.apps" | "Deployment" | "Deployment.apps"
            | "ReplicaSet" | "ReplicaSet.apps" | "Job" | "Job.batch" => Some(ObjectKind::Workload),
            "Pod" | "pods" => Some(ObjectKind::Pod),
            "PersistentVolumeClaim" => Some(ObjectKind::Claim),
            _ => None,
        }
    }
}

/// A container of one of our workloads and the fields it comes from.
#[derive(Debug, Clone, Copy)]
struct ContainerFields {
    name: &'static str,
    init: bool,
    image: &'static str,
    /// `None`: its resources are ours, not the user's.
    resources: Option<&'static str>,
}

/// The workload a refused object belongs to.
#[derive(Debug, Clone, Copy)]
struct Target {
    containers: &'static [ContainerFields],
    replicas: Option<&'static str>,
    template_labels: Option<&'static str>,
    /// The JetStream claim template: (storage size, storage class).
    claim: Option<(&'static str, &'static str)>,
}

const NATS: Target = Target {
    containers: &[ContainerFields {
        name: "nats",
        init: false,
        image: "spec.nats.image",
        resources: Some("spec.nats.resources"),
    }],
    replicas: Some("spec.nats.replicas"),
    template_labels: None,
    claim: Some((
        "spec.nats.jetstream.storageSize",
        "spec.nats.jetstream.storageClassName",
    )),
};
const AGENTS: Target = Target {
    containers: &[ContainerFields {
        name: "agent",
        init: false,
        image: "spec.agents.image",
        resources: Some("spec.agents.resources"),
    }],
    replicas: Some("spec.agents.replicas"),
    template_labels: Some("spec.agents.labels"),
    claim: None,
};
const CALLOUT: Target = Target {
    containers: &[ContainerFields {
        name: "callout",
        init: false,
        image: "spec.callout.image",
        resources: None,
    }],
    replicas: Some("spec.callout.replicas"),
    template_labels: None,
    claim: None,
};
const OPERATOR: Target = Target {
    containers: &[ContainerFields {
        name: "operator",
        init: false,
        image: "spec.operator.image",
        resources: None,
    }],
    replicas: Some("spec.operator.replicas"),
    template_labels: None,
    claim: None,
};
const ZITADEL: Target = Target {
    containers: &[ContainerFields {
        name: "zitadel",
        init: false,
        image: "spec.identity.managed.image",
        resources: None,
    }],
    replicas: None,
    template_labels: None,
    claim: None,
};
const ZITADEL_SETUP: Target = Target {
    containers: &[
        ContainerFields {
            name: "bootstrap",
            init: false,
            image: "spec.identity.managed.bootstrapImage",
            resources: None,
        },
        ContainerFields {
            name: "zitadel-setup",
            init: true,
            image: "spec.identity.managed.image",
            resources: None,
        },
    ],
    replicas: None,
    template_labels: None,
    claim: None,
};

impl Target {
    /// Which of our workloads `kind`/`name` is, or belongs to (its pods,
    /// ReplicaSets and claims).
    fn of(stack: &str, kind: &str, name: &str) -> Option<Target> {
        let z = ZitadelNames::new(stack);
        let statefulsets = [
            (format!("{stack}-nats"), NATS),
            (format!("{stack}-agent"), AGENTS),
        ];
        let deployments = [
            (format!("{stack}-callout"), CALLOUT),
            (format!("{stack}-operator"), OPERATOR),
            (z.deployment.clone(), ZITADEL),
        ];
        let jobs = [
            (z.init_job.clone(), ZITADEL),
            (z.setup_job.clone(), ZITADEL_SETUP),
        ];
        let one_segment = |s: &str| !s.is_empty() && !s.contains('-');
        let ordinal = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        let find = |list: &[(String, Target)], matches: &dyn Fn(&str) -> bool| {
            list.iter().find(|(n, _)| matches(n)).map(|(_, t)| *t)
        };
        let suffix = |owner: &str| name.strip_prefix(owner).and_then(|r| r.strip_prefix('-'));
        match ObjectKind::of(kind)? {
            ObjectKind::Workload => match kind.split('.').next().unwrap_or(kind) {
                "StatefulSet" => find(&statefulsets, &|n| n == name),
                "Deployment" => find(&deployments, &|n| n == name),
                "ReplicaSet" => find(&deployments, &|n| suffix(n).is_some_and(one_segment)),
                "Job" => find(&jobs, &|n| n == name),
                _ => None,
            },
            ObjectKind::Pod => find(&statefulsets, &|n| suffix(n).is_some_and(ordinal))
                .or_else(|| find(&jobs, &|n| suffix(n).is_some_and(one_segment)))
                .or_else(|| {
                    find(&deployments, &|n| {
                        suffix(n)
                            .and_then(|r| r.split_once('-'))
                            .is_some_and(|(a, b)| one_segment(a) && one_segment(b))
                    })
                }),
            // `<template>-<statefulset>-<ordinal>`
            ObjectKind::Claim => name.strip_prefix("jetstream-").and_then(|rest| {
                let (sts, n) = rest.rsplit_once('-')?;
                (sts == format!("{stack}-nats") && ordinal(n)).then_some(NATS)
            }),
        }
    }

    /// Where an unparseable quantity of this workload can come from.
    fn quantities(&self) -> Option<&'static str> {
        match (self.claim, self.containers.iter().find_map(|c| c.resources)) {
            // NATS: resources or the JetStream size; name the section.
            (Some(_), Some(_)) => Some("spec.nats"),
            (None, Some(resources)) => Some(resources),
            (Some((size, _)), None) => Some(size),
            (None, None) => None,
        }
    }

    /// The FleetStack field of API field `field` of a refused `object`.
    fn field(&self, object: ObjectKind, field: &str, detail: &str) -> Option<String> {
        let segs = segments(field)?;
        let s: Vec<&Segment> = segs.iter().collect();
        use Segment::{Field as F, Index as I};
        match (object, s.as_slice()) {
            (_, [F("metadata"), F("name"), ..]) => Some("metadata.name".into()),
            (ObjectKind::Workload, [F("spec"), F("replicas"), ..]) => {
                self.replicas.map(String::from)
            }
            (ObjectKind::Workload, [F("spec"), F("template"), F("metadata"), F("labels"), ..])
            | (ObjectKind::Pod, [F("metadata"), F("labels"), ..]) => {
                self.template_labels.map(String::from)
            }
            (ObjectKind::Workload, [F("spec"), F("template"), F("spec"), rest @ ..])
            | (ObjectKind::Pod, [F("spec"), rest @ ..]) => self.pod_field(rest, detail),
            (
                ObjectKind::Workload,
                [
                    F("spec"),
                    F("volumeClaimTemplates"),
                    I(_) | Segment::Key(_),
                    F("spec"),
                    rest @ ..,
                ],
            )
            | (ObjectKind::Claim, [F("spec"), rest @ ..]) => self.claim_field(rest),
            _ => None,
        }
    }

    fn pod_field(&self, rest: &[&Segment], detail: &str) -> Option<String> {
        let (list, which, rest) = match rest {
            [Segment::Field(list), which, rest @ ..] => (*list, *which, rest),
            _ => return None,
        };
        let init = match list {
            "containers" => false,
            "initContainers" => true,
            _ => return None,
        };
        let of_kind = self.containers.iter().filter(|c| c.init == init);
        let container = match which {
            Segment::Index(i) => of_kind.clone().nth(*i),
            Segment::Key(name) => of_kind.clone().find(|c| c.name == *name),
            Segment::Field(_) => None,
        }?;
        match rest {
            [Segment::Field("image"), ..] => Some(container.image.to_string()),
            [Segment::Field("resources"), tail @ ..] => {
                let base = container.resources?;
                Some(resource_path(base, tail, detail))
            }
            _ => None,
        }
    }

    fn claim_field(&self, rest: &[&Segment]) -> Option<String> {
        let (size, class) = self.claim?;
        match rest {
            [Segment::Field("resources"), ..] => Some(size.to_string()),
            [Segment::Field("storageClassName"), ..] => Some(class.to_string()),
            _ => None,
        }
    }
}

/// `<base>[.requests|.limits[.<name>]]`; the API names
/// `resources.requests` alone for "must be less than or equal to cpu
/// limit", so the resource is taken from that message when it does.
fn resource_path(base: &str, tail: &[&Segment], detail: &str) -> String {
    let Some(Segment::Field(list @ ("requests" | "limits"))) = tail.first() else {
        return base.to_string();
    };
    let parent = format!("{base}.{list}");
    match tail.get(1) {
        Some(Segment::Key(name) | Segment::Field(name)) => key_path(&parent, name),
        Some(Segment::Index(_)) | None => match resource_in_detail(detail) {
            Some(name) => key_path(&parent, name),
            None => parent,
        },
    }
}

/// `cpu` in "must be less than or equal to cpu limit" (and "equal to").
fn resource_in_detail(detail: &str) -> Option<&str> {
    let at = detail.find(" equal to ")? + " equal to ".len();
    let rest = &detail[at..];
    let name = rest.split(' ').next()?;
    rest[name.len()..]
        .starts_with(" limit")
        .then_some(name)
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: &str) -> Status {
        serde_json::from_str(json).expect("a Status body")
    }

    /// A 422 as the API server writes it for a StatefulSet whose template
    /// has requests above limits (ValidateResourceRequirements names the
    /// `requests` map, the resource is in the message).
    const STS_422: &str = r#"{
      "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
      "message": "StatefulSet.apps \"demo-agent\" is invalid: spec.template.spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
      "reason": "Invalid",
      "details": {"name": "demo-agent", "group": "apps", "kind": "StatefulSet",
        "causes": [{"reason": "FieldValueInvalid",
          "message": "Invalid value: \"2\": must be less than or equal to cpu limit of 1",
          "field": "spec.template.spec.containers[0].resources.requests"}]},
      "code": 422}"#;

    #[test]
    fn a_422_on_the_agents_maps_to_the_agents_resources() {
        let e =
            from_api_status("demo", "StatefulSet", "demo-agent", &status(STS_422)).expect("mapped");
        assert_eq!(e.path, "spec.agents.resources.requests.cpu");
        assert!(
            e.message
                .starts_with("the API server refused StatefulSet demo-agent: StatefulSet.apps"),
            "{}",
            e.message
        );
        assert!(
            e.message
                .contains("must be less than or equal to cpu limit")
        );
    }

    #[test]
    fn causes_with_keys_and_several_errors_in_the_message() {
        // Older servers name the key; a message with several errors.
        let s = status(
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure",
            "message":"Deployment.apps \"demo-operator\" is invalid: [spec.replicas: Invalid value: -1: must be greater than or equal to 0, spec.template.spec.containers[0].image: Required value]",
            "reason":"Invalid","code":422,
            "details":{"name":"demo-operator","group":"apps","kind":"Deployment"}}"#,
        );
        let e = from_api_status("demo", "Deployment", "demo-operator", &s).expect("mapped");
        assert_eq!(e.path, "spec.operator.replicas");
        let s = status(
            r#"{"status":"Failure","reason":"Invalid","code":422,
            "message":"StatefulSet.apps \"demo-nats\" is invalid: spec.template.spec.containers[0].resources.limits[memory]: Invalid value: \"-1\": must be greater than or equal to 0",
            "details":{"causes":[{"reason":"FieldValueInvalid","message":"Invalid value: \"-1\": must be greater than or equal to 0","field":"spec.template.spec.containers[0].resources.limits[memory]"}]}}"#,
        );
        let e = from_api_status("demo", "StatefulSet", "demo-nats", &s).expect("mapped");
        assert_eq!(e.path, "spec.nats.resources.limits.memory");
    }

    /// The issue's `requests.cpu: banana`: server-side apply fails to decode
    /// the quantity and answers 500 (no reason, no field).
    #[test]
    fn an_unparseable_quantity_500_maps_to_the_resources() {
        let s = status(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"failed to convert new object (fleet/demo-agent; apps/v1, Kind=StatefulSet) to proper version (apps/v1): quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            "code":500}"#,
        );
        let e = from_api_status("demo", "StatefulSet", "demo-agent", &s).expect("mapped");
        assert_eq!(e.path, "spec.agents.resources");
        assert!(e.message.contains("quantities must match"), "{}", e.message);
        let e = from_api_status("demo", "StatefulSet", "demo-nats", &s).expect("mapped");
        assert_eq!(e.path, "spec.nats");
        // The callout's resources are ours: not a spec error.
        assert_eq!(
            from_api_status("demo", "Deployment", "demo-callout", &s),
            None
        );
    }

    #[test]
    fn a_typed_patch_500_names_the_field_in_smd_form() {
        let s = status(
            r#"{"status":"Failure","code":500,
            "message":"failed to create typed patch object (fleet/demo-agent; apps/v1, Kind=StatefulSet): .spec.template.spec.containers[name=\"agent\"].image: expected string, got &value.valueUnstructured{Value:1}"}"#,
        );
        let e = from_api_status("demo", "StatefulSet", "demo-agent", &s).expect("mapped");
        assert_eq!(e.path, "spec.agents.image");
    }

    #[test]
    fn outages_foreign_objects_and_our_own_fields_are_not_spec_errors() {
        let outage =
            status(r#"{"status":"Failure","code":500,"message":"etcdserver: request timed out"}"#);
        assert_eq!(
            from_api_status("demo", "StatefulSet", "demo-agent", &outage),
            None
        );
        let quota = status(
            r#"{"status":"Failure","code":403,"reason":"Forbidden","message":"exceeded quota"}"#,
        );
        assert_eq!(
            from_api_status("demo", "StatefulSet", "demo-agent", &quota),
            None
        );
        // Another stack's object, and a Secret (never quoted).
        assert_eq!(
            from_api_status("other", "StatefulSet", "demo-agent", &status(STS_422)),
            None
        );
        assert_eq!(
            from_api_status("demo", "Secret", "demo-agent", &status(STS_422)),
            None
        );
        // A field we set ourselves (env of the agent container).
        let ours = status(
            r#"{"status":"Failure","code":422,"reason":"Invalid",
            "message":"StatefulSet.apps \"demo-agent\" is invalid: spec.template.spec.containers[0].env[0].name: Invalid value: \"1X\": a valid environment variable name must consist of alphabetic characters"}"#,
        );
        assert_eq!(
            from_api_status("demo", "StatefulSet", "demo-agent", &ours),
            None
        );
    }

    /// The issue's NATS `limits.memory` below `requests.memory`: the
    /// StatefulSet is accepted, its controller's pod create is refused.
    #[test]
    fn a_statefulset_failed_create_event_maps_to_the_nats_resources() {
        let message = "create Pod demo-nats-0 in StatefulSet demo-nats failed error: Pod \"demo-nats-0\" is invalid: spec.containers[0].resources.requests: Invalid value: \"128Mi\": must be less than or equal to memory limit of 64Mi";
        let e = from_event("demo", "StatefulSet", "demo-nats", "FailedCreate", message)
            .expect("mapped");
        assert_eq!(e.path, "spec.nats.resources.requests.memory");
        assert_eq!(
            e.message,
            "StatefulSet demo-nats cannot create its pods: Pod \"demo-nats-0\" is invalid: \
             spec.containers[0].resources.requests: Invalid value: \"128Mi\": must be less than \
             or equal to memory limit of 64Mi"
        );
        // Other reasons (and successes) are not refusals.
        assert_eq!(
            from_event(
                "demo",
                "StatefulSet",
                "demo-nats",
                "SuccessfulCreate",
                message
            ),
            None
        );
    }

    #[test]
    fn claim_and_replicaset_events_map_too() {
        let claim = "create Claim jetstream-demo-nats-0 for Pod demo-nats-0 in StatefulSet demo-nats failed error: PersistentVolumeClaim \"jetstream-demo-nats-0\" is invalid: spec.resources[storage]: Invalid value: \"0\": must be greater than zero";
        let e =
            from_event("demo", "StatefulSet", "demo-nats", "FailedCreate", claim).expect("mapped");
        assert_eq!(e.path, "spec.nats.jetstream.storageSize");
        let rs = "Error creating: Pod \"demo-callout-6d4cf56db6-x2x7k\" is invalid: spec.containers[0].image: Required value";
        let e = from_event(
            "demo",
            "ReplicaSet",
            "demo-callout-6d4cf56db6",
            "FailedCreate",
            rs,
        )
        .expect("mapped");
        assert_eq!(e.path, "spec.callout.image");
        // The same message from the Deployment's ReplicaFailure condition.
        let e =
            from_event("demo", "Deployment", "demo-callout", "FailedCreate", rs).expect("mapped");
        assert_eq!(e.path, "spec.callout.image");
        // Quota is the cluster's policy, not the spec.
        let quota = "Error creating: pods \"demo-callout-6d4cf56db6-x2x7k\" is forbidden: exceeded quota: q";
        assert_eq!(
            from_event(
                "demo",
                "ReplicaSet",
                "demo-callout-6d4cf56db6",
                "FailedCreate",
                quota
            ),
            None
        );
    }

    #[test]
    fn zitadel_jobs_map_their_two_images() {
        let s = |field: &str| {
            status(&format!(
                r#"{{"status":"Failure","code":422,"reason":"Invalid","message":"Job.batch \"demo-zitadel-setup\" is invalid: {field}: Required value"}}"#
            ))
        };
        let main = from_api_status(
            "demo",
            "Job",
            "demo-zitadel-setup",
            &s("spec.template.spec.containers[0].image"),
        )
        .expect("mapped");
        assert_eq!(main.path, "spec.identity.managed.bootstrapImage");
        let init = from_api_status(
            "demo",
            "Job",
            "demo-zitadel-setup",
            &s("spec.template.spec.initContainers[0].image"),
        )
        .expect("mapped");
        assert_eq!(init.path, "spec.identity.managed.image");
    }

    #[test]
    fn targets_are_recognised_by_name_and_kind() {
        assert!(Target::of("demo", "Pod", "demo-agent-12").is_some());
        assert!(Target::of("demo", "Pod", "demo-zitadel-init-abcde").is_some());
        assert!(Target::of("demo", "Pod", "demo-zitadel-7c9f8d6b5-abcde").is_some());
        assert!(Target::of("demo", "PersistentVolumeClaim", "jetstream-demo-nats-2").is_some());
        assert!(Target::of("demo", "PersistentVolumeClaim", "data-demo-zitadel-db-0").is_none());
        assert!(Target::of("demo", "StatefulSet", "demo-zitadel-db").is_none());
        assert!(Target::of("demo", "Service", "demo-nats").is_none());
    }

    #[test]
    fn long_messages_are_cut_and_control_characters_dropped() {
        let text = format!("a\nb{}", "x".repeat(2 * MAX_QUOTE));
        let c = clean(&text);
        assert!(c.starts_with("ab"));
        assert_eq!(c.chars().count(), MAX_QUOTE + 3);
    }
}
