//! `xnat flows`: live sessions, like `conntrack -L`.
use std::{net::Ipv4Addr, process::ExitCode};

use clap::ValueEnum;
use nat_userspace::{flows, napt, pins};

use super::addr::parse_ipv4;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Only this protocol.
    #[arg(long, value_enum)]
    pub proto: Option<ProtoFilter>,
    /// Only flows of this inside host.
    #[arg(long, value_parser = parse_ipv4)]
    pub inside: Option<Ipv4Addr>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProtoFilter {
    Tcp,
    Udp,
    Icmp,
}

pub fn run(args: Args, iface: Option<&str>) -> anyhow::Result<ExitCode> {
    let (_, dir) = pins::resolve_iface(iface)?;
    let cfg = napt::read_config(&dir)?;
    let want = args.proto.map(|p| match p {
        ProtoFilter::Tcp => "tcp",
        ProtoFilter::Udp => "udp",
        ProtoFilter::Icmp => "icmp",
    });
    let list: Vec<_> = flows::read(&dir, &cfg)?
        .into_iter()
        .filter(|f| want.is_none_or(|p| f.proto == p))
        .filter(|f| args.inside.is_none_or(|a| f.inside_addr == a))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for f in &list {
            println!(
                "{:<4} {:<11} inside={} public={} remote={} age={}s expires={}s out={}p/{}B in={}p/{}B",
                f.proto,
                f.state,
                f.inside,
                f.public,
                f.remote,
                f.age_s,
                f.expires_in_s,
                f.packets_out,
                f.bytes_out,
                f.packets_in,
                f.bytes_in
            );
        }
        eprintln!("xnat: {} flow(s)", list.len());
    }
    Ok(ExitCode::SUCCESS)
}
