//! `fleet-netcheck`: the smallest tool that lets end-to-end tests check a
//! cluster's pod networking with a project-built image (no shell, no curl in
//! our images). Standard library only, so the image stays a few hundred KB.
//!
//!   fleet-netcheck echo WORDS...         print WORDS and exit 0
//!   fleet-netcheck serve PORT            answer every HTTP request with the pod's hostname
//!   fleet-netcheck get URL [TIMEOUT_S]   GET an http:// URL (retrying until TIMEOUT_S), print the body
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("echo") => {
            println!("{}", args[1..].join(" "));
            ExitCode::SUCCESS
        }
        Some("serve") => match args.get(1).and_then(|p| p.parse::<u16>().ok()) {
            Some(port) => serve(port),
            None => usage("serve needs a port number"),
        },
        Some("get") => {
            let Some(url) = args.get(1) else {
                return usage("get needs a URL");
            };
            let timeout = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(30);
            get(url, Duration::from_secs(timeout))
        }
        _ => usage("unknown command"),
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!(
        "fleet-netcheck: {why}\nusage: fleet-netcheck echo WORDS... | serve PORT | get URL [TIMEOUT_S]"
    );
    ExitCode::from(2)
}

fn serve(port: u16) -> ExitCode {
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fleet-netcheck: cannot listen on port {port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let name = std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into());
    eprintln!("fleet-netcheck: serving on port {port} as {name}");
    for stream in listener.incoming().flatten() {
        let mut stream = stream;
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 2048];
        let _ = stream.read(&mut buf);
        let body = format!("hello from {name}\n");
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    ExitCode::SUCCESS
}

fn get(url: &str, timeout: Duration) -> ExitCode {
    let Some(rest) = url.strip_prefix("http://") else {
        return usage("only http:// URLs are supported");
    };
    let (hostport, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let host = hostport
        .rsplit_once(':')
        .map_or(hostport.as_str(), |(h, _)| h)
        .to_string();
    let start = Instant::now();
    let mut last_err = String::new();
    while start.elapsed() < timeout {
        match fetch(&hostport, &host, &path) {
            Ok(body) => {
                print!("{body}");
                return ExitCode::SUCCESS;
            }
            Err(e) => last_err = e,
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("fleet-netcheck: GET {url} failed for {timeout:?}: {last_err}");
    ExitCode::FAILURE
}

fn fetch(hostport: &str, host: &str, path: &str) -> Result<String, String> {
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("resolving {hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("{hostport} resolved to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .map_err(|e| format!("writing request: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("reading response: {e}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "unexpected status: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(body.to_string())
}
