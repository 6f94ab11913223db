//! `xnat`: attach the NAT to an interface and drive it from the shell.
mod agent;
mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line, whole context chain: what failed and why.
            eprintln!("xnat: {err:#}");
            ExitCode::from(1)
        }
    }
}
