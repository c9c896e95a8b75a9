//! `FleetNatsScore`: the NATS server of a FleetStack.
//!
//! Pipeline: build desired objects (pure, [`objects::build`]) -> apply
//! ServiceAccount -> ensure the write-once credentials Secret -> apply
//! ConfigMap, Services, PDB, StatefulSet (unchanged ones skipped) -> delete
//! NATS objects no longer desired (e.g. the PDB when replicas drops to 1)
//! -> smoke probe.

pub mod access;
pub mod config;
pub mod objects;
pub mod probe;
pub mod probe_tls;
pub mod reload;
pub mod server_check;
pub mod user_config;

use std::collections::BTreeMap;
use std::time::Duration;

use std::net::IpAddr;

use fleet_crds::{
    AdvertiseAddress, CertificateStatus, Endpoint, NatsAuthMode, NatsSpec, parse_advertise_address,
};
use fleet_proto::client::ClientTls;
use k8s_openapi::api::core::v1::Service;
use kube::Api;

use crate::apply::DesiredObject;
use crate::component::Component;
use crate::labels;
use crate::resources::Resources;
use crate::score::{Interpret, InterpretError, Outcome, ProbeOutcome, Published, Score};
use crate::secret::{self, Sensitive};
use crate::service_route::Dial;
use crate::stack_ref::StackRef;
use crate::tls::{self, CertPolicy, CertificateAuthority, ServerIdentity, Validity};
use crate::topology::KubernetesTopology;
use crate::write_once;
pub use objects::{
    COMPONENT, NatsInput, NatsNames, NatsObjects, NatsTlsInput, build, build_with_tls,
};
pub use probe::{ProbeRoutes, ProbeTarget, smoke_probe, smoke_probe_with};
pub use reload::Expected;

/// Keys of the write-once credentials Secret.
pub const SYS_PASSWORD_KEY: &str = "sys-password";
pub const FLEET_PASSWORD_KEY: &str = "fleet-password";
/// Password of cluster routes (used with replicas > 1; always generated so
/// a later scale-up needs no new key).
pub const ROUTE_PASSWORD_KEY: &str = "route-password";
/// Added with `auth.mode: Callout` (and kept if the mode changes back, so
/// the issuer key never changes under a running callout): the password of
/// the callout's NATS user, the issuer account seed (`SA...`) and the curve
/// seed (`SX...`). FleetCalloutScore mounts these three keys.
pub const AUTH_PASSWORD_KEY: &str = "auth-password";
pub const CALLOUT_ISSUER_SEED_KEY: &str = "callout-issuer-seed";
pub const CALLOUT_XKEY_SEED_KEY: &str = "callout-xkey-seed";

/// The write-once generator: nkeys seeds for the seed keys, passwords
/// otherwise.
fn generate_value(key: &str) -> Sensitive {
    let seed = match key {
        CALLOUT_ISSUER_SEED_KEY => nkeys::KeyPair::new_account().seed(),
        CALLOUT_XKEY_SEED_KEY => nkeys::XKey::new().seed(),
        _ => return secret::generate_password(),
    };
    // Seeding a fresh key cannot fail (its type and bytes are ours); fall
    // back to a password, which `callout_auth` then reports as invalid.
    seed.map(Sensitive::new)
        .unwrap_or_else(|_| secret::generate_password())
}

/// The hash of the values of `keys` in the stack's NATS credentials
/// Secret, for the pod template of a workload that consumes them: values
/// regenerated after the Secret was deleted roll it (docs/adr/0016).
/// `None` while the Secret does not exist.
pub async fn consumed_credentials_hash(
    client: &kube::Client,
    stack: &StackRef,
    keys: &[&str],
) -> Result<Option<String>, InterpretError> {
    let secret = NatsNames::new(&stack.name).credentials_secret;
    Ok(secret::read_keys(client, &stack.namespace, &secret, keys)
        .await?
        .map(|values| write_once::credentials_hash(&values, keys)))
}

