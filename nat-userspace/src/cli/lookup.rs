//! `xnat lookup PUBLIC:PORT [--proto P] [--at TIME] [--log FILE]`: which
//! inside endpoint holds a public endpoint now, or held it at a past time
//! (an abuse report's question). The live tables first; for a time no live
//! binding covers, the translation log (`--log`, or the running agent's
//! `--log-bindings` file); under block allocation the port's block (now
//! from the tables, in the past from the log's block lines); under
//! deterministic allocation the layout, for
//! any time (`--config FILE`: from a config file alone, no attachment
//! needed). Exit 0 with the holders, 1 when nobody held it.
use std::{
    fs::File, io::BufReader, net::Ipv4Addr, path::PathBuf, process::ExitCode, time::SystemTime,
};

use anyhow::{Context as _, bail};
use nat_userspace::{
    agent::{clock, runtime},
    lookup::{self, Holder, Source},
    settings::napt::{Allocation, read_settings},
    tables::pins,
};

use super::{addr::parse_endpoint, flows::ProtoFilter};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The public endpoint, ADDR:PORT (for ICMP: the query identifier).
    #[arg(value_name = "PUBLIC:PORT", value_parser = parse_endpoint)]
    pub public: (Ipv4Addr, u16),
    /// Only this protocol (default: all three).
    #[arg(long, value_enum)]
    pub proto: Option<ProtoFilter>,
    /// When: an RFC 3339 time (2026-12-05T03:00:00Z; without a zone, UTC)
    /// or a duration ago (15m, 2h 30m). Default: now.
    #[arg(long, value_name = "TIME", value_parser = lookup::log::parse_time)]
    pub at: Option<SystemTime>,
    /// The translation log to search for bindings that are gone (default:
    /// the running agent's `--log-bindings` file).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Deterministic allocation: answer from this config file's layout
    /// alone (no attachment, tables or log needed).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Machine-readable output (an array of holders).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, iface: Option<&str>) -> anyhow::Result<ExitCode> {
    let (addr, port) = args.public;
    let protos: Vec<ProtoFilter> = match args.proto {
        Some(p) => vec![p],
        None => vec![ProtoFilter::Tcp, ProtoFilter::Udp, ProtoFilter::Icmp],
    };
    let numbers: Vec<u8> = protos.iter().map(|p| p.number()).collect();
    let names: Vec<&'static str> = numbers
        .iter()
        .map(|&p| nat_userspace::tables::flows::proto_name(p))
        .collect();
    if let Some(path) = &args.config {
        // The file alone: no device of this machine is consulted, so the
        // abuse desk can answer on a machine of its own.
        let layer = nat_userspace::settings::config::load(path)?;
        let napt = nat_userspace::settings::napt_of(&layer)?
            .filter(|n| matches!(n.allocation, Allocation::Deterministic { .. }))
            .with_context(|| {
                format!(
                    "{}: --config answers for deterministic allocation only (allocation = \
                     \"deterministic\" in [napt]); under dynamic and block allocation ask the \
                     attachment's tables and translation log (without --config)",
                    path.display()
                )
            })?;
        let found = lookup::deterministic::holders(&napt, addr, port, &names);
        return report(&found, &args, addr, port);
    }
    let (ifname, dir) = pins::resolve_iface(iface)?;
    let mut found = lookup::live::holders(&dir, addr, port, &numbers, args.at)?;
    if found.is_empty() {
        found = lookup::blocks::holders(&dir, addr, port, &names, args.at)?;
    }
    if found.is_empty()
        && let Some(napt) = read_settings(&dir)?
    {
        found = lookup::deterministic::holders(&napt, addr, port, &names);
    }
    if found.is_empty()
        && let Some(at) = args.at
    {
        let path = match args.log.clone() {
            Some(p) => p,
            None => runtime::read_state(&runtime::name_of(&dir))
                .filter(|s| runtime::live_agent(&runtime::name_of(&dir)) == Some(s.pid))
                .and_then(|s| s.translog)
                .with_context(|| {
                    format!(
                        "no binding holds {addr}:{port} now, and for a past time the \
                         translation log is needed: {ifname}'s agent keeps none (--log-bindings), \
                         or give it with --log FILE"
                    )
                })?,
        };
        let file = File::open(&path)
            .with_context(|| format!("opening the translation log {}", path.display()))?;
        found = lookup::log::held_at(BufReader::new(file), &format!("{addr}:{port}"), &names, at)?;
    }
    report(&found, &args, addr, port)
}

/// Prints the holders; exit 0, or 1 (an error without `--json`) for none.
fn report(found: &[Holder], args: &Args, addr: Ipv4Addr, port: u16) -> anyhow::Result<ExitCode> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        for h in found {
            println!("{}", line(h));
        }
    }
    if found.is_empty() {
        let when = args.at.map_or_else(
            || "now".to_string(),
            |t| format!("at {}", clock::rfc3339(t)),
        );
        if args.json {
            return Ok(ExitCode::from(1));
        }
        bail!("no binding held {addr}:{port} {when}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `udp 198.51.100.1:40000 -> 10.0.0.2:5000  binding, since ...`.
fn line(h: &Holder) -> String {
    let what = match h.source {
        Source::Live => "binding",
        Source::Forward => "port forward",
        Source::Static => "static 1:1 mapping (every port)",
        Source::Log => "binding (translation log)",
        Source::Deterministic => "deterministic allocation",
        Source::Block => "port block",
        Source::BlockLog => "port block (translation log)",
    };
    let mut s = format!("{} {} -> {}  {what}", h.proto, h.public, h.inside);
    if let Some(ports) = &h.ports {
        s += &format!(" (its ports {ports})");
    }
    if let Some(since) = &h.since {
        s += &format!(", since {since}");
    }
    if let Some(until) = &h.until {
        s += &format!(", until {until}");
    }
    s
}
