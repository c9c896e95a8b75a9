//! The callout's smoke probe: `GET /readyz` through its Service. The
//! callout answers 200 only once it is subscribed to `$SYS.REQ.USER.AUTH`
//! on NATS (as the AUTH user, so NATS accepted its password and callout
//! config) and has loaded the issuer's discovery document, so a pass means
//! both NATS and the identity provider are reachable from the callout.
//! Through a Service, one ready replica is enough: the queue group lets any
//! replica answer.

use std::time::Duration;

use crate::http_probe::Readyz;
use crate::score::ProbeOutcome;

/// The callout's `/readyz`.
pub const READYZ: Readyz = Readyz {
    component: crate::Component::Callout.name(),
    not_ready: "CalloutNotReady",
    unreachable: "CalloutUnreachable",
    passed: "callout /readyz: subscribed to NATS and issuer discovery loaded",
};

/// Probes `http://<host>:<port>/readyz` within `deadline`.
pub async fn smoke_probe(host: &str, port: u16, deadline: Duration) -> ProbeOutcome {
    READYZ.probe(host, port, deadline).await
}
