//! `xnat`: attach the NAT to an interface and drive it from the shell.
mod cli;
mod logging;

use std::process::ExitCode;

fn main() -> ExitCode {
    logging::init();
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line, whole context chain: what failed and why.
            eprintln!("xnat: {err:#}");
            if err.is::<nat_userspace::tables::pins::NotAttached>() {
                ExitCode::from(3)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
