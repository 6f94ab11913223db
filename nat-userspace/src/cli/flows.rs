//! `xnat flows`: live sessions, like `conntrack -L`; `xnat flows flush`
//! deletes them with their bindings, like `conntrack -F`.
use std::{net::IpAddr, process::ExitCode};

use clap::{Subcommand, ValueEnum};
use nat_userspace::{settings::napt, tables::blocks, tables::flows, tables::flush, tables::pins};

use super::addr::parse_inside;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Only this protocol.
    #[arg(long, value_enum)]
    pub proto: Option<ProtoFilter>,
    /// Only flows of this inside host (IPv4, or IPv6 for a NAT64 host).
    #[arg(long, value_parser = parse_inside)]
    pub inside: Option<IpAddr>,
    /// List the port blocks held (block allocation) instead of the flows.
    #[arg(long, conflicts_with = "proto")]
    pub blocks: bool,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Delete sessions and their dynamic bindings (port forwards stay).
    /// Active flows get new bindings on their next outbound packet.
    Flush {
        /// Print what was deleted as JSON.
        #[arg(long)]
        json: bool,
        /// Only this protocol.
        #[arg(long, value_enum)]
        proto: Option<ProtoFilter>,
        /// Only flows of this inside host (IPv4, or IPv6 for a NAT64
        /// host).
        #[arg(long, value_parser = parse_inside)]
        inside: Option<IpAddr>,
    },
}

impl ProtoFilter {
    pub(super) fn number(self) -> u8 {
        match self {
            ProtoFilter::Tcp => 6,
            ProtoFilter::Udp => 17,
            ProtoFilter::Icmp => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProtoFilter {
    Tcp,
    Udp,
    Icmp,
}

pub fn run(args: Args, iface: Option<&str>) -> anyhow::Result<ExitCode> {
    let (ifname, dir) = pins::resolve_iface(iface)?;
    if let Some(Action::Flush {
        json,
        proto,
        inside,
    }) = args.action
    {
        let done = flush::flush(
            &dir,
            flush::Filter {
                proto: proto.map(ProtoFilter::number),
                inside,
            },
        )?;
        if json {
            println!("{}", serde_json::to_string_pretty(&done)?);
        } else {
            println!(
                "xnat: {ifname}: flushed {} session(s) and {} binding(s)",
                done.sessions, done.mappings
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = napt::read_config(&dir)?;
    if args.blocks {
        return print_blocks(&dir, &cfg, &args);
    }
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
            println!("{}", f.line());
        }
        eprintln!("xnat: {} flow(s)", list.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// `xnat flows --blocks`: the port blocks held, with their owners.
fn print_blocks(
    dir: &std::path::Path,
    cfg: &nat_common::NatConfig,
    args: &Args,
) -> anyhow::Result<ExitCode> {
    let list: Vec<_> = blocks::read(dir, cfg)?
        .into_iter()
        .filter(|b| args.inside.is_none_or(|a| IpAddr::V4(b.inside) == a))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for b in &list {
            println!(
                "block public={}:{}-{} inside={} since={} age={}s bindings={}",
                b.public, b.first_port, b.last_port, b.inside, b.since, b.age_s, b.bindings
            );
        }
        eprintln!("xnat: {} port block(s)", list.len());
    }
    Ok(ExitCode::SUCCESS)
}
