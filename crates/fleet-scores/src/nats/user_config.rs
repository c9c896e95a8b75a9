//! The user's additions to nats.conf (docs/adr/0073-nats-config-escape-hatch.md),
//! merged onto the configuration [`super::config::render`] produced, by its
//! one call at the end of `render`:
//!
//! * typed tuning: `server_tags` (`spec.nats.serverTags`), the JetStream
//!   limits `max_memory_store` / `max_file_store`
//!   (`spec.nats.jetstream.maxMemoryStore` / `maxFileStore`) inside our
//!   `jetstream` block, and the FLEET account's `max_streams`
//!   (`spec.nats.jetstream.maxStreams`);
//! * `spec.nats.config`: a plain key is appended at the top level, a dotted
//!   key (`jetstream.max_buffered_msgs`) inside our block of that name.
//!
//! Keys we own never reach here: `fleet_crds::validate::nats_config`
//! refuses them (and values that are more than one value) with the field
//! named, before anything is built. A key inside a block is appended after
//! ours, where nats-server's parser lets the later key win; a test runs the
//! real server on the merged result to hold it to that.
//!
//! The merge relies on the shape of our own rendering: a top-level block
//! opens with `<name> {` on a line of its own and closes with `}` in
//! column 0, the FLEET account's JetStream line is `    jetstream: enabled`.
//! Tests render every mode and fail if a merged key goes missing.

use fleet_crds::NatsSpec;
use fleet_crds::validate::nats_config::{Placement, placement};

use super::config::{FLEET_ACCOUNT, quantity_bytes};

/// `rendered` with the spec's additions merged in. Keys that cannot be
/// placed (refused by validation, so never seen on a validated spec) are
/// left out rather than guessed at.
pub fn merge(rendered: String, spec: &NatsSpec) -> String {
    let mut c = rendered;
    let js = &spec.jetstream;
    if js.enabled {
        let mut lines = Vec::new();
        if let Some(bytes) = js
            .max_memory_store
            .as_ref()
            .and_then(|q| quantity_bytes(&q.0))
        {
            lines.push(format!("max_memory_store: {bytes}"));
        }
        if let Some(bytes) = js
            .max_file_store
            .as_ref()
            .and_then(|q| quantity_bytes(&q.0))
        {
            lines.push(format!("max_file_store: {bytes}"));
        }
        c = append_in_block(c, "jetstream", &lines);
        if let Some(n) = js.max_streams {
            c = c.replace(
                &format!("  {FLEET_ACCOUNT} {{\n    jetstream: enabled\n"),
                &format!("  {FLEET_ACCOUNT} {{\n    jetstream: {{max_streams: {n}}}\n"),
            );
        }
    }
    let mut top = Vec::new();
    if !spec.server_tags.is_empty() {
        let tags: Vec<String> = spec
            .server_tags
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect();
        top.push(format!("server_tags: [{}]", tags.join(", ")));
    }
    let mut in_blocks: Vec<(String, String)> = Vec::new();
    for (key, value) in &spec.config {
        match placement(key) {
            Ok(Placement::TopLevel(k)) => top.push(format!("{k}: {}", value.trim())),
            Ok(Placement::InBlock { block, key }) => in_blocks.push((
                block.to_ascii_lowercase(),
                format!("{key}: {}", value.trim()),
            )),
            Err(_) => {}
        }
    }
    for block in ["jetstream", "cluster"] {
        let lines: Vec<String> = in_blocks
            .iter()
            .filter(|(b, _)| b == block)
            .map(|(_, l)| l.clone())
            .collect();
        c = append_in_block(c, block, &lines);
    }
    if !top.is_empty() {
        c.push_str("# spec.nats.serverTags and spec.nats.config\n");
        for line in top {
            c.push_str(&line);
            c.push('\n');
        }
    }
    c
}

/// Top-level `spec.nats.config` keys nats-server applies on a config
/// reload (its `server/reload.go` diff options), so changing one reloads
/// the running servers instead of rolling them. A test changes each on a
/// real server and reloads it. Keys not listed roll the servers, which is
/// always correct, only slower.
pub const RELOADABLE_KEYS: &[&str] = &[
    "debug",
    "logtime",
    "logtime_utc",
    "max_connections",
    "max_control_line",
    "max_payload",
    "max_traced_msg_len",
    "ping_interval",
    "ping_max",
    "trace",
    "trace_verbose",
    "write_deadline",
];

/// Whether a change of `spec.nats.config[key]` reaches running servers by
/// a reload.
pub fn is_reloadable(key: &str) -> bool {
    RELOADABLE_KEYS.contains(&key.to_ascii_lowercase().as_str())
}

/// `spec` without what a reload applies: its server tags and the
/// reloadable `spec.nats.config` keys (the rest of the config is what only
/// a restart changes; see [`super::config::ConfigMarker`]).
pub fn without_reloadable(spec: &NatsSpec) -> NatsSpec {
    let mut fixed = spec.clone();
    fixed.server_tags.clear();
    fixed.config.retain(|key, _| !is_reloadable(key));
    fixed
}

/// Inserts `lines` (indented) before the closing `}` of the top-level
/// block `name`; `config` unchanged if it has no such block.
fn append_in_block(config: String, name: &str, lines: &[String]) -> String {
    if lines.is_empty() {
        return config;
    }
    let open = format!("{name} {{\n");
    let start = if config.starts_with(&open) {
        Some(0)
    } else {
        config.find(&format!("\n{open}")).map(|i| i + 1)
    };
    let Some(start) = start else { return config };
    let Some(close) = config[start..].find("\n}\n").map(|i| start + i + 1) else {
        return config;
    };
    let mut out = String::with_capacity(config.len() + 64);
    out.push_str(&config[..close]);
    for line in lines {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&config[close..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn tuned() -> NatsSpec {
        let mut spec = NatsSpec {
            replicas: 3,
            server_tags: vec!["az:a".into(), "edge".into()],
            config: BTreeMap::from([
                ("max_payload".to_string(), "2MB".to_string()),
                (
                    "jetstream.max_buffered_msgs".to_string(),
                    "1000".to_string(),
                ),
                ("cluster.pool_size".to_string(), "5".to_string()),
            ]),
            ..NatsSpec::default()
        };
        spec.jetstream.enabled = true;
        spec.jetstream.max_memory_store = Some(Quantity("256Mi".into()));
        spec.jetstream.max_file_store = Some(Quantity("512Mi".into()));
        spec.jetstream.max_streams = Some(10);
        spec
    }

    #[test]
    fn keys_land_inside_the_blocks_they_name() {
        let base = "a: 1\njetstream {\n  store_dir: /data\n}\ncluster {\n  name: x\n  routes: [\n    $R\n  ]\n}\naccounts {\n  FLEET {\n    jetstream: enabled\n  }\n}\n";
        let merged = merge(base.to_string(), &tuned());
        assert_eq!(
            merged,
            "a: 1\njetstream {\n  store_dir: /data\n  max_memory_store: 268435456\n  max_file_store: 536870912\n  max_buffered_msgs: 1000\n}\ncluster {\n  name: x\n  routes: [\n    $R\n  ]\n  pool_size: 5\n}\naccounts {\n  FLEET {\n    jetstream: {max_streams: 10}\n  }\n}\n# spec.nats.serverTags and spec.nats.config\nserver_tags: [\"az:a\", \"edge\"]\nmax_payload: 2MB\n"
        );
    }

    #[test]
    fn nothing_to_merge_leaves_the_config_as_rendered() {
        let base = "a: 1\n".to_string();
        assert_eq!(merge(base.clone(), &NatsSpec::default()), base);
    }
}