/// The callout's public keys from the seeds in the credentials Secret.
pub fn callout_auth(
    values: &BTreeMap<String, Sensitive>,
    namespace: &str,
    secret_name: &str,
) -> Result<config::CalloutAuth, InterpretError> {
    let invalid = |key: &str, expected| InterpretError::SecretInvalid {
        namespace: namespace.into(),
        name: secret_name.into(),
        key: key.into(),
        expected,
    };
    let issuer = values
        .get(CALLOUT_ISSUER_SEED_KEY)
        .and_then(|s| nkeys::KeyPair::from_seed(s.expose().trim()).ok())
        .filter(|k| k.key_pair_type() == nkeys::KeyPairType::Account)
        .ok_or_else(|| invalid(CALLOUT_ISSUER_SEED_KEY, "account seed (SA...)"))?;
    let xkey = values
        .get(CALLOUT_XKEY_SEED_KEY)
        .and_then(|s| nkeys::XKey::from_seed(s.expose().trim()).ok())
        .ok_or_else(|| invalid(CALLOUT_XKEY_SEED_KEY, "curve seed (SX...)"))?;
    Ok(config::CalloutAuth {
        issuer: issuer.public_key(),
        xkey: Some(xkey.public_key()),
    })
}

/// The NATS component of one FleetStack.
#[derive(Debug, Clone)]
pub struct FleetNatsScore {
    pub stack: StackRef,
    pub spec: NatsSpec,
    /// Lifetimes of the CA and server certificate it issues.
    pub cert_policy: CertPolicy,
}

impl FleetNatsScore {
    fn input(&self, pdb_v1: bool) -> NatsInput {
        NatsInput {
            stack: self.stack.name.clone(),
            namespace: self.stack.namespace.clone(),
            owner: self.stack.owner.clone(),
            spec: self.spec.clone(),
            pdb_v1,
            callout: None,
        }
    }

    fn callout_mode(&self) -> bool {
        self.spec.auth.mode == NatsAuthMode::Callout
    }

    /// The keys of the write-once credentials Secret.
    fn credential_keys(&self) -> Vec<&'static str> {
        let mut keys = vec![SYS_PASSWORD_KEY, FLEET_PASSWORD_KEY, ROUTE_PASSWORD_KEY];
        if self.callout_mode() {
            keys.extend([
                AUTH_PASSWORD_KEY,
                CALLOUT_ISSUER_SEED_KEY,
                CALLOUT_XKEY_SEED_KEY,
            ]);
        }
        keys
    }
}

impl<T: KubernetesTopology> Score<T> for FleetNatsScore {
    fn component(&self) -> Component {
        Component::Nats
    }

    fn create_interpret(&self) -> Box<dyn Interpret<T> + '_> {
        Box::new(NatsInterpret { score: self })
    }
}

struct NatsInterpret<'a> {
    score: &'a FleetNatsScore,
}

/// What the TLS step settled: how the servers are configured, and what
/// the stack's status publishes.
struct TlsState {
    input: NatsTlsInput,
    ca_pem: String,
    validity: Validity,
}

/// The live addresses of the applied Services that a certificate and
/// `client_advertise` depend on.
struct LiveServices {
    client_cluster_ip: Option<IpAddr>,
    external_node_port: Option<u16>,
}

