//! Checks of `spec.nats.tls` and `spec.nats.expose` the OpenAPI schema of a
//! Kubernetes 1.20 API server cannot express (see [`crate::validate`] for
//! the conventions: every error names the field path).
//!
//! [`parse_advertise_address`] is also what the certificate code uses to
//! turn an advertised address into a SAN, so "valid here" and "usable in a
//! certificate" are one definition.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use crate::stack::*;
use crate::validate::SpecError;

/// Longest DNS name (RFC 1035, without the trailing dot).
const MAX_DNS_NAME: usize = 253;
/// Longest DNS label.
const MAX_DNS_LABEL: usize = 63;

/// The host part of an advertised address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdvertiseHost {
    /// A DNS name (lower-cased), e.g. `nats.example.com`.
    Dns(String),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
}

impl fmt::Display for AdvertiseHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdvertiseHost::Dns(name) => f.write_str(name),
            AdvertiseHost::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// One address clients outside the cluster use: a host or IP and, when
/// given, a port (`host`, `host:port`, `1.2.3.4:30422`, `[fd00::1]:30422`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AdvertiseAddress {
    pub host: AdvertiseHost,
    pub port: Option<u16>,
}

impl AdvertiseAddress {
    /// `host:port` as nats-server's `client_advertise` and a NATS URL want
    /// it (IPv6 in brackets).
    pub fn host_port(&self, default_port: u16) -> String {
        let port = self.port.unwrap_or(default_port);
        match &self.host {
            AdvertiseHost::Ip(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
            host => format!("{host}:{port}"),
        }
    }
}

/// Why an advertised address is not a host or IP (with an optional port).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("is empty")]
    Empty,
    #[error("has a scheme or path; give only host or host:port (e.g. nats.example.com:30422)")]
    NotHostPort,
    #[error("port {0:?} is not a number from 1 to 65535")]
    BadPort(String),
    #[error("IPv6 address {0:?} is not valid (write it in brackets with a port: [fd00::1]:4222)")]
    BadIpv6(String),
    #[error("{0:?} is not a DNS name: {1}")]
    BadDnsName(String, &'static str),
}

/// Parses an advertised address: a DNS name, an IPv4 address or an IPv6
/// address (bare, or in brackets), optionally followed by `:port`.
/// Wildcards are refused: a client dials one concrete host.
pub fn parse_advertise_address(text: &str) -> Result<AdvertiseAddress, AddressError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AddressError::Empty);
    }
    if text.contains("://") || text.contains('/') || text.contains('@') {
        return Err(AddressError::NotHostPort);
    }
    // A bare IPv6 address has several colons and no brackets.
    if let Ok(ip) = text.parse::<Ipv6Addr>() {
        return Ok(AdvertiseAddress {
            host: AdvertiseHost::Ip(IpAddr::V6(ip)),
            port: None,
        });
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or_else(|| AddressError::BadIpv6(text.into()))?;
        let ip: Ipv6Addr = inside
            .parse()
            .map_err(|_| AddressError::BadIpv6(text.into()))?;
        let port = match after {
            "" => None,
            p => Some(parse_port(
                p.strip_prefix(':').ok_or(AddressError::NotHostPort)?,
            )?),
        };
        return Ok(AdvertiseAddress {
            host: AdvertiseHost::Ip(IpAddr::V6(ip)),
            port,
        });
    }
    let (host, port) = match text.split_once(':') {
        Some((h, p)) => (h, Some(parse_port(p)?)),
        None => (text, None),
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(AdvertiseAddress {
            host: AdvertiseHost::Ip(ip),
            port,
        });
    }
    check_dns_name(host)?;
    Ok(AdvertiseAddress {
        host: AdvertiseHost::Dns(host.to_ascii_lowercase()),
        port,
    })
}

fn parse_port(p: &str) -> Result<u16, AddressError> {
    match p.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(AddressError::BadPort(p.into())),
    }
}

/// RFC 1123 host name: labels of letters, digits and inner hyphens. A name
/// made only of digits and dots is a mistyped IPv4 address, not a name.
fn check_dns_name(name: &str) -> Result<(), AddressError> {
    let bad = |why| Err(AddressError::BadDnsName(name.into(), why));
    if name.len() > MAX_DNS_NAME {
        return bad("longer than 253 characters");
    }
    if name.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return bad("looks like an IPv4 address but is not one");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return bad("has an empty label");
        }
        if label.len() > MAX_DNS_LABEL {
            return bad("has a label longer than 63 characters");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return bad("only letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label starts or ends with '-'");
        }
    }
    Ok(())
}

fn err(path: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        path: path.into(),
        message: message.into(),
    }
}

