//! The NAT64 part of `cargo xtask bench` (issue 19): xnat's stateful NAT64
//! against TAYGA (with nftables masquerade, the usual stateful setup) in
//! the same run on the same topology (`topo`), and plain IPv6 forwarding
//! as the ceiling of the path. One copy of the topology per mode, all
//! built up front, measured round-robin in rotating order like the
//! end-to-end part, every comparison a median of per-round ratios:
//!
//! * UDP: 84-byte IPv6 frames (the 64-byte IPv4 case's datagram; 64 bytes
//!   again once translated) from the kernel's XDP generator, counted by an
//!   XDP sink on the server (`xdp_rate`, as end to end);
//! * TCP: iperf3 -6 from the client to the server's IPv6 address (the
//!   server's iperf3 listens on IPv4 where the gateway translates), one
//!   stream each way.
//!
//! A mode whose gateway cannot start or whose path fails the check
//! (`check`) is not measured, and the report says why: the others still
//! are.

mod check;
mod gateway;
mod tayga;
mod topo;

use std::{
    net::SocketAddrV6,
    os::fd::OwnedFd,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Map, Value, json};

use super::{
    cpu::{Pinned, gw_cpu},
    iperf,
    net::{self, GeneratorProg},
    rounds::{self, ModeSamples},
    xdp_rate,
};
use crate::{
    netns::{self, Namespaces},
    proc::{self, Background},
};
use gateway::Gateway;
use topo::{Mode, Topo};

/// What the run measures and for how long.
#[derive(Clone, Debug)]
pub struct Plan {
    pub rounds: usize,
    pub udp_secs: f64,
    pub tcp_secs: u32,
}

const UDP_PORT: u16 = 9;
/// Source ports of the UDP test (a power of two, the generator's).
const UDP_FLOWS: u16 = 8;
const IPERF_PORT: u16 = 5201;

/// The figures of a round, per mode.
const KEYS: [&str; 8] = [
    "udp_pps",
    "udp_offered_pps",
    "udp_accepted_pps",
    "udp_gw_cpu_busy_pct",
    "udp_gw_cpu_steal_pct",
    "udp_translator_cpu_pct",
    "tcp_up_bps",
    "tcp_down_bps",
];

/// Everything the run creates. Fields drop in order: the iperf3 servers
/// and the gateways first, then the namespaces.
struct Lab {
    iperf: Vec<Background>,
    gateways: Vec<Gateway>,
    _namespaces: Namespaces,
}

/// The generator's frame to `mode`'s target: the 84-byte IPv6 twin of the
/// end-to-end benchmark's 64-byte IPv4 frame.
fn frame(mode: Mode) -> Vec<u8> {
    net::udp6_frame(
        topo::GW_INT_MAC,
        topo::CLIENT_MAC,
        SocketAddrV6::new(topo::CLIENT, 10_000, 0, 0),
        SocketAddrV6::new(mode.target(), UDP_PORT, 0, 0),
    )
}

/// The gateway, the server's iperf3 and the path check of `t`.
fn bring_up(
    t: &Topo,
    lab: &mut Lab,
    xnat: &Path,
    tmp: &Path,
    gen_prog: &GeneratorProg,
) -> Result<()> {
    topo::build(t, tmp).context("building the topology")?;
    lab.gateways.push(gateway::start(t, xnat, tmp)?);
    let mut iperf = netns::exec(&t.server, "iperf3");
    iperf.args(["-s", "-p", &IPERF_PORT.to_string()]);
    if t.mode.translates() {
        // The server knows IPv4 only.
        iperf.arg("-4");
    }
    lab.iperf.push(Background::spawn(
        &format!("iperf3 -s in {}", t.server),
        iperf,
        libc::SIGTERM,
    )?);
    netns::wait_listening(&t.server, "tcp", IPERF_PORT, Duration::from_secs(10))?;
    check::path(t, gen_prog)
}

/// One UDP run of `t` with its gateway (TAYGA's process pinned to the
/// gateway's CPU meanwhile, where int0's NAPI thread runs: the gateway
/// gets one CPU, whatever does its work).
fn udp(
    t: &Topo,
    gw: &Gateway,
    plan: &Plan,
    sink: &OwnedFd,
    gen_prog: &GeneratorProg,
) -> Result<Value> {
    let _pinned = match (gw.translator_pid(), gw_cpu()) {
        (Some(pid), Some(cpu)) => Some(Pinned::to(pid, cpu)?),
        _ => None,
    };
    let path = xdp_rate::Path {
        client: &t.client,
        gw: &t.gw,
        server: &t.server,
    };
    xdp_rate::measure(&path, plan.udp_secs, sink, gen_prog, gw.translator_pid())
}

fn tcp(t: &Topo, plan: &Plan, reverse: bool) -> Result<f64> {
    let mut args = vec!["-6"];
    if reverse {
        args.push("-R");
    }
    iperf::throughput(
        &t.client,
        &t.mode.target().to_string(),
        IPERF_PORT,
        plan.tcp_secs,
        1,
        &args,
    )
}