impl NatsInterpret<'_> {
    async fn live_services(&self, client: &kube::Client) -> Result<LiveServices, InterpretError> {
        let s = self.score;
        let names = NatsNames::new(&s.stack.name);
        let api: Api<Service> = Api::namespaced(client.clone(), &s.stack.namespace);
        let get = |name: String| {
            let api = api.clone();
            let namespace = s.stack.namespace.clone();
            async move {
                api.get_opt(&name).await.map_err(|e| InterpretError::Api {
                    verb: "get",
                    kind: "Service".into(),
                    namespace,
                    name,
                    source: Box::new(e),
                })
            }
        };
        let client_svc = get(names.client_service.clone()).await?;
        let external = match &s.spec.expose {
            Some(_) => get(objects::external_service_name(&s.stack.name)).await?,
            None => None,
        };
        Ok(LiveServices {
            client_cluster_ip: client_svc
                .and_then(|svc| svc.spec)
                .and_then(|spec| spec.cluster_ip)
                .and_then(|ip| ip.parse().ok()),
            external_node_port: external
                .and_then(|svc| svc.spec)
                .and_then(|spec| spec.ports)
                .and_then(|ports| ports.into_iter().find_map(|p| p.node_port))
                .and_then(|p| u16::try_from(p).ok()),
        })
    }

    /// The stack's CA, before anything else is applied: a user CA Secret
    /// that cannot serve stops the Score before it changed anything.
    async fn ensure_ca(
        &self,
        client: &kube::Client,
        resources: &mut Resources<'_>,
    ) -> Result<CertificateAuthority, InterpretError> {
        let s = self.score;
        let (namespace, stack) = (&s.stack.namespace, &s.stack.name);
        let (ca, _origin, ca_write) = tls::ensure::ensure_ca(
            client,
            namespace,
            stack,
            &s.spec.tls,
            &labels::component_labels(stack, tls::secret::CA_COMPONENT),
            &s.stack.owner,
            &s.cert_policy,
            tls::unix_now(),
        )
        .await?;
        if ca_write == write_once::SecretWrite::Created {
            resources.wrote("Secret", &tls::ca_secret_name(stack));
        }
        Ok(ca)
    }

    /// The CA ConfigMap the stack's pods mount, and the server certificate
    /// for every name and address clients dial.
    async fn ensure_tls(
        &self,
        client: &kube::Client,
        resources: &mut Resources<'_>,
        ca: &CertificateAuthority,
        live: &LiveServices,
    ) -> Result<TlsState, InterpretError> {
        let s = self.score;
        let (namespace, stack) = (&s.stack.namespace, &s.stack.name);
        let names = NatsNames::new(stack);
        let now = tls::unix_now();
        let ca_pem = ca.cert_pem().to_string();
        resources
            .apply(&[DesiredObject::new(&access::ca_config_map(
                &s.stack, &ca_pem,
            ))?])
            .await?;

        let advertised: Vec<AdvertiseAddress> = s
            .spec
            .expose
            .iter()
            .flat_map(|e| e.advertise.iter())
            .filter_map(|a| parse_advertise_address(a).ok())
            .collect();
        let mut identity = ServerIdentity::new()
            .with_service(&names.client_service, namespace)
            .with_headless_pods(&names.headless_service, namespace)
            .with_advertised(&advertised);
        if s.spec.expose.is_some() {
            identity = identity.with_service(&objects::external_service_name(stack), namespace);
        }
        // Probes from outside the pod network dial the cluster IP.
        if let Some(ip) = live.client_cluster_ip {
            identity = identity.with_name(&ip.to_string());
        }
        let secret = tls::nats_cert_secret_name(stack);
        resources.keep("Secret", &secret);
        let cert = tls::ensure::ensure_server_cert(
            client,
            namespace,
            &secret,
            &labels::component_labels(stack, COMPONENT),
            &s.stack.owner,
            ca,
            &identity,
            &s.cert_policy,
            now,
        )
        .await?;
        if cert.written {
            resources.wrote("Secret", &secret);
        }
        Ok(TlsState {
            input: NatsTlsInput {
                secret,
                client_advertise: config::client_advertise(
                    s.spec.expose.as_ref(),
                    live.external_node_port,
                ),
            },
            ca_pem,
            validity: cert.validity,
        })
    }

    /// `status.endpoints` and `status.certificates`.
    fn published(&self, tls: Option<&TlsState>, live: &LiveServices) -> Published {
        let s = self.score;
        let scheme = access::scheme(tls.is_some());
        let endpoints = config::advertised(s.spec.expose.as_ref(), live.external_node_port)
            .into_iter()
            .map(|host_port| Endpoint {
                name: "nats".into(),
                url: format!("{scheme}://{host_port}"),
                ca_cert: tls.map(|t| t.ca_pem.clone()),
            })
            .collect();
        let certificates = tls
            .map(|t| CertificateStatus {
                secret: t.input.secret.clone(),
                not_after: tls::rfc3339(t.validity.not_after),
                renew_after: tls::rfc3339(t.validity.renew_at()),
            })
            .into_iter()
            .collect();
        Published {
            endpoints,
            certificates,
            recheck_at: tls.map(|t| t.validity.renew_at()),
        }
    }
}