/// Checks `spec.nats.tls` and `spec.nats.expose`; every problem found, in
/// field order. The reconciler's `validate_spec` calls it for `spec.nats`.
pub fn check_nats_tls_and_expose(nats: &NatsSpec, errors: &mut Vec<SpecError>) {
    let tls = &nats.tls;
    match tls.mode {
        TlsMode::Enabled => {}
        TlsMode::Disabled => {
            if tls.ca_secret.is_some() {
                errors.push(err(
                    "spec.nats.tls.caSecret",
                    "is set but spec.nats.tls.mode is Disabled; remove one of them",
                ));
            }
        }
    }
    let Some(expose) = &nats.expose else {
        return;
    };
    match expose.type_ {
        ExposeType::NodePort => {}
        ExposeType::LoadBalancer => {
            if expose.node_port.is_some() {
                errors.push(err(
                    "spec.nats.expose.nodePort",
                    "is only used with type NodePort",
                ));
            }
        }
    }
    if let Some(port) = expose.node_port
        && !(NODE_PORT_MIN..=NODE_PORT_MAX).contains(&port)
    {
        errors.push(err(
            "spec.nats.expose.nodePort",
            format!("{port} is outside the default NodePort range {NODE_PORT_MIN}-{NODE_PORT_MAX}"),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, text) in expose.advertise.iter().enumerate() {
        let path = format!("spec.nats.expose.advertise[{i}]");
        match parse_advertise_address(text) {
            Ok(addr) => {
                if !seen.insert(addr.clone()) {
                    errors.push(err(path, format!("{text:?} is listed twice")));
                }
            }
            Err(e) => errors.push(err(path, format!("{text:?} {e}"))),
        }
    }
    if let Some(ws) = &expose.websocket
        && let Some(port) = ws.node_port
    {
        if !(NODE_PORT_MIN..=NODE_PORT_MAX).contains(&port) {
            errors.push(err(
                "spec.nats.expose.websocket.nodePort",
                format!(
                    "{port} is outside the default NodePort range {NODE_PORT_MIN}-{NODE_PORT_MAX}"
                ),
            ));
        }
        if expose.node_port == Some(port) {
            errors.push(err(
                "spec.nats.expose.websocket.nodePort",
                "must differ from spec.nats.expose.nodePort",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> AdvertiseAddress {
        parse_advertise_address(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn hosts_and_ips_with_or_without_ports_parse() {
        assert_eq!(
            ok("NATS.example.com"),
            AdvertiseAddress {
                host: AdvertiseHost::Dns("nats.example.com".into()),
                port: None
            }
        );
        assert_eq!(ok("nats.example.com:30422").port, Some(30422));
        assert_eq!(
            ok("192.0.2.7:30422").host,
            AdvertiseHost::Ip("192.0.2.7".parse().unwrap())
        );
        assert_eq!(ok("fd00::1").host_port(4222), "[fd00::1]:4222");
        assert_eq!(ok("[fd00::1]:30422").host_port(4222), "[fd00::1]:30422");
        assert_eq!(ok("node-1").host_port(4222), "node-1:4222");
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for bad in [
            "",
            "nats://host:4222",
            "host/path",
            "user@host",
            "host:0",
            "host:70000",
            "host:x",
            "[fd00::1",
            "[zz::1]:4222",
            "-host",
            "ho_st",
            "*.example.com",
            "a..b",
            "300.1.1.1",
            "1.2.3",
        ] {
            assert!(parse_advertise_address(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            parse_advertise_address("host:70000"),
            Err(AddressError::BadPort("70000".into()))
        );
    }

    fn nats_with(expose: ExposeSpec) -> NatsSpec {
        NatsSpec {
            expose: Some(expose),
            ..NatsSpec::default()
        }
    }

    #[test]
    fn expose_errors_name_the_field() {
        let mut errors = Vec::new();
        check_nats_tls_and_expose(
            &nats_with(ExposeSpec {
                type_: ExposeType::LoadBalancer,
                node_port: Some(80),
                advertise: vec![
                    "good.example.com".into(),
                    "bad host".into(),
                    "good.example.com".into(),
                ],
                websocket: Some(WebSocketExposeSpec {
                    node_port: Some(80),
                }),
                probe: true,
            }),
            &mut errors,
        );
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "spec.nats.expose.nodePort",
                "spec.nats.expose.nodePort",
                "spec.nats.expose.advertise[1]",
                "spec.nats.expose.advertise[2]",
                "spec.nats.expose.websocket.nodePort",
                "spec.nats.expose.websocket.nodePort",
            ],
            "{errors:?}"
        );
        assert!(errors[2].message.contains("\"bad host\""), "{}", errors[2]);
    }

    #[test]
    fn a_valid_expose_and_the_default_tls_pass() {
        let mut errors = Vec::new();
        check_nats_tls_and_expose(
            &nats_with(ExposeSpec {
                type_: ExposeType::NodePort,
                node_port: Some(30422),
                advertise: vec!["192.0.2.7:30422".into(), "nats.example.com".into()],
                websocket: Some(WebSocketExposeSpec {
                    node_port: Some(30443),
                }),
                probe: true,
            }),
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        check_nats_tls_and_expose(&NatsSpec::default(), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn a_ca_secret_with_tls_disabled_is_a_contradiction() {
        let mut errors = Vec::new();
        let spec = NatsSpec {
            tls: NatsTlsSpec {
                mode: TlsMode::Disabled,
                ca_secret: Some(SecretRef {
                    name: "corp-ca".into(),
                }),
            },
            ..NatsSpec::default()
        };
        check_nats_tls_and_expose(&spec, &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "spec.nats.tls.caSecret");
    }
}
