//! Syntax of the names and strings we pass to the API server or the
//! kubelet, with the rules they apply (k8s.io/apimachinery
//! `pkg/util/validation`, distribution `reference` for images). Each check
//! returns the reason a user reads; the caller adds the field path.

/// `IsDNS1123Subdomain`: Secret, StorageClass and domain names.
pub fn check_dns_subdomain(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 253 {
        return Err("must be 1-253 characters");
    }
    if s.split('.').all(is_dns_label_1123) {
        Ok(())
    } else {
        Err(
            "must be lowercase letters, digits, '-' and '.', each dot-separated part \
             starting and ending with a letter or digit",
        )
    }
}

/// `IsDNS1123Label` without the length check of the caller.
fn is_dns_label_1123(label: &str) -> bool {
    let b = label.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// `IsDNS1035Label` (Service names): starts with a letter.
pub fn check_dns_1035_label(s: &str) -> Result<(), &'static str> {
    if is_dns_label_1123(s) && s.as_bytes()[0].is_ascii_lowercase() {
        Ok(())
    } else {
        Err(
            "must start with a lowercase letter, contain only lowercase letters, digits and '-', \
             and end with a letter or digit",
        )
    }
}

/// The name part of a qualified name or a label value.
fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `IsQualifiedName`: label keys and resource names, `[prefix/]name`.
pub fn check_qualified_name(key: &str) -> Result<(), &'static str> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && check_dns_subdomain(p).is_err()
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

/// Label value: empty or a name part (`IsValidLabelValue`).
pub fn check_label_value(value: &str) -> Result<(), &'static str> {
    if value.is_empty() || is_name_part(value) {
        Ok(())
    } else {
        Err(
            "must be empty or 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
        )
    }
}

/// A string that goes into an env var or a header: no control characters
/// (a newline in a header value is refused by every HTTP stack).
pub fn check_printable(s: &str) -> Result<(), &'static str> {
    if s.chars().any(char::is_control) {
        Err("must not contain control characters (newlines, tabs, ...)")
    } else {
        Ok(())
    }
}

/// A container image reference, `[domain[:port]/]path[:tag][@digest]`
/// (distribution `reference` grammar, which the kubelet applies: a bad
/// one leaves the pod in `InvalidImageName` forever).
pub fn check_image(image: &str) -> Result<(), &'static str> {
    if image.is_empty() {
        return Err("must not be empty");
    }
    if image.trim() != image {
        return Err("must not have leading or trailing whitespace");
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest
        && !is_digest(d)
    {
        return Err("digest must be <algorithm>:<hex>, e.g. sha256:<64 hex digits>");
    }
    // A tag is after the last ':' that follows the last '/' (a ':' before
    // it is a registry port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag
        && !is_tag(t)
    {
        return Err(
            "tag must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
        );
    }
    if name.len() > 255 {
        return Err("repository name must be at most 255 characters");
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // The first component is a registry when it looks like a host.
    if components.len() > 1 {
        let first = components[0];
        if first.contains(['.', ':'])
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase())
        {
            if !is_registry(first) {
                return Err("registry must be a host name or address with an optional :port");
            }
            components.remove(0);
        }
    }
    if components.iter().all(|c| is_path_component(c)) {
        Ok(())
    } else {
        Err(
            "repository path must be lowercase letters and digits separated by '/', '.', '_', '__' or '-'",
        )
    }
}

fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn is_digest(d: &str) -> bool {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['+', '.', '-', '_']).all(|part| {
        let b = part.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    });
    algorithm_ok && hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_hexdigit())
}

/// `host[:port]`; host a domain name, IPv4, or `[IPv6]`.
fn is_registry(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after)) => {
                if v6.is_empty() || !v6.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
                    return false;
                }
                match after.strip_prefix(':') {
                    Some(p) => ("v6", Some(p)),
                    None if after.is_empty() => ("v6", None),
                    None => return false,
                }
            }
            None => return false,
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    let host_ok = host.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    });
    port_ok && host_ok
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_lower_alnum(b[0]) || !is_lower_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_lower_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !is_lower_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// What a container resource name is to the API server
/// (`validateContainerResourceName`, `IsOvercommitAllowed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// `cpu`, `memory`, `ephemeral-storage`: requests may be below limits.
    Standard,
    /// `hugepages-<size>`: no overcommit, needs cpu or memory alongside.
    HugePages,
    /// `<domain>/<name>` outside kubernetes.io: integers, no overcommit.
    Extended,
}