#[async_trait::async_trait]
impl<T: KubernetesTopology> Interpret<T> for NatsInterpret<'_> {
    async fn execute(&self, topology: &T) -> Result<Outcome, InterpretError> {
        let s = self.score;
        let client = topology.client();
        let names = NatsNames::new(&s.stack.name);
        let mut input = s.input(topology.serves_pdb_v1());
        let mut resources = Resources::new(topology, &s.stack, Component::Nats);
        // 0. With TLS, the CA: the only input a user can get wrong at run
        // time (their Secret), checked before anything is applied.
        let ca = match s.stack.nats_tls {
            true => Some(self.ensure_ca(client, &mut resources).await?),
            false => None,
        };
        // 1. The ServiceAccount; 2. the credentials, persisted before use
        // (the StatefulSet referencing them comes last).
        let plain = build(&input);
        resources
            .apply(&[DesiredObject::new(&plain.service_account)?])
            .await?;
        let creds = resources
            .write_once(
                &names.credentials_secret,
                &s.credential_keys(),
                &generate_value,
            )
            .await?;
        // The config names the issuer's public key, known only now; the
        // pods carry a hash of the credentials they read, so values that
        // were regenerated (the Secret was deleted) roll the servers onto
        // them instead of leaving them on the old ones (docs/adr/0016).
        if s.callout_mode() {
            input.callout = Some(callout_auth(
                &creds,
                &s.stack.namespace,
                &names.credentials_secret,
            )?);
        }
        let hash = write_once::credentials_hash(
            &creds,
            &objects::credential_keys(&s.spec, s.callout_mode()),
        );
        // 3. The Services, whose addresses the certificate names; 4. CA
        // and certificate (docs/adr/0060); 5. config, PDB, StatefulSet.
        let preliminary_tls = s.stack.nats_tls.then(|| NatsTlsInput {
            secret: tls::nats_cert_secret_name(&s.stack.name),
            client_advertise: None,
        });
        resources
            .apply(&build_with_tls(&input, preliminary_tls.as_ref()).services()?)
            .await?;
        let live = self.live_services(client).await?;
        let tls = match &ca {
            Some(ca) => Some(self.ensure_tls(client, &mut resources, ca, &live).await?),
            None => None,
        };
        let objects = build_with_tls(&input, tls.as_ref().map(|t| &t.input))
            .with_credentials_hash(Some(&hash));
        server_check::refuse_rejected(&objects.config, &s.spec).await?;
        resources.desire(&objects.services()?);
        resources.apply(&objects.workload()?).await?;
        let applied = resources.finish().await?;

        let probe = self
            .probe(topology, &creds, tls.as_ref(), &objects.marker)
            .await;
        let probe = match probe {
            ProbeOutcome::Passed { latency, message } => {
                self.probe_exposed(&creds, tls.as_ref(), &live, latency, message)
                    .await
            }
            failed => failed,
        };
        let published = self.published(tls.as_ref(), &live);
        Ok(applied.outcome(probe, None).publishing(published))
    }
}

