//! `fleet-device-client`: what a device does first, as a process the TLS
//! end-to-end test runs inside a network namespace ([`fleet_e2e::netns`]):
//! connect to the stack's exposed NATS endpoint and do a request/reply
//! through the server.
//!
//!   fleet-device-client URL CA_FILE USER PASSWORD_FILE
//!
//!   fleet-device-client --plaintext HOST:PORT MARKER
//!
//! `CA_FILE` `-` means no CA. `--plaintext` speaks the NATS protocol
//! without TLS, sending `MARKER` as the password (a value that is meant to
//! be seen in clear: the packet capture's positive control); exit 0 when
//! the server refused the connection, 1 when it accepted it. Exit 0 and
//! `round trip ok` on stdout when the request was answered; exit 1 with
//! the reason on stderr when the connection or the round trip failed;
//! 2 on a usage error. The password never appears in the output.

use std::process::ExitCode;
use std::time::Duration;

use fleet_proto::client::ClientTls;
use futures::StreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, addr, marker] = args.as_slice()
        && flag == "--plaintext"
    {
        return plaintext(addr, marker);
    }
    let [url, ca, user, password_file] = args.as_slice() else {
        eprintln!("usage: fleet-device-client URL CA_FILE|- USER PASSWORD_FILE");
        return ExitCode::from(2);
    };
    let password = match std::fs::read_to_string(password_file) {
        Ok(p) => p.trim().to_string(),
        Err(e) => {
            eprintln!("fleet-device-client: reading {password_file}: {e}");
            return ExitCode::from(2);
        }
    };
    let tls = match ca.as_str() {
        "-" => ClientTls::default(),
        path => ClientTls::with_ca_file(path),
    };
    let options = tls
        .apply(async_nats::ConnectOptions::with_user_and_password(
            user.clone(),
            password,
        ))
        .name("fleet-device-client")
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(Some(0));
    let client = match options.connect(url).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleet-device-client: connect to {url} failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let subject = format!("_DEVICE.check.{:016x}", rand::random::<u64>());
    let mut service = match client.subscribe(subject.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fleet-device-client: subscribe failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let responder = client.clone();
    tokio::spawn(async move {
        if let Some(msg) = service.next().await
            && let Some(reply) = msg.reply
        {
            let _ = responder.publish(reply, "pong".into()).await;
        }
    });
    let _ = client.flush().await;
    match tokio::time::timeout(
        Duration::from_secs(5),
        client.request(subject, "ping".into()),
    )
    .await
    {
        Ok(Ok(answer)) if answer.payload.as_ref() == b"pong" => {
            println!("round trip ok");
            ExitCode::SUCCESS
        }
        Ok(Ok(_)) => {
            eprintln!("fleet-device-client: unexpected answer");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("fleet-device-client: request failed: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("fleet-device-client: no answer within 5 s");
            ExitCode::FAILURE
        }
    }
}

/// A plaintext CONNECT: refused (exit 0) or accepted (exit 1).
fn plaintext(addr: &str, marker: &str) -> ExitCode {
    use std::io::{Read, Write};
    let mut stream = match std::net::TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fleet-device-client: connect to {addr} failed: {e}");
            return ExitCode::from(2);
        }
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap_or(0);
    let info = String::from_utf8_lossy(&buf[..n]).into_owned();
    let connect = format!(
        "CONNECT {{\"user\":\"fleet\",\"pass\":\"{marker}\",\"tls_required\":false,\"verbose\":false}}\r\nPING\r\n"
    );
    let _ = stream.write_all(connect.as_bytes());
    let mut answer = String::new();
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
        if answer.contains("PONG") || answer.contains("-ERR") {
            break;
        }
    }
    let first_line = info.lines().next().unwrap_or_default();
    let said_tls = first_line.contains("\"tls_required\":true");
    if answer.contains("PONG") {
        eprintln!("fleet-device-client: the server accepted a plaintext connection");
        ExitCode::FAILURE
    } else {
        println!(
            "plaintext refused (server announced tls_required={said_tls}): {}",
            answer.trim()
        );
        ExitCode::SUCCESS
    }
}
