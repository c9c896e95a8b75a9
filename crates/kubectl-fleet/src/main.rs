//! `kubectl-fleet`: on PATH, kubectl runs it for `kubectl fleet ...`.
//! Exit codes: 0 success, 1 error, 2 bad usage, 3 `ping` ran but some agent
//! failed or timed out.

use kubectl_fleet::{PluginError, cli, output};

fn main() {
    let code = match cli::parse(std::env::args().skip(1)) {
        Err(e) => {
            eprintln!("error: {e}\n\n{}", cli::USAGE);
            e.exit_code()
        }
        Ok(args) => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                1
            }
            Ok(runtime) => {
                let style = output::detect_style();
                let mut stdout = std::io::stdout().lock();
                match runtime.block_on(kubectl_fleet::run(args, style, &mut stdout)) {
                    Ok(code) => code,
                    // A closed pipe (`| head`) is not worth a message.
                    Err(PluginError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
                    Err(e) => {
                        eprintln!("error: {e}");
                        e.exit_code()
                    }
                }
            }
        },
    };
    std::process::exit(code);
}
