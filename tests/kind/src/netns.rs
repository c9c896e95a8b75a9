//! Devices outside the cluster, on one machine: each [`Device`] is a
//! network namespace of its own with a veth pair to the host, an address on
//! a /30 of its own and a default route through the host. A process run
//! with [`Device::command`] reaches the cluster only the way a device on
//! another network would: through addresses the node exposes (a NodePort on
//! the node's address), never through the pod network or the cluster DNS.
//!
//! Everything a `Device` creates is removed when it is dropped, also when
//! the test fails (see `shared/notes/edge-devices.md`).

use std::net::Ipv4Addr;
use std::process::Command;

use crate::{E2eError, Result};

/// The /16 the devices' /30s come from; outside the pod (10.244/16) and
/// Service (10.96/12) ranges.
const DEVICE_NET: [u8; 2] = [10, 199];

/// A network namespace standing in for a device.
pub struct Device {
    /// Namespace name (`fdev-<pid>-<i>`).
    pub name: String,
    /// The device's address.
    pub addr: Ipv4Addr,
    host_if: String,
}

fn run(what: &str, cmd: &mut Command) -> Result<String> {
    let out = cmd.output().map_err(|e| E2eError::Command {
        what: what.into(),
        output: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(E2eError::Command {
            what: what.into(),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(what: &str, args: &[&str]) -> Result<String> {
    run(what, Command::new("ip").args(args))
}

impl Device {
    /// Creates device `index` (0..=63) of this test process.
    pub fn create(index: u8) -> Result<Device> {
        assert!(index < 64, "at most 64 devices per test process");
        let tag = std::process::id() % 100_000;
        let name = format!("fdev-{tag}-{index}");
        // Interface names are at most 15 characters.
        let host_if = format!("fdh{tag}x{index}");
        let dev_if = format!("fdd{tag}x{index}");
        // A /30 per device: .1 the host side, .2 the device.
        let third = u8::try_from((tag % 4) * 64).unwrap_or(0) + index;
        let host_addr = Ipv4Addr::new(DEVICE_NET[0], DEVICE_NET[1], third, 1);
        let addr = Ipv4Addr::new(DEVICE_NET[0], DEVICE_NET[1], third, 2);
        // Leftovers of a killed earlier run with the same pid.
        let _ = ip("cleanup", &["netns", "del", &name]);
        let _ = ip("cleanup", &["link", "del", &host_if]);
        let device = Device {
            name: name.clone(),
            addr,
            host_if: host_if.clone(),
        };
        // From here on, Drop cleans up whatever was made.
        ip("creating the namespace", &["netns", "add", &name])?;
        ip(
            "creating the veth pair",
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &dev_if,
            ],
        )?;
        ip("moving the veth", &["link", "set", &dev_if, "netns", &name])?;
        ip(
            "addressing the host side",
            &["addr", "add", &format!("{host_addr}/30"), "dev", &host_if],
        )?;
        ip("host side up", &["link", "set", &host_if, "up"])?;
        let (cidr, via) = (format!("{addr}/30"), host_addr.to_string());
        for args in [
            ["addr", "add", cidr.as_str(), "dev", dev_if.as_str()].as_slice(),
            &["link", "set", dev_if.as_str(), "up"],
            &["link", "set", "lo", "up"],
            &["route", "add", "default", "via", via.as_str()],
        ] {
            let mut full = vec!["netns", "exec", name.as_str(), "ip"];
            full.extend_from_slice(args);
            ip("configuring the device namespace", &full)?;
        }
        Ok(device)
    }

    /// `program args...` run inside the device's namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it
        // the host end; the explicit delete covers a half-made device.
        let _ = ip("cleanup", &["netns", "del", &self.name]);
        let _ = ip("cleanup", &["link", "del", &self.host_if]);
    }
}

/// The node's address devices dial: the first node's InternalIP.
pub async fn node_address(client: &kube::Client) -> Result<String> {
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let list = nodes
        .list(&Default::default())
        .await
        .map_err(crate::api_err("listing nodes"))?;
    list.items
        .iter()
        .filter_map(|n| n.status.as_ref()?.addresses.as_ref())
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
        .ok_or_else(|| E2eError::Command {
            what: "finding the node's InternalIP".into(),
            output: "no node reports one".into(),
        })
}
