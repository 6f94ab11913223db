//! `xnat stats`: counters summed over CPUs.
use std::process::ExitCode;

use nat_userspace::{pins, stats};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, iface: Option<&str>) -> anyhow::Result<ExitCode> {
    let (ifname, dir) = pins::resolve_iface(iface)?;
    let counters = stats::read(&dir)?;
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> = counters
            .iter()
            .map(|(c, v)| (c.name().to_string(), (*v).into()))
            .collect();
        let out = serde_json::json!({
            "interface": ifname,
            "ingress": pins::ingress_mode(&dir),
            "counters": map,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "interface {ifname} (ingress: {})",
            pins::ingress_mode(&dir).unwrap_or("?")
        );
        for (c, v) in counters {
            println!("  {:<28} {v}", c.name());
        }
    }
    Ok(ExitCode::SUCCESS)
}
