//! The names a server certificate must cover.
//!
//! A client verifies the host it dialed against the certificate's SANs, so
//! the certificate lists every way the server is reached: each DNS form of
//! a Service (`svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`:
//! search paths let clients use any), the pods behind a headless Service
//! (routes dial `<pod>.<headless>.<ns>.svc.cluster.local`), and the
//! addresses advertised to clients outside the cluster.

use std::collections::BTreeSet;
use std::net::IpAddr;

use fleet_crds::{AdvertiseAddress, AdvertiseHost};

/// The cluster's DNS domain. Clusters with another domain still work
/// through the shorter forms, which come first.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// SANs of one server certificate: DNS names and IP addresses, each sorted
/// and unique, so two identities compare equal exactly when a certificate
/// for one serves the other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerIdentity {
    /// The first one becomes the subject's common name.
    pub dns_names: BTreeSet<String>,
    pub ip_addresses: BTreeSet<IpAddr>,
}

impl ServerIdentity {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every DNS form of Service `service` in `namespace`.
    pub fn with_service(mut self, service: &str, namespace: &str) -> Self {
        self.dns_names.extend(service_dns_names(service, namespace));
        self
    }

    /// The pods of headless Service `headless`, as wildcards: one name
    /// covers every replica, so scaling up needs no new certificate.
    pub fn with_headless_pods(mut self, headless: &str, namespace: &str) -> Self {
        self.dns_names
            .extend(headless_pod_dns_names(headless, namespace));
        self
    }

    /// Addresses advertised to clients outside the cluster.
    pub fn with_advertised<'a>(
        mut self,
        addresses: impl IntoIterator<Item = &'a AdvertiseAddress>,
    ) -> Self {
        for a in addresses {
            match &a.host {
                AdvertiseHost::Dns(name) => {
                    self.dns_names.insert(name.clone());
                }
                AdvertiseHost::Ip(ip) => {
                    self.ip_addresses.insert(*ip);
                }
            }
        }
        self
    }

    /// A name or address, e.g. `localhost` / `127.0.0.1` in loopback tests.
    pub fn with_name(mut self, name: &str) -> Self {
        match name.parse::<IpAddr>() {
            Ok(ip) => {
                self.ip_addresses.insert(ip);
            }
            Err(_) => {
                self.dns_names.insert(name.to_ascii_lowercase());
            }
        }
        self
    }

    /// The subject common name: the shortest DNS name (Service names are
    /// shorter than their qualified forms), else the first IP.
    pub fn common_name(&self) -> String {
        self.dns_names
            .iter()
            .filter(|n| !n.starts_with('*'))
            .min_by_key(|n| n.len())
            .cloned()
            .or_else(|| self.ip_addresses.iter().next().map(IpAddr::to_string))
            .unwrap_or_else(|| "fleetstack".into())
    }
}

/// `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`.
pub fn service_dns_names(service: &str, namespace: &str) -> [String; 4] {
    [
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.{CLUSTER_DOMAIN}"),
    ]
}

/// `*.headless.ns.svc` and `*.headless.ns.svc.cluster.local`: the pod DNS
/// names a StatefulSet's pods get through its headless Service.
pub fn headless_pod_dns_names(headless: &str, namespace: &str) -> [String; 2] {
    [
        format!("*.{headless}.{namespace}.svc"),
        format!("*.{headless}.{namespace}.svc.{CLUSTER_DOMAIN}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_pods_and_advertised_addresses_are_all_named() {
        let advertised = [
            fleet_crds::parse_advertise_address("nats.example.com:30422").unwrap(),
            fleet_crds::parse_advertise_address("192.0.2.7").unwrap(),
        ];
        let id = ServerIdentity::new()
            .with_service("demo-nats", "fleet")
            .with_headless_pods("demo-nats-headless", "fleet")
            .with_advertised(&advertised);
        let names: Vec<&str> = id.dns_names.iter().map(String::as_str).collect();
        assert_eq!(
            names,
            vec![
                "*.demo-nats-headless.fleet.svc",
                "*.demo-nats-headless.fleet.svc.cluster.local",
                "demo-nats",
                "demo-nats.fleet",
                "demo-nats.fleet.svc",
                "demo-nats.fleet.svc.cluster.local",
                "nats.example.com",
            ]
        );
        assert_eq!(
            id.ip_addresses.iter().collect::<Vec<_>>(),
            vec![&"192.0.2.7".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(id.common_name(), "demo-nats");
        // Order of construction does not matter.
        let again = ServerIdentity::new()
            .with_advertised(&advertised)
            .with_headless_pods("demo-nats-headless", "fleet")
            .with_service("demo-nats", "fleet");
        assert_eq!(id, again);
    }
}
