//! `xnat attach IFACE ...`: load, pin, attach, then run the agent.
use std::process::ExitCode;

use clap::ValueEnum;
use nat_userspace::loader::{self, AttachRequest, IngressMode};

use super::addr::{Mapping, parse_mapping};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// External interface (the one facing the public network).
    pub iface: String,

    /// Static 1:1 mapping PRIVATE=PUBLIC; repeat for more.
    #[arg(long = "map", value_name = "PRIV=PUB", value_parser = parse_mapping)]
    pub maps: Vec<Mapping>,

    /// Hook for inbound translation: XDP, TC, or auto (XDP on physical
    /// NICs, TC on virtual devices such as veth).
    #[arg(long, value_enum, default_value_t = Ingress::Auto)]
    pub ingress: Ingress,

    /// On SIGINT/SIGTERM leave the programs attached (their pins keep them
    /// running) instead of detaching.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Ingress {
    Auto,
    Xdp,
    Tc,
}

impl From<Ingress> for IngressMode {
    fn from(i: Ingress) -> Self {
        match i {
            Ingress::Auto => IngressMode::Auto,
            Ingress::Xdp => IngressMode::Xdp,
            Ingress::Tc => IngressMode::Tc,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let static_maps: Vec<_> = args.maps.iter().map(|m| (m.private, m.public)).collect();
    let attachment = loader::attach(&AttachRequest {
        ifname: &args.iface,
        ingress: args.ingress.into(),
        static_maps: &static_maps,
    })?;
    println!(
        "xnat: attached to {} (ingress: {}, egress: tc), {} static mapping(s); state in {}",
        attachment.ifname,
        attachment.ingress,
        static_maps.len(),
        attachment.dir.display()
    );
    crate::agent::run(attachment, args.keep)?;
    Ok(ExitCode::SUCCESS)
}
