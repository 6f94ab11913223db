//! `xnat attach IFACE ...`: load, pin, attach, then run the agent.
use std::process::ExitCode;

use clap::ValueEnum;
use nat_userspace::{
    loader::{self, AttachRequest, IngressMode, Limits},
    napt::{Filtering, NaptSettings, Prefix, Timeouts, rfc1918},
};

use super::addr::{Mapping, parse_mapping, parse_pool, parse_port_range};

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

    /// Inside interface (repeatable): hairpinned traffic between inside
    /// hosts through their public endpoints is translated there.
    #[arg(long, value_name = "IFACE", value_delimiter = ',')]
    pub inside: Vec<String>,

    #[command(flatten)]
    pub napt: NaptArgs,
}

/// Dynamic NAPT (masquerade). Enabled by --masquerade, --pool or
/// --internal.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Dynamic NAPT")]
pub struct NaptArgs {
    /// Enable NAPT with the defaults: the RFC 1918 ranges behind the
    /// interface's primary IPv4 address.
    #[arg(long)]
    pub masquerade: bool,

    /// Inside prefixes whose sources are translated [default: 10.0.0.0/8,
    /// 172.16.0.0/12, 192.168.0.0/16].
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub internal: Vec<Prefix>,

    /// Public addresses: ADDR or FIRST-LAST, repeatable or comma-separated
    /// [default: the interface's primary IPv4 address].
    #[arg(long, value_name = "ADDR[-ADDR]", value_delimiter = ',', value_parser = parse_pool)]
    pub pool: Vec<Vec<std::net::Ipv4Addr>>,

    /// Public ports (and ICMP identifiers) to hand out.
    #[arg(long, value_name = "MIN-MAX", default_value = "1024-65535", value_parser = parse_port_range)]
    pub ports: (u16, u16),

    /// Which inbound packets reach an inside endpoint (RFC 4787 §5).
    #[arg(long, value_enum, default_value_t = FilteringArg::Address)]
    pub filtering: FilteringArg,

    /// Idle timeouts in seconds, e.g. udp=300,tcp-established=7440,
    /// tcp-transitory=240,icmp=60 (unnamed ones keep their default).
    #[arg(long = "timeout", value_name = "NAME=SECS,...", value_parser = parse_timeouts)]
    pub timeouts: Option<Timeouts>,

    /// Most public ports one inside host may hold (0: no cap).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_ports_per_host: u32,

    /// Capacity of the mapping table (inside endpoints).
    #[arg(long, value_name = "N", default_value_t = nat_common::DEFAULT_MAX_MAPPINGS)]
    pub max_mappings: u32,

    /// Capacity of the session table (inside × remote endpoints).
    #[arg(long, value_name = "N", default_value_t = nat_common::DEFAULT_MAX_SESSIONS)]
    pub max_sessions: u32,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FilteringArg {
    EndpointIndependent,
    Address,
    AddressAndPort,
}

fn parse_timeouts(s: &str) -> Result<Timeouts, String> {
    Timeouts::default().parse_over(s)
}

impl NaptArgs {
    fn enabled(&self) -> bool {
        self.masquerade || !self.pool.is_empty() || !self.internal.is_empty()
    }

    /// The settings, with defaults filled in from the interface.
    fn settings(&self, ifname: &str) -> anyhow::Result<Option<NaptSettings>> {
        if !self.enabled() {
            return Ok(None);
        }
        let pool: Vec<_> = if self.pool.is_empty() {
            let addrs = nat_userspace::netdev::ipv4_addrs(ifname).unwrap_or_default();
            match addrs.first() {
                Some(a) => vec![*a],
                None => anyhow::bail!(
                    "--pool not given and {ifname} has no IPv4 address to masquerade behind"
                ),
            }
        } else {
            self.pool.iter().flatten().copied().collect()
        };
        Ok(Some(NaptSettings {
            internal: if self.internal.is_empty() {
                rfc1918()
            } else {
                self.internal.clone()
            },
            pool,
            ports: self.ports,
            filtering: match self.filtering {
                FilteringArg::EndpointIndependent => Filtering::EndpointIndependent,
                FilteringArg::Address => Filtering::Address,
                FilteringArg::AddressAndPort => Filtering::AddressAndPort,
            },
            max_ports_per_host: self.max_ports_per_host,
            timeouts: self.timeouts.unwrap_or_default(),
        }))
    }
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
    let napt = args.napt.settings(&args.iface)?;
    let attachment = loader::attach(&AttachRequest {
        ifname: &args.iface,
        ingress: args.ingress.into(),
        static_maps: &static_maps,
        napt: napt.as_ref(),
        limits: Limits {
            max_mappings: args.napt.max_mappings,
            max_sessions: args.napt.max_sessions,
        },
        inside: &args.inside,
    })?;
    let napt_text = match &napt {
        Some(n) => format!(
            ", NAPT {} -> {} ports {}-{} filtering {}",
            n.internal
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            n.pool
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            n.ports.0,
            n.ports.1,
            Filtering::name_of(n.filtering.code()),
        ),
        None => String::new(),
    };
    println!(
        "xnat: attached to {} (ingress: {}, egress: tc), {} static mapping(s){napt_text}; state in {}",
        attachment.ifname,
        attachment.ingress,
        static_maps.len(),
        attachment.dir.display()
    );
    crate::agent::run(attachment, args.keep)?;
    Ok(ExitCode::SUCCESS)
}
