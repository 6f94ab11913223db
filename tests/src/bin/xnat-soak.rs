//! `xnat-soak`: churns flows through xnat in network namespaces for a
//! given time and checks that bindings drain to zero and the agent's memory
//! comes back (see `xnat_tests::soak`). Run it through `cargo xtask soak
//! --minutes M`, which builds it and xnat and points it at the binary.
//!
//! Usage: xnat-soak --minutes M [--ingress tc|xdp]
//! Prints the report as JSON on stdout; exit 1 if the soak found problems.

use std::time::Duration;

use xnat_tests::soak::{Options, run};
use xnat_tests::topology::Ingress;

fn parse_args() -> Result<Options, String> {
    let mut minutes = None;
    let mut mode = Ingress::Tc;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--minutes" => {
                let v = args.next().ok_or("--minutes needs a value")?;
                let m: f64 = v.parse().map_err(|e| format!("--minutes {v}: {e}"))?;
                if m.is_nan() || m <= 0.0 || m > 24.0 * 60.0 {
                    return Err(format!(
                        "--minutes {v}: expected more than 0, at most a day"
                    ));
                }
                minutes = Some(m);
            }
            "--ingress" => {
                mode = match args.next().as_deref() {
                    Some("tc") => Ingress::Tc,
                    Some("xdp") => Ingress::Xdp,
                    other => return Err(format!("--ingress {other:?}: expected tc or xdp")),
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let minutes = minutes.ok_or("--minutes M is required")?;
    Ok(Options {
        duration: Duration::from_secs_f64(minutes * 60.0),
        mode,
        tag: "soak".into(),
    })
}

fn main() {
    let opts = parse_args().unwrap_or_else(|e| {
        eprintln!("xnat-soak: {e}\nusage: xnat-soak --minutes M [--ingress tc|xdp]");
        std::process::exit(2);
    });
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