impl NatsInterpret<'_> {
    /// With `spec.nats.expose` (and `probe` left on): a connection through
    /// every advertised address, TLS verified against the stack's CA and
    /// that address, as a device makes it (issue 14). `passed` is the
    /// in-cluster probe's result, kept when every address answers.
    async fn probe_exposed(
        &self,
        creds: &BTreeMap<String, Sensitive>,
        tls: Option<&TlsState>,
        live: &LiveServices,
        latency: Duration,
        passed: String,
    ) -> ProbeOutcome {
        let s = self.score;
        let Some(expose) = s.spec.expose.as_ref().filter(|e| e.probe) else {
            return ProbeOutcome::Passed {
                latency,
                message: passed,
            };
        };
        let addresses = config::advertised(Some(expose), live.external_node_port);
        let Some(password) = creds.get(SYS_PASSWORD_KEY) else {
            return ProbeOutcome::Passed {
                latency,
                message: passed,
            };
        };
        let client_tls = match tls.map(|t| access::ca_file_for(&t.ca_pem)) {
            None => ClientTls::default(),
            Some(Ok(path)) => ClientTls::with_ca_file(path),
            Some(Err((path, e))) => {
                return ProbeOutcome::Failed {
                    reason: "ProbeSetupFailed",
                    message: format!("nats: writing the CA to {}: {e}", path.display()),
                    latency,
                };
            }
        };
        let started = std::time::Instant::now();
        for (i, host_port) in addresses.iter().enumerate() {
            let url = format!("{}://{host_port}", access::scheme(tls.is_some()));
            if let Err(e) = probe::round_trip(
                &url,
                config::SYS_USER,
                password,
                &client_tls,
                s.stack.probe_timeout,
            )
            .await
            {
                return ProbeOutcome::Failed {
                    reason: "ExposedEndpointUnreachable",
                    message: format!(
                        "nats: the exposed endpoint {url} (spec.nats.expose.advertise[{i}]) does not answer as a device would: {e}; set spec.nats.expose.probe: false if it cannot be reached from inside the cluster"
                    ),
                    latency: latency + started.elapsed(),
                };
            }
        }
        let message = match addresses.len() {
            0 => passed,
            n => format!("{passed}; {n} exposed endpoint(s) answered with TLS verified"),
        };
        ProbeOutcome::Passed {
            latency: latency + started.elapsed(),
            message,
        }
    }

    async fn probe<T: KubernetesTopology>(
        &self,
        topology: &T,
        creds: &BTreeMap<String, Sensitive>,
        tls: Option<&TlsState>,
        marker: &config::ConfigMarker,
    ) -> ProbeOutcome {
        let s = self.score;
        let names = NatsNames::new(&s.stack.name);
        let failed = |reason, message| ProbeOutcome::Failed {
            reason,
            message,
            latency: Duration::ZERO,
        };
        let Some(password) = creds.get(SYS_PASSWORD_KEY) else {
            return failed(
                "CredentialsMissing",
                format!(
                    "nats: Secret {} has no {SYS_PASSWORD_KEY}",
                    names.credentials_secret
                ),
            );
        };
        // `host` is set per address the route dials.
        let target = ProbeTarget {
            host: String::new(),
            client_port: config::CLIENT_PORT,
            monitor_port: config::MONITOR_PORT,
            user: config::SYS_USER.into(),
            password: password.clone(),
        };
        let expect = Expected {
            servers: usize::try_from(s.spec.replicas).unwrap_or(1),
            not_after: tls.map(|t| t.validity.not_after),
            config: Some(marker.clone()),
        };
        let routes = match tls {
            None => ProbeRoutes {
                expect: Some(expect),
                ..ProbeRoutes::default()
            },
            Some(t) => {
                let monitor_host = match topology
                    .service_host(&s.stack.namespace, &names.monitor_service)
                    .await
                {
                    Ok(host) => host,
                    Err(e) => return failed("ServiceUnreachable", format!("nats: {e}")),
                };
                let ca_file = match access::ca_file_for(&t.ca_pem) {
                    Ok(path) => path,
                    Err((path, e)) => {
                        return failed(
                            "ProbeSetupFailed",
                            format!("nats: writing the CA to {}: {e}", path.display()),
                        );
                    }
                };
                ProbeRoutes {
                    monitor_host: Some(monitor_host),
                    tls: ClientTls::with_ca_file(ca_file),
                    verify_name: None,
                    expect: Some(expect),
                }
            }
        };
        // The ready server itself has its certificate verified against the
        // Service's name (docs/adr/0090).
        let service_name = format!("{}.{}.svc", names.client_service, s.stack.namespace);
        let route = crate::service_route::Route {
            component: "nats",
            namespace: &s.stack.namespace,
            service: &names.client_service,
            pod_noun: "server",
            not_ready: "NoReadyServer",
            unanswered: &["HealthzUnreachable", "ConnectFailed"],
        };
        let (target, routes, service_name) = (&target, &routes, &service_name);
        crate::service_route::probe(topology, &route, |dial| async move {
            let (target, routes) = match dial {
                Dial::Service(host) => (
                    ProbeTarget {
                        host,
                        ..target.clone()
                    },
                    routes.clone(),
                ),
                Dial::ReadyPod(ip) => (
                    ProbeTarget {
                        host: ip.clone(),
                        ..target.clone()
                    },
                    ProbeRoutes {
                        monitor_host: Some(ip),
                        verify_name: tls.map(|_| service_name.clone()),
                        ..routes.clone()
                    },
                ),
            };
            smoke_probe_with(&target, &routes, s.stack.probe_timeout).await
        })
        .await
    }
}
