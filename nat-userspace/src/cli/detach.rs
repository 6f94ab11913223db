//! `xnat detach IFACE`.
use std::process::ExitCode;

use nat_userspace::loader;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Interface to detach from (default: -i, or the only attached one).
    pub iface: Option<String>,
}

pub fn run(args: Args, global_iface: Option<&str>) -> anyhow::Result<ExitCode> {
    let ifname = match args.iface.as_deref().or(global_iface) {
        Some(i) => i.to_string(),
        None => nat_userspace::tables::pins::resolve_iface(None)?.0,
    };
    loader::detach(&ifname)?;
    println!("xnat: detached from {ifname}");
    Ok(ExitCode::SUCCESS)
}
