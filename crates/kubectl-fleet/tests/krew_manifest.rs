//! deploy/krew/fleet.yaml, rendered the way krew-release-bot renders it,
//! is a valid krew Plugin for this binary and names every command.

use serde_yaml::Value;

const TEMPLATE: &str = include_str!("../../../deploy/krew/fleet.yaml");

/// `{{ .TagName }}` -> the tag; `{{addURIAndSha "<uri>" .TagName }}` ->
/// `uri:` plus a `sha256:` (the bot computes the real digest).
fn render(tag: &str) -> String {
    TEMPLATE
        .lines()
        .map(|line| {
            let line = line.replace("{{ .TagName }}", tag);
            match line.trim_start().strip_prefix("{{addURIAndSha \"") {
                Some(rest) => {
                    let indent = &line[..line.len() - line.trim_start().len()];
                    let uri = rest.split('"').next().unwrap_or_default();
                    format!("{indent}uri: {uri}\n{indent}sha256: {}", "0".repeat(64))
                }
                None => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn renders_to_a_krew_plugin_for_this_binary() {
    let tag = format!("v{}", env!("CARGO_PKG_VERSION"));
    let plugin: Value = serde_yaml::from_str(&render(&tag)).expect("rendered manifest is YAML");
    assert_eq!(
        plugin["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(plugin["kind"], "Plugin");
    // kubectl runs `kubectl-<name>` for `kubectl <name>`.
    assert_eq!(plugin["metadata"]["name"], "fleet");
    let spec = &plugin["spec"];
    assert_eq!(spec["version"].as_str(), Some(tag.as_str()));
    let description = spec["description"].as_str().expect("description");
    for command in [
        "status <stack>",
        "agents",
        "ping <selector>",
        "-o json|yaml",
    ] {
        assert!(description.contains(command), "{command} not described");
    }
    let short = spec["shortDescription"].as_str().expect("shortDescription");
    assert!(short.len() <= 50, "krew-index wants a short description");
    let platforms = spec["platforms"].as_sequence().expect("platforms");
    assert_eq!(platforms.len(), 4);
    for p in platforms {
        assert_eq!(p["bin"], "kubectl-fleet");
        let uri = p["uri"].as_str().expect("uri");
        let os = p["selector"]["matchLabels"]["os"].as_str().expect("os");
        let arch = p["selector"]["matchLabels"]["arch"].as_str().expect("arch");
        assert!(
            uri.ends_with(&format!("/{tag}/kubectl-fleet-{os}-{arch}.tar.gz")),
            "{uri}"
        );
        assert_eq!(p["sha256"].as_str().map(str::len), Some(64));
    }
}