/// Runs the NAT64 measurements and returns them as JSON: per mode the
/// median of each figure and its per-round samples, the ratios between
/// modes round by round, and the modes not measured with the reason.
pub fn run(xnat: &Path, plan: &Plan, tmp: &Path) -> Result<Value> {
    let started = Instant::now();
    let topos: Vec<Topo> = Mode::ALL.into_iter().map(Topo::new).collect();
    let names: Vec<&str> = topos.iter().flat_map(|t| t.namespaces()).collect();
    let sink4 = net::load_udp_sink(UDP_PORT)?;
    let sink6 = net::load_udp6_sink(UDP_PORT)?;
    let gen64 = net::load_generator(&frame(Mode::Xnat), UDP_FLOWS)?;
    let gen6 = net::load_generator(&frame(Mode::Plain6), UDP_FLOWS)?;
    let progs = |m: Mode| {
        if m.translates() {
            (&sink4, &gen64)
        } else {
            (&sink6, &gen6)
        }
    };
    let mut lab = Lab {
        iperf: Vec::new(),
        gateways: Vec::new(),
        _namespaces: Namespaces::create(&names)?,
    };
    // The modes that came up, with the index of their gateway in the lab.
    let mut up: Vec<(&Topo, usize)> = Vec::new();
    let mut not_measured = Map::new();
    for t in &topos {
        proc::check_interrupted()?;
        eprintln!("xtask: bench: NAT64: setting up {}", t.mode.label());
        let gateways_before = lab.gateways.len();
        match bring_up(t, &mut lab, xnat, tmp, progs(t.mode).1) {
            Ok(()) => up.push((t, lab.gateways.len() - 1)),
            Err(e) => {
                eprintln!(
                    "xtask: bench: NAT64: {}: not measured: {e:#}",
                    t.mode.label()
                );
                not_measured.insert(t.mode.key().into(), json!(format!("{e:#}")));
                // Stop what did start; the namespaces stay until the end.
                lab.gateways.truncate(gateways_before);
            }
        }
    }
    if !up.iter().any(|(t, _)| t.mode.translates()) {
        bail!("NAT64: neither xnat nor TAYGA could be set up: {not_measured:?}");
    }

    let mut samples: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); KEYS.len()]; up.len()];
    let col = |key: &str| KEYS.iter().position(|k| *k == key).expect("a known key");
    // The first error of each mode and test: the figure is NaN.
    let mut errors: Map<String, Value> = Map::new();
    let mut failed = |t: &Topo, test: &str, e: anyhow::Error| {
        eprintln!(
            "xtask: bench: NAT64: {}: {test} failed: {e:#}",
            t.mode.label()
        );
        let m = errors
            .entry(t.mode.key())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("an object");
        m.entry(test).or_insert_with(|| json!(format!("{e:#}")));
    };
    for round in 0..plan.rounds {
        let order: Vec<usize> = (0..up.len()).map(|k| (k + round) % up.len()).collect();
        let progress = |what: &str, t: &Topo| {
            eprintln!(
                "xtask: bench: NAT64, round {}/{}: {what}: {}",
                round + 1,
                plan.rounds,
                t.mode.label()
            );
        };
        for &i in &order {
            proc::check_interrupted()?;
            let (t, g) = up[i];
            progress("UDP", t);
            let (sink, gen_prog) = progs(t.mode);
            let u = udp(t, &lab.gateways[g], plan, sink, gen_prog).unwrap_or_else(|e| {
                failed(t, "udp", e);
                json!({})
            });
            for (key, field) in [
                ("udp_pps", "pps"),
                ("udp_offered_pps", "offered_pps"),
                ("udp_accepted_pps", "accepted_pps"),
                ("udp_gw_cpu_busy_pct", "gw_cpu_busy_pct"),
                ("udp_gw_cpu_steal_pct", "gw_cpu_steal_pct"),
                ("udp_translator_cpu_pct", "watched_cpu_pct"),
            ] {
                samples[i][col(key)].push(u[field].as_f64().unwrap_or(f64::NAN));
            }
        }
        // TCP: the modes one right after the other for each direction, as
        // end to end (the host's background load drifts over tens of
        // seconds).
        for (key, reverse, what) in [
            ("tcp_up_bps", false, "TCP upload"),
            ("tcp_down_bps", true, "TCP download"),
        ] {
            for &i in &order {
                proc::check_interrupted()?;
                let (t, _) = up[i];
                progress(what, t);
                let v = tcp(t, plan, reverse).unwrap_or_else(|e| {
                    failed(t, key, e);
                    f64::NAN
                });
                samples[i][col(key)].push(v);
            }
        }
    }
    drop(lab);

    let modes: Vec<ModeSamples> = up
        .iter()
        .zip(&samples)
        .map(|((t, _), s)| ModeSamples {
            key: t.mode.key(),
            label: t.mode.label(),
            samples: s,
        })
        .collect();
    let (per_mode, ratios) = rounds::summarise(&KEYS, &modes);
    let labels: Map<String, Value> = Mode::ALL
        .iter()
        .map(|m| (m.key().to_owned(), json!(m.label())))
        .collect();
    Ok(json!({
        "rounds": plan.rounds,
        "udp_secs": plan.udp_secs,
        "tcp_secs": plan.tcp_secs,
        "udp_flows": UDP_FLOWS,
        "frame_len": frame(Mode::Xnat).len(),
        "prefix": topo::PREFIX,
        "server": topo::SERVER.to_string(),
        "target": Mode::Xnat.target().to_string(),
        "pool": topo::GW_EXT.to_string(),
        "xnat_command": format!("xnat {}", gateway::xnat_args().join(" ")),
        "tayga_version": tayga::version(),
        "gw_cpu": gw_cpu(),
        "labels": labels,
        "modes": per_mode,
        "ratios": ratios,
        "not_measured": not_measured,
        "errors": errors,
        "secs": started.elapsed().as_secs_f64(),
    }))
}
