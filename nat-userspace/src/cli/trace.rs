//! `xnat trace`: what the programs do with matching packets, live, like
//! `cilium monitor` or `pwru`: translated to what, passed or dropped and
//! why (the counters the packet moved). Runs until Ctrl-C or `--count`
//! records; the programs report nothing once it ends.
use std::process::ExitCode;

use nat_common::trace::TraceFilter;
use nat_userspace::{
    settings::napt::Prefix,
    tables::{Tables, pins, trace},
};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only packets from or to this address or prefix (before or after
    /// translation: an inside host's address matches its inbound packets
    /// too), or this NAT64 IPv6 host (an address, no prefix).
    #[arg(long, value_name = "ADDR[/LEN]|IPV6", value_parser = parse_host)]
    pub host: Option<Host>,
    /// Only packets from or to this port (an ICMP echo's identifier).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Only this protocol.
    #[arg(long, value_enum)]
    pub proto: Option<Proto>,
    /// Stop after this many packets.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// `--host`: an IPv4 address or prefix, or a NAT64 IPv6 host.
#[derive(Clone, Copy, Debug)]
pub enum Host {
    V4(Prefix),
    V6(std::net::Ipv6Addr),
}

fn parse_host(s: &str) -> Result<Host, String> {
    if let Ok(a) = s.parse::<std::net::Ipv6Addr>() {
        return Ok(Host::V6(a));
    }
    if s.contains(':') {
        return Err(format!(
            "{s:?}: an IPv6 host is one address (no prefix length)"
        ));
    }
    s.parse::<Prefix>().map(Host::V4).map_err(|e| e.to_string())
}

pub fn run(args: Args, iface: Option<&str>) -> anyhow::Result<ExitCode> {
    let (ifname, dir) = pins::resolve_iface(iface)?;
    let (addr, mask) = match args.host {
        None => (0, 0),
        Some(Host::V4(p)) => trace::host_filter(p.addr, p.len),
        Some(Host::V6(a)) => trace::host6_filter(&dir, a)?,
    };
    let filter = TraceFilter {
        tracer: 0,
        addr,
        mask,
        port: args.port.unwrap_or(0).to_be(),
        proto: match args.proto {
            None => 0,
            Some(Proto::Tcp) => 6,
            Some(Proto::Udp) => 17,
            Some(Proto::Icmp) => 1,
        },
        _pad: 0,
    };
    let mut ring = Tables::at(&dir).trace()?;
    // Records a trace killed earlier left behind are not this trace's.
    while ring.next().is_some() {}
    trace::start(&dir, filter)?;
    // On stderr, so `--json` output stays clean; it also says the
    // programs are reporting from now on.
    eprintln!("xnat: tracing {ifname} (Ctrl-C to stop)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        // SAFETY: the ring buffer owns its fd for as long as the AsyncFd
        // owns the ring buffer; nothing else closes it.
        let mut ring = unsafe { AsyncFd::register(ring) }?;
        let mut seen = 0u64;
        loop {
            tokio::select! {
                _ = sigint.recv() => break,
                _ = sigterm.recv() => break,
                guard = ring.readable_mut() => {
                    let mut guard = guard?;
                    while let Some(item) = guard.get_inner_mut().next() {
                        let Some(ev) = trace::decode(&item) else { continue };
                        if args.json {
                            println!("{}", serde_json::to_string(&ev)?);
                        } else {
                            println!("{}", ev.line());
                        }
                        seen += 1;
                        if args.count.is_some_and(|n| seen >= n) {
                            return anyhow::Ok(());
                        }
                    }
                    guard.clear_ready();
                }
            }
        }
        anyhow::Ok(())
    });
    trace::stop(&dir)?;
    result?;
    Ok(ExitCode::SUCCESS)
}
