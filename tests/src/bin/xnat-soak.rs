//! `xnat-soak`: churns flows through xnat in network namespaces for a
//! given time and checks that bindings drain to zero and the agent's memory
//! comes back (see `xnat_tests::soak`). Run it through `cargo xtask soak
//! --minutes M`, which builds it and xnat and points it at the binary.
//!
//! Usage: xnat-soak --minutes M [--ingress tc|xdp]
//! Prints the report as JSON on stdout; exit 1 if the soak found problems.

use std::time::Duration;

use clap::Parser;
use xnat_tests::soak::{Options, run};
use xnat_tests::topology::Ingress;

/// Churns flows through xnat in network namespaces, then checks that
/// bindings drain to zero and the agent's memory comes back.
///
/// Prints the report as JSON on stdout, progress on stderr; exit 1 if the
/// soak found problems. Run it through `cargo xtask soak --minutes M`,
/// which builds xnat beside it (else set XNAT_BIN).
#[derive(Parser)]
#[command(name = "xnat-soak", args_override_self = true)]
struct Args {
    /// How long to churn flows, in minutes (more than 0, at most a day).
    #[arg(long, value_name = "M", value_parser = minutes)]
    minutes: f64,
    /// The external interface's ingress mode.
    #[arg(long, value_enum, default_value = "tc")]
    ingress: Ingress,
}

fn minutes(v: &str) -> Result<f64, String> {
    let m: f64 = v.parse().map_err(|e| format!("{e}"))?;
    if m.is_nan() || m <= 0.0 || m > 24.0 * 60.0 {
        return Err("expected more than 0, at most a day".into());
    }
    Ok(m)
}

fn main() {
    let args = Args::parse();
    let opts = Options {
        duration: Duration::from_secs_f64(args.minutes * 60.0),
        mode: args.ingress,
        tag: "soak".into(),
    };
    if std::env::var_os("XNAT_BIN").is_none() {
        // Built side by side with xnat (target/<profile>/).
        let exe = std::env::current_exe().expect("current_exe");
        let xnat = exe.with_file_name("xnat");
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("XNAT_BIN", xnat) };
    }
    eprintln!(
        "xnat-soak: churning flows for {:.1} min ({} UDP + {} TCP flows/s)",
        opts.duration.as_secs_f64() / 60.0,
        xnat_tests::soak::UDP_PER_S,
        xnat_tests::soak::TCP_PER_S
    );
    let report = run(&opts);
    println!(
        "{}",
        serde_json::to_string_pretty(&report.to_json()).unwrap()
    );
    if report.problems.is_empty() {
        eprintln!("xnat-soak: passed");
    } else {
        for p in &report.problems {
            eprintln!("xnat-soak: {p}");
        }
        std::process::exit(1);
    }
}
