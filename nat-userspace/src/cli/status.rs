//! `xnat status`: which interfaces are attached here.
use std::process::ExitCode;

use nat_userspace::pins;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut rows = Vec::new();
    for ifname in pins::attached_interfaces()? {
        let dir = pins::iface_dir(&ifname)?;
        rows.push((ifname, pins::ingress_mode(&dir).unwrap_or("?"), dir));
    }
    if args.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(i, m, d)| serde_json::json!({"interface": i, "ingress": m, "pins": d}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if rows.is_empty() {
        println!("xnat is not attached to any interface in this network namespace");
    } else {
        for (i, m, d) in rows {
            println!("{i}: ingress {m}, egress tc, pins {}", d.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