pub fn resource_kind(name: &str) -> Result<ResourceKind, &'static str> {
    const NOT_A_RESOURCE: &str = "must be cpu, memory, ephemeral-storage, hugepages-<size> or an extended resource <domain>/<name>";
    if check_qualified_name(name).is_err() {
        return Err(NOT_A_RESOURCE);
    }
    match name {
        "cpu" | "memory" | "ephemeral-storage" => return Ok(ResourceKind::Standard),
        _ => {}
    }
    if let Some(size) = name.strip_prefix("hugepages-") {
        return match super::quantity::parse(size) {
            Ok(q) if !q.is_zero() && !q.is_negative() => Ok(ResourceKind::HugePages),
            _ => Err("hugepages-<size> needs a page size quantity, e.g. hugepages-2Mi"),
        };
    }
    if !name.contains('/') || name.contains("kubernetes.io/") || name.starts_with("requests.") {
        return Err(NOT_A_RESOURCE);
    }
    // Quota names it `requests.<name>`, which must stay a qualified name.
    if check_qualified_name(&format!("requests.{name}")).is_err() {
        return Err(NOT_A_RESOURCE);
    }
    Ok(ResourceKind::Extended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_follow_the_reference_grammar() {
        for good in [
            "nats",
            "fleetstack/nats-server:2.15.1",
            "ghcr.io/zitadel/zitadel:v4.2.0",
            "localhost:5000/fleet/agent:dev",
            "registry.example.com:443/a/b__c/d-e--f:1.0_rc-1",
            "10.0.0.1:5000/x",
            "[::1]:5000/x:latest",
            "nats@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "docker.io/library/nats:2.10@sha256:0123456789abcdef0123456789abcdef",
            "Registry.Example.com/x",
        ] {
            assert_eq!(check_image(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            " nats",
            "nats ",
            "Nats",
            "nats:",
            "nats:-x",
            "nats:.x",
            "fleet//agent",
            "fleet/agent/",
            "fleet/-agent",
            "fleet/agent...x",
            "nats@sha256:short",
            "nats@:0123456789abcdef0123456789abcdef",
            "reg:port/x",
            "a b/c",
        ] {
            assert!(check_image(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_and_labels() {
        assert!(check_dns_subdomain("fleet-agent.creds").is_ok());
        assert!(check_dns_subdomain("Fleet").is_err());
        assert!(check_dns_subdomain("a..b").is_err());
        assert!(check_dns_subdomain(&"a".repeat(254)).is_err());
        assert!(check_dns_1035_label("demo").is_ok());
        assert!(check_dns_1035_label("1demo").is_err());
        assert!(check_dns_1035_label("de.mo").is_err());
        assert!(check_qualified_name("example.com/site").is_ok());
        assert!(check_qualified_name("bad key").is_err());
        assert!(check_qualified_name("Bad_Prefix/x").is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("-x").is_err());
        assert!(check_label_value(&"a".repeat(64)).is_err());
        assert!(check_printable("openid profile").is_ok());
        assert!(check_printable("a\nb").is_err());
    }

    #[test]
    fn resource_names_follow_the_container_rules() {
        assert_eq!(resource_kind("cpu"), Ok(ResourceKind::Standard));
        assert_eq!(
            resource_kind("ephemeral-storage"),
            Ok(ResourceKind::Standard)
        );
        assert_eq!(resource_kind("hugepages-2Mi"), Ok(ResourceKind::HugePages));
        assert_eq!(resource_kind("nvidia.com/gpu"), Ok(ResourceKind::Extended));
        for bad in [
            "cpus",
            "storage",
            "hugepages-x",
            "kubernetes.io/foo",
            "requests.x/y",
            "a b",
        ] {
            assert!(resource_kind(bad).is_err(), "{bad}");
        }
    }
}
