//! A packet capture on the node's interfaces (tcpdump, installed by
//! scripts/ensure-tools.sh): the check that no password or token crosses
//! the wire in clear is a search of what really crossed it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{E2eError, Result};

/// A running capture; [`Capture::finish`] stops it and returns the bytes.
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    /// Captures every TCP packet on `ports`, on all interfaces (pod veths,
    /// the CNI bridge, the node's own and the devices' veths).
    pub fn start(ports: &[u16]) -> Result<Capture> {
        let dir = tempfile::tempdir().map_err(|e| E2eError::Command {
            what: "temporary directory for the capture".into(),
            output: e.to_string(),
        })?;
        let file = dir.path().join("capture.pcap");
        let filter = ports
            .iter()
            .map(|p| format!("tcp port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let child = Command::new("tcpdump")
            .args(["-i", "any", "-U", "-s", "0", "-w"])
            .arg(&file)
            .arg(&filter)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| E2eError::Command {
                what: "starting tcpdump (scripts/ensure-tools.sh installs it)".into(),
                output: e.to_string(),
            })?;
        // tcpdump needs a moment to open the interfaces.
        std::thread::sleep(Duration::from_secs(1));
        Ok(Capture {
            child: Some(child),
            file,
            _dir: dir,
        })
    }

    /// Stops the capture (SIGINT flushes the file) and returns it.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        // Packets still in the kernel's capture buffer are dropped on
        // SIGINT: give tcpdump time to read the last ones.
        std::thread::sleep(Duration::from_secs(2));
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
        std::fs::read(&self.file).map_err(|e| E2eError::Command {
            what: "reading the capture".into(),
            output: e.to_string(),
        })
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
