use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What can go wrong while starting a test nats-server. Each variant says
/// what to do about it, because the person reading it is running tests.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error(
        "no nats-server binary: set NATS_SERVER_BIN or run scripts/ensure-nats-server.sh ({0})"
    )]
    NoBinary(String),
    #[error("could not prepare the nats-server working directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("nats-server rejected its configuration:\n{config}\n--- server output ---\n{output}")]
    BadConfig { config: String, output: String },
    #[error(
        "nats-server did not accept connections on 127.0.0.1:{port} within {waited:?}; its log:\n{log}"
    )]
    NotListening {
        port: u16,
        waited: Duration,
        log: String,
    },
}

/// Finds the nats-server binary: `$NATS_SERVER_BIN`, else the project's
/// install script (which caches the binary after the first call).
pub fn nats_server_binary() -> Result<PathBuf, TestkitError> {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ensure-nats-server.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| TestkitError::NoBinary(format!("running {}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(TestkitError::NoBinary(format!(
            "{} exited with {}",
            script.display(),
            out.status
        )));
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // Cache for the rest of this test process.
    // SAFETY-free: tests set this before spawning threads is not guaranteed,
    // so we only return it and let callers reuse the path.
    Ok(PathBuf::from(path))
}

/// A real nats-server on loopback, killed on drop.
///
/// The caller provides the body of the configuration (accounts,
/// authorization, jetstream...); the harness adds `listen`, `http` (the
/// monitoring port) and the `jetstream.store_dir`-friendly working directory.
pub struct NatsServer {
    binary: PathBuf,
    child: Option<Child>,
    dir: tempfile::TempDir,
    config_body: String,
    port: u16,
    monitor_port: u16,
    /// Set by `spawn` when the process exited before it listened (the
    /// signature of a port taken by someone else).
    exited_early: bool,
}

impl NatsServer {
    /// Starts a server with no authentication.
    pub fn start_plain() -> Result<Self, TestkitError> {
        Self::start("")
    }

    /// Starts a server with the given configuration body and waits until it
    /// accepts TCP connections (10 s deadline).
    pub fn start(config_body: &str) -> Result<Self, TestkitError> {
        let binary = nats_server_binary()?;
        let dir = tempfile::Builder::new().prefix("fleet-nats-").tempdir()?;
        let mut server = NatsServer {
            binary,
            child: None,
            dir,
            config_body: config_body.to_string(),
            port: free_port()?,
            monitor_port: free_port()?,
            exited_early: false,
        };
        // The ports were free when probed, but a parallel test can take one
        // before the server binds it: a server that exits at once is given
        // fresh ports (three attempts) rather than failing the test.
        let mut attempts = 0;
        loop {
            match server.spawn() {
                Err(TestkitError::NotListening { .. }) if attempts < 2 && server.exited_early => {
                    attempts += 1;
                    server.port = free_port()?;
                    server.monitor_port = free_port()?;
                }
                other => return other.map(|()| server),
            }
        }
    }

    /// `nats://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<monitor port>` (varz, connz, healthz).
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    /// Path of the server's log file (its stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// The server's log so far; useful in assertion messages, since an
    /// auth-callout refusal gives its reason only in the server log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills the server (SIGKILL: clients see an abrupt disconnect).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again on the same ports and config.
    pub fn restart(&mut self) -> Result<(), TestkitError> {
        self.stop();
        self.spawn()
    }

    /// Replaces the configuration body in the server's file without
    /// telling the server (as the kubelet swaps a mounted ConfigMap); a
    /// config reload or a restart picks it up.
    pub fn rewrite_config(&mut self, config_body: &str) -> Result<(), TestkitError> {
        self.config_body = config_body.to_string();
        std::fs::write(self.dir.path().join("nats.conf"), self.config_text())?;
        Ok(())
    }

    /// Pid of the running server, if any (to send it signals in tests).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn config_text(&self) -> String {
        format!(
            "listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{mon}\nserver_name: test-{port}\n{body}\n",
            port = self.port,
            mon = self.monitor_port,
            body = self.config_body
        )
    }

    fn spawn(&mut self) -> Result<(), TestkitError> {
        let config = self.config_text();
        let conf_path = self.dir.path().join("nats.conf");
        std::fs::write(&conf_path, &config)?;

        // `-t` validates the file without starting: a config error becomes a
        // readable test failure instead of a connect timeout.
        let check = Command::new(&self.binary)
            .arg("-t")
            .arg("-c")
            .arg(&conf_path)
            .output()?;
        if !check.status.success() {
            return Err(TestkitError::BadConfig {
                config,
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&check.stdout),
                    String::from_utf8_lossy(&check.stderr)
                ),
            });
        }

        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut log2 = log.try_clone()?;
        let _ = writeln!(log2, "--- starting nats-server ---");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&conf_path)
            .current_dir(self.dir.path())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()?;
        self.child = Some(child);

        let deadline = Duration::from_secs(10);
        let start = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        self.exited_early = false;
        while start.elapsed() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && matches!(child.try_wait(), Ok(Some(_)))
            {
                self.exited_early = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(TestkitError::NotListening {
            port: self.port,
            waited: deadline,
            log: self.log(),
        })
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16, TestkitError> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_restarts_and_rejects_bad_config() {
        let mut server = NatsServer::start_plain().expect("plain server starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], server.port()));
        assert!(TcpStream::connect(addr).is_ok());
        server.restart().expect("restart on the same port");
        assert!(TcpStream::connect(addr).is_ok());
        server.stop();
        assert!(
            TcpStream::connect(addr).is_err(),
            "stopped server still accepts"
        );

        let err = NatsServer::start("accounts { this is not valid")
            .err()
            .expect("invalid config is refused");
        assert!(matches!(err, TestkitError::BadConfig { .. }), "{err}");
    }
}
