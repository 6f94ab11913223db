//! `xnat-bench`: the BPF_PROG_TEST_RUN part of `cargo xtask bench`
//! (per-packet cost, scale, map memory, expiry sweep). It prints progress
//! on stderr and writes its results as JSON (to `--out FILE`, else
//! stdout); xtask adds the end-to-end figures and writes BENCHMARKS.md.

mod flows;
mod instance;
mod logvolume;
mod measure;
mod nat64;
mod redirect;
mod stall;
mod suite;
mod sweep;

use std::{net::Ipv4Addr, path::PathBuf, time::Instant};

use anyhow::{Context as _, Result, bail};
use clap::{
    ArgAction, CommandFactory, FromArgMatches, Parser, error::ErrorKind, parser::ValueSource,
};
use nat_common::Counter;
use nat_userspace::agent::clock;
use serde_json::{Value, json};

use flows::{CYCLE_ENTRIES, CYCLE_TCP, CYCLE_UDP, Ep, Flow};
use instance::{Capacity, Instance, Prog, TC_ACT_REDIRECT};
use measure::{Expect, Rng};
use suite::{Case, Method, NOOP, NOOP_LOOP};

/// Measures xnat's BPF programs through BPF_PROG_TEST_RUN: per-packet
/// cost, scale to a million bindings, map memory, the expiry sweep.
///
/// Prints progress on stderr and its results as JSON (to `--out FILE`,
/// else stdout). Needs root; run it through `cargo xtask bench`, which also
/// measures traffic end to end and writes BENCHMARKS.md.
#[derive(Parser)]
#[command(name = "xnat-bench", args_override_self = true)]
struct Args {
    /// Runs of each measurement (the report takes their median; non-zero).
    #[arg(long, value_name = "N", default_value_t = 5)]
    runs: usize,
    /// BPF_PROG_TEST_RUN's repeat count per run (non-zero).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    repeat: u32,
    /// Calls per run of the cases that loop in user space (non-zero).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    loop_calls: usize,
    /// New flows per round of the new-flow cases.
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    new_per_round: usize,
    /// Binding counts to measure at (`1_000` is 1000).
    #[arg(
        long,
        value_name = "N,N,...",
        value_delimiter = ',',
        value_parser = scale_arg,
        action = ArgAction::Set,
        default_value = "1_000,100_000,1_000_000"
    )]
    scales: Vec<u32>,
    /// Runs of the expiry sweep at the largest scale (0: skip it).
    #[arg(long, value_name = "N", default_value_t = 5)]
    sweep_runs: usize,
    /// A quicker, smaller run: --runs 3 --repeat 200000 --loop-calls 20000
    /// --new-per-round 10000 --scales 1_000,100_000 --sweep-runs 2. It
    /// replaces those given before it; those given after it win.
    #[arg(long)]
    quick: bool,
    /// Write the results here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Measure nothing: attach the bare XDP redirect (the end-to-end
    /// benchmark's baseline) to IFACE in native mode, forwarding every
    /// IPv4 frame out of --to to --dst-mac, print
    /// `xnat-bench: redirect attached to IFACE`, and hold it until SIGINT
    /// or SIGTERM.
    #[arg(long, value_name = "IFACE", requires_all = ["to", "dst_mac"])]
    attach_redirect: Option<String>,
    /// With --attach-redirect: the egress interface (its own MAC becomes
    /// the frames' source).
    #[arg(long, value_name = "IFACE", requires = "attach_redirect")]
    to: Option<String>,
    /// With --attach-redirect: the next hop's MAC (aa:bb:cc:dd:ee:ff).
    #[arg(long, value_name = "MAC", value_parser = redirect::parse_mac, requires = "attach_redirect")]
    dst_mac: Option<[u8; 6]>,
    /// Only the established-flow cases (each program and the minimal NAT
    /// on its cycle flows, and the no-op), no scale or sweep: what `cargo
    /// xtask bench` runs under `perf record` to say where the nanoseconds
    /// go.
    #[arg(long)]
    established_only: bool,
}

fn scale_arg(v: &str) -> Result<u32, std::num::ParseIntError> {
    v.trim().replace('_', "").parse()
}

/// The command line, `--quick` applied, checked; exits through clap on
/// bad usage (status 2).
fn parse_args() -> Args {
    parse_args_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

fn parse_args_from<I, T>(argv: I) -> Result<Args, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let m = Args::command().try_get_matches_from(argv)?;
    let mut a = Args::from_arg_matches(&m)?;
    if a.quick {
        // Position-sensitive, as the preset always was: it overrides the
        // flags before it (and the defaults), not those after it.
        let q = m.index_of("quick").expect("--quick given");
        let after = |id: &str| {
            m.value_source(id) == Some(ValueSource::CommandLine)
                && m.index_of(id).is_some_and(|i| i > q)
        };
        if !after("runs") {
            a.runs = 3;
        }
        if !after("repeat") {
            a.repeat = 200_000;
        }
        if !after("loop_calls") {
            a.loop_calls = 20_000;
        }
        if !after("new_per_round") {
            a.new_per_round = 10_000;
        }
        if !after("scales") {
            a.scales = vec![1_000, 100_000];
        }
        if !after("sweep_runs") {
            a.sweep_runs = 2;
        }
    }
    if a.runs == 0 || a.repeat == 0 || a.loop_calls == 0 || a.scales.is_empty() {
        return Err(Args::command().error(
            ErrorKind::ValueValidation,
            "--runs, --repeat, --loop-calls and --scales must be non-zero",
        ));
    }
    Ok(a)
}

pub fn run() -> Result<()> {
    let args = parse_args();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("needs root (it loads BPF programs): run it through `cargo xtask bench`");
    }
    if let (Some(iface), Some(to), Some(dst_mac)) = (&args.attach_redirect, &args.to, args.dst_mac)
    {
        return redirect::attach_and_wait(iface, to, dst_mac);
    }
    let started = Instant::now();

    let per_packet = per_packet(&args)?;
    let scale = if args.established_only {
        Value::Null
    } else {
        scale(&args)?
    };
    let log_volume = if args.established_only {
        Value::Null
    } else {
        logvolume::run(&std::env::temp_dir())?
    };

    let result = json!({
        "repeat": args.repeat,
        "runs": args.runs,
        "loop_calls": args.loop_calls,
        "frame_len": flows::FRAME_LEN,
        "per_packet": per_packet,
        "scale": scale,
        "log_volume": log_volume,
        "seconds": started.elapsed().as_secs_f64(),
    });
    let text = serde_json::to_string_pretty(&result)?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => println!("{text}"),
    }
    Ok(())
}

fn pass_expect(prog: Prog) -> Expect {
    Expect {
        verdict: Some(prog.pass()),
        ..Default::default()
    }
}

/// Expectations of a packet of an established flow.
fn established(prog: Prog) -> Expect {
    let each = if prog == Prog::EgressTc {
        Counter::EgressTranslated
    } else {
        Counter::IngressTranslated
    };
    Expect {
        each: vec![each],
        unchanged: vec![
            Counter::NaptMappingsCreated,
            Counter::NaptSessionsCreated,
            Counter::DropFiltered,
            Counter::DropSessionTableFull,
        ],
        verdict: Some(prog.pass()),
    }
}

/// The no-op baselines, run on the same 64-byte frame.
fn baselines<'a>(inst: &'a Instance, args: &Args) -> Vec<Case<'a>> {
    let frame = flows::inbound_frame(&CYCLE_UDP);
    let frames = vec![frame.clone(); args.loop_calls];
    let repeat = args.repeat;
    vec![
        Case::new(
            NOOP,
            "no-op XDP program (baseline)",
            Prog::NoopXdp,
            Method::Repeat,
            0,
            Box::new(move || {
                measure::repeat(
                    inst,
                    Prog::NoopXdp,
                    &frame,
                    repeat,
                    &pass_expect(Prog::NoopXdp),
                    NOOP,
                )
            }),
        ),
        Case::new(
            NOOP_LOOP,
            "no-op XDP program, one syscall per packet (loop baseline)",
            Prog::NoopXdp,
            Method::Loop,
            0,
            Box::new(move || {
                measure::each(
                    inst,
                    Prog::NoopXdp,
                    &frames,
                    &pass_expect(Prog::NoopXdp),
                    NOOP_LOOP,
                )
            }),
        ),
    ]
}

/// A repeat case on an established cycle flow.
fn hot<'a>(
    inst: &'a Instance,
    id: String,
    label: String,
    prog: Prog,
    flow: &Flow,
    bindings: u32,
    repeat: u32,
) -> Case<'a> {
    let frame = if prog == Prog::EgressTc {
        flows::outbound_frame(flow)
    } else {
        flows::inbound_frame(flow)
    };
    let expect = established(prog);
    let what = id.clone();
    Case::new(
        id,
        label,
        prog,
        Method::Repeat,
        bindings,
        Box::new(move || measure::repeat(inst, prog, &frame, repeat, &expect, &what)),
    )
}

/// Checks once that a packet of `flow` is translated to its other endpoint
/// (a cycle frame as the cycle assumes, or a bulk binding).
fn check_cycle(inst: &Instance, prog: Prog, flow: &Flow) -> Result<()> {
    let mut out = vec![0u8; 256];
    let (frame, want, got): (_, Ep, fn(&[u8]) -> Ep) = if prog.outbound() {
        (flows::outbound_frame(flow), flow.public, flows::src_of)
    } else {
        (flows::inbound_frame(flow), flow.inside, flows::dst_of)
    };
    let res = inst.test_run(prog, &frame, Some(&mut out), 1)?;
    let ep = got(&out[..res.data_size_out as usize]);
    if ep.addr != want.addr || ep.port != want.port || res.return_value != prog.pass() {
        bail!(
            "{}: a packet of the established flow became {}:{} (verdict {}), expected {}:{}",
            prog.name(),
            ep.addr,
            ep.port,
            res.return_value,
            want.addr,
            want.port
        );
    }
    Ok(())
}

fn load_filled(bulk: u32, cap: Capacity) -> Result<Instance> {
    let t0 = Instant::now();
    let mut inst = Instance::load(cap)?;
    flows::fill_bulk(&mut inst, bulk, clock::now_ns())?;
    let now = clock::now_ns();
    flows::install_cycle(&mut inst, &CYCLE_UDP, now)?;
    flows::install_cycle(&mut inst, &CYCLE_TCP, now)?;
    for prog in [
        Prog::IngressXdp,
        Prog::IngressTc,
        Prog::EgressTc,
        Prog::BaselineXdp,
        Prog::BaselineTc,
    ] {
        for flow in [&CYCLE_UDP, &CYCLE_TCP] {
            check_cycle(&inst, prog, flow)?;
        }
        // The first and last bulk binding translate too (the random-flow
        // cases pick among them: a lookup that missed would measure less).
        if bulk > 0 {
            for k in [0, bulk - 1] {
                check_cycle(&inst, prog, &flows::bulk(k))?;
            }
        }
    }
    eprintln!(
        "xnat-bench: loaded and filled {bulk} bindings (capacity {} mappings, {} sessions) in {:.1} s",
        cap.mappings,
        cap.sessions,
        t0.elapsed().as_secs_f64()
    );
    Ok(inst)
}

fn proto_name(p: u8) -> &'static str {
    if p == flows::TCP { "TCP" } else { "UDP" }
}

/// The hosts that make new bindings (one each, in address order): a
/// prefix of their own, so a deterministic layout can number them.
const NEW_HOSTS: (Ipv4Addr, u32) = (Ipv4Addr::new(10, 128, 0, 0), 14);

/// Bindings in the per-packet section's tables.
const BULK_PER_PACKET: u32 = 1_000;

/// Frames of new flows, one per new inside host (in address order from
/// the first), each from a random source port to one remote.
struct NewFlows {
    rng: Rng,
    next_host: u32,
}

impl NewFlows {
    fn from(first: Ipv4Addr, seed: u64) -> Self {
        NewFlows {
            rng: Rng::new(seed),
            next_host: u32::from(first),
        }
    }

    /// The next `n` frames.
    fn round(&mut self, n: usize) -> Vec<Vec<u8>> {
        let remote = Ep::new(Ipv4Addr::new(198, 19, 254, 1), 53);
        (0..n)
            .map(|_| {
                let src = Ep::new(
                    Ipv4Addr::from(self.next_host),
                    1024 + self.rng.below(65535 - 1024 + 1) as u16,
                );
                self.next_host += 1;
                flows::udp(src, remote)
            })
            .collect()
    }
}

/// Frames of new flows from `hosts` inside hosts in turn (from `first`),
/// each host's source ports counting up from 1024: block allocation's
/// common case, a host's further flows in the block it holds.
struct HostFlows {
    first: u32,
    hosts: u32,
    sent: u32,
}

impl HostFlows {
    fn round(&mut self, n: usize) -> Vec<Vec<u8>> {
        let remote = Ep::new(Ipv4Addr::new(198, 19, 254, 1), 53);
        (0..n)
            .map(|_| {
                let host = self.first + self.sent % self.hosts;
                let port = 1024 + (self.sent / self.hosts) as u16;
                self.sent += 1;
                flows::udp(Ep::new(Ipv4Addr::from(host), port), remote)
            })
            .collect()
    }
}

/// Hosts of the block row's new flows (each gets about 1 in 4096 of them:
/// ~60 a host in a full run, inside its first block), and the prefix of
/// the hosts whose first flow claims a block.
const BLOCK_HOSTS: (Ipv4Addr, u32) = (Ipv4Addr::new(10, 160, 0, 0), 4096);
const BLOCK_CLAIMS_FROM: Ipv4Addr = Ipv4Addr::new(10, 176, 0, 0);
/// New flows per round of the block-claiming row: every flow takes a block
/// of its own, and the pool has 64 × 496 of them.
const BLOCK_CLAIMS_PER_ROUND: usize = 2_000;

/// xnat's egress program making `per_round` new bindings a round on
/// `inst` (frames from `frames`), each checked to be made (and to bump
/// `also`).
fn new_binding_case<'a>(
    id: &'static str,
    label: &'static str,
    inst: &'a Instance,
    per_round: usize,
    mut frames: Box<dyn FnMut(usize) -> Vec<Vec<u8>> + 'a>,
    also: &[Counter],
) -> Case<'a> {
    let also = also.to_vec();
    Case::new(
        id,
        label,
        Prog::EgressTc,
        Method::Loop,
        BULK_PER_PACKET,
        Box::new(move || {
            let frames = frames(per_round);
            let mut each = vec![
                Counter::EgressTranslated,
                Counter::NaptMappingsCreated,
                Counter::NaptSessionsCreated,
            ];
            each.extend_from_slice(&also);
            let expect = Expect {
                each,
                unchanged: vec![Counter::DropMappingTableFull, Counter::DropPortsExhausted],
                verdict: Some(Prog::EgressTc.pass()),
            };
            measure::each(inst, Prog::EgressTc, &frames, &expect, id)
        }),
    )
}

/// Entries the NAT64 flows add to the per-packet tables (per mapping
/// table).
const NAT64_ENTRIES: u32 = nat64::FLOWS.len() as u32;

/// NAT64 on in `inst` with its flows' bindings, each flow checked once
/// each way; the namespace the outbound cases run in.
fn nat64_setup(inst: &mut Instance) -> Result<nat64::Fib> {
    let fib = nat64::Fib::new()?;
    inst.set_ext_ifindex(fib.ext0)?;
    nat64::install(inst, clock::now_ns())?;
    for f in &nat64::FLOWS {
        for prog in [Prog::IngressXdp, Prog::IngressTc] {
            nat64::check_inbound(inst, prog, f)?;
        }
        nat64::check_outbound(inst, &fib, f)?;
    }
    eprintln!(
        "xnat-bench: NAT64 on ({}/96), host {} with stand-in {}",
        nat64::embedded(std::net::Ipv4Addr::UNSPECIFIED),
        nat64::HOST,
        nat64::FLOWS[0].nat44().inside.addr
    );
    Ok(fib)
}

/// An instance with the fast path on (TC on the inside interfaces), its
/// external interface `fib`'s ext0; its cycle flows checked to be
/// forwarded.
fn fast_path_instance(bulk: u32, cap: Capacity, fib: &nat64::Fib) -> Result<Instance> {
    let mut i = load_filled(bulk, cap)?;
    i.set_ext_ifindex(fib.ext0)?;
    i.enable_fast_path()?;
    for flow in [&CYCLE_UDP, &CYCLE_TCP] {
        nat64::check_fast_path(&i, fib, flow)?;
    }
    Ok(i)
}

/// NAT64's established flows each way (`loop`: each packet changes
/// protocol and size, see nat64.rs), each judged against the NAT44 packet
/// of the same hook and protocol run the same way in the same rounds
/// (which is also judged against its own `repeat` row).
fn nat64_cases<'a>(
    cases: &mut Vec<Case<'a>>,
    inst: &'a Instance,
    fast: &'a Instance,
    fib: &'a nat64::Fib,
    calls: usize,
) {
    for f in &nat64::FLOWS {
        let proto = proto_name(f.proto);
        let lower = proto.to_lowercase();
        let cycle = if f.proto == flows::TCP {
            &CYCLE_TCP
        } else {
            &CYCLE_UDP
        };
        let hooks = [
            (Prog::IngressXdp, "ingress XDP", "inbound XDP", "xdp"),
            (Prog::IngressTc, "ingress TC", "inbound TC", "tc"),
            (Prog::EgressTc, "egress TC", "outbound TC", "tc"),
        ];
        for (prog, hook, dir, short) in hooks {
            // The NAT44 packet of the same hook, one syscall each.
            let nat44 = format!("loop_{}_{lower}", prog.name());
            let frame = if prog.outbound() {
                flows::outbound_frame(cycle)
            } else {
                flows::inbound_frame(cycle)
            };
            let frames = vec![frame; calls];
            let expect = established(prog);
            let what = nat44.clone();
            cases.push(
                Case::new(
                    nat44.clone(),
                    format!("NAT44 {hook} ({}), established {proto} flow", prog.name()),
                    prog,
                    Method::Loop,
                    BULK_PER_PACKET,
                    Box::new(move || measure::each(inst, prog, &frames, &expect, &what)),
                )
                .against(format!("{}_{lower}", prog.name())),
            );
            // The NAT64 packet.
            let (id, label, prog64) = if prog.outbound() {
                (
                    format!("nat64_out_{short}_{lower}"),
                    format!(
                        "NAT64 {dir}, IPv6 → IPv4 (xnat_inside_tc → xnat_nat64_out_tc → xnat_nat64_out_nat44_tc: FIB lookup, redirect), established {proto} flow"
                    ),
                    Prog::InsideTc,
                )
            } else {
                (
                    format!("nat64_in_{short}_{lower}"),
                    format!(
                        "NAT64 {dir}, IPv4 → IPv6 ({} → xnat_nat64_in_{short}), established {proto} flow",
                        prog.name()
                    ),
                    prog,
                )
            };
            let what = id.clone();
            let runner: suite::Runner<'a> = if prog.outbound() {
                let frames = vec![f.outbound_frame(); calls];
                let expect = Expect {
                    each: vec![Counter::Nat64Out, Counter::EgressTranslated],
                    unchanged: vec![
                        Counter::NaptMappingsCreated,
                        Counter::NaptSessionsCreated,
                        Counter::Nat64DropNoRoute,
                        Counter::Nat64DropMalformed,
                        Counter::Nat64DropHostsFull,
                    ],
                    verdict: Some(TC_ACT_REDIRECT),
                };
                Box::new(move || {
                    let _in = fib.enter()?;
                    measure::each_on(inst, prog64, &frames, Some(fib.in0), &expect, &what)
                })
            } else {
                let frames = vec![f.inbound_frame(); calls];
                let expect = Expect {
                    each: vec![Counter::IngressTranslated, Counter::Nat64In],
                    unchanged: vec![
                        Counter::NaptMappingsCreated,
                        Counter::NaptSessionsCreated,
                        Counter::DropFiltered,
                        Counter::Nat64DropNoHost,
                        Counter::Nat64DropMalformed,
                    ],
                    verdict: Some(prog.pass()),
                };
                Box::new(move || measure::each(inst, prog64, &frames, &expect, &what))
            };
            cases.push(
                Case::new(id, label, prog64, Method::Loop, BULK_PER_PACKET, runner)
                    .against(nat44.clone()),
            );
            if prog.outbound() {
                // NAT44 forwarding the packet itself on the same hook.
                let frames = vec![flows::outbound_frame(cycle); calls];
                let id = format!("fast_{}_{lower}", Prog::InsideTc.name());
                let what = id.clone();
                let expect = Expect {
                    each: vec![Counter::FastPathOutbound, Counter::EgressTranslated],
                    unchanged: vec![Counter::NaptMappingsCreated, Counter::NaptSessionsCreated],
                    verdict: Some(TC_ACT_REDIRECT),
                };
                cases.push(
                    Case::new(
                        id,
                        format!(
                            "NAT44 fast path, inside TC (xnat_inside_tc with --fast-path: \
                             FIB lookup, redirect), established {proto} flow"
                        ),
                        Prog::InsideTc,
                        Method::Loop,
                        BULK_PER_PACKET,
                        Box::new(move || {
                            let _in = fib.enter()?;
                            measure::each_on(
                                fast,
                                Prog::InsideTc,
                                &frames,
                                Some(fib.in0),
                                &expect,
                                &what,
                            )
                        }),
                    )
                    .against(nat44),
                );
            }
        }
    }
}

/// Section 1: every program at 1k bindings, plus new bindings and
/// pass-through packets.
fn per_packet(args: &Args) -> Result<Value> {
    const BULK: u32 = BULK_PER_PACKET;
    let capacity = |room: usize| Capacity {
        mappings: room as u32,
        sessions: room as u32,
    };
    let mut inst = load_filled(
        BULK,
        capacity((BULK + CYCLE_ENTRIES + NAT64_ENTRIES) as usize + 1024),
    )?;
    // NAT64 in the same object and tables (the NAT44 paths read nothing of
    // it), and the namespace its outbound packets are routed in.
    let fib = if args.established_only {
        None
    } else {
        Some(nat64_setup(&mut inst)?)
    };
    let inst = &inst;
    // The NAT44 fast path on the inside interface (translation, FIB
    // lookup, redirect: what NAT64's outbound path does after its own
    // translation), on tables of its own like these.
    let fast = match &fib {
        Some(fib) => Some(fast_path_instance(
            BULK,
            capacity((BULK + CYCLE_ENTRIES) as usize + 1024),
            fib,
        )?),
        None => None,
    };
    // The new-binding case fills tables of its own, with room for every
    // binding it creates: in the established-flow cases' tables they would
    // grow by tens of thousands a round, and those cases would no longer
    // run with the 1000 bindings they report (nor with tables the size of
    // the minimal NAT's).
    let room = (BULK + CYCLE_ENTRIES) as usize + args.runs * args.new_per_round + 1024;
    let fresh = if args.established_only {
        None
    } else {
        Some(load_filled(BULK, capacity(room))?)
    };
    // The same under deterministic allocation (RFC 7422), for the new
    // hosts' prefix: the layout gives each new host its range (an
    // established flow's packets take the same path in either mode).
    let fresh_det = if args.established_only {
        None
    } else {
        let mut i = load_filled(BULK, capacity(room))?;
        // The bulk bindings hold ports 1024-1039 of every pool address.
        let (per_addr, ports) = i.deterministic(NEW_HOSTS.0, NEW_HOSTS.1, 2048)?;
        eprintln!(
            "xnat-bench: deterministic layout of {}/{}: {per_addr} hosts per pool address, {ports} ports each",
            NEW_HOSTS.0, NEW_HOSTS.1
        );
        Some(i)
    };
    // And under port block allocation (blocks of 128 from port 2048, up to
    // eight a host: 496 blocks per pool address).
    let fresh_block = if args.established_only {
        None
    } else {
        // Both block rows make their bindings in it.
        let claims = args.runs * BLOCK_CLAIMS_PER_ROUND.min(args.new_per_round);
        let mut i = load_filled(BULK, capacity(room + claims))?;
        i.blocks(128, 8, 2048)?;
        Some(i)
    };
    let repeat = args.repeat;

    let mut cases = baselines(inst, args);
    let id = |prog: Prog, flow: &Flow| {
        format!("{}_{}", prog.name(), proto_name(flow.proto).to_lowercase())
    };
    // The minimal NAT on the same flows: the fair baseline of each hook.
    for (prog, hook) in [
        (Prog::BaselineXdp, "minimal NAT, inbound XDP"),
        (Prog::BaselineTc, "minimal NAT, outbound TC"),
    ] {
        for flow in [&CYCLE_UDP, &CYCLE_TCP] {
            let proto = proto_name(flow.proto);
            let frame = if prog.outbound() {
                flows::outbound_frame(flow)
            } else {
                flows::inbound_frame(flow)
            };
            let what = id(prog, flow);
            let expect = pass_expect(prog);
            cases.push(Case::new(
                id(prog, flow),
                format!("{hook} ({}), established {proto} flow", prog.name()),
                prog,
                Method::Repeat,
                BULK,
                Box::new(move || measure::repeat(inst, prog, &frame, repeat, &expect, &what)),
            ));
        }
    }
    for (prog, hook) in [
        (Prog::IngressXdp, "ingress XDP"),
        (Prog::IngressTc, "ingress TC"),
        (Prog::EgressTc, "egress TC"),
    ] {
        for flow in [&CYCLE_UDP, &CYCLE_TCP] {
            let proto = proto_name(flow.proto);
            cases.push(
                hot(
                    inst,
                    id(prog, flow),
                    format!("{hook} ({}), established {proto} flow", prog.name()),
                    prog,
                    flow,
                    BULK,
                    repeat,
                )
                .against(id(prog.baseline(), flow)),
            );
        }
    }

    // The same established flow under the other allocation modes: the
    // mode is read only when a mapping is made, so these should match
    // dynamic's rows (their tables also hold the new-binding rows'
    // bindings; one flow's bucket is as hot either way).
    for (fresh_mode, mode) in [(&fresh_det, "deterministic"), (&fresh_block, "block")] {
        let Some(i) = fresh_mode else {
            continue;
        };
        for (prog, hook) in [
            (Prog::IngressXdp, "ingress XDP"),
            (Prog::EgressTc, "egress TC"),
        ] {
            cases.push(
                hot(
                    i,
                    format!("{}_{mode}", id(prog, &CYCLE_UDP)),
                    format!(
                        "{hook} ({}), established UDP flow, {mode} allocation",
                        prog.name()
                    ),
                    prog,
                    &CYCLE_UDP,
                    BULK,
                    repeat,
                )
                .against(id(prog, &CYCLE_UDP)),
            );
        }
    }

    // New bindings: one syscall per packet, each from an inside endpoint
    // never seen before (a new host address each, random source port), so
    // each creates a binding: a mapping holding its first session (an
    // entry in NAPT_OUT and one in NAPT_IN; nothing in SESSIONS or FILTER).
    let per_round = args.new_per_round;
    if let Some(fresh) = &fresh {
        let new_hosts = |first: Ipv4Addr, seed: u64| {
            let mut flows = NewFlows::from(first, seed);
            Box::new(move |n: usize| flows.round(n)) as Box<dyn FnMut(usize) -> Vec<Vec<u8>>>
        };
        cases.push(
            new_binding_case(
                "egress_new_binding",
                "egress TC (xnat_egress_tc), new UDP flow: creates a binding",
                fresh,
                per_round,
                new_hosts(NEW_HOSTS.0, 0x9e37_79b9_7f4a_7c15),
                &[],
            )
            .against("baseline_new_binding"),
        );
        if let Some(det) = &fresh_det {
            cases.push(new_binding_case(
                "egress_new_binding_deterministic",
                "egress TC (xnat_egress_tc), new UDP flow, deterministic allocation: creates a binding in the host's range",
                det,
                per_round,
                new_hosts(NEW_HOSTS.0, 0x9e37_79b9_7f4a_7c15),
                &[],
            ));
        }
        if let Some(blk) = &fresh_block {
            let mut flows = HostFlows {
                first: u32::from(BLOCK_HOSTS.0),
                hosts: BLOCK_HOSTS.1,
                sent: 0,
            };
            cases.push(
                new_binding_case(
                    "egress_new_binding_block",
                    "egress TC (xnat_egress_tc), new UDP flow, block allocation: a binding in the block its host holds (1 flow in 4096 claims its host's first block)",
                    blk,
                    per_round,
                    Box::new(move |n| flows.round(n)),
                    &[],
                )
                .against("egress_new_binding"),
            );
            cases.push(
                new_binding_case(
                    "egress_new_binding_block_claim",
                    "egress TC (xnat_egress_tc), new UDP flow of a new host, block allocation: claims a block, then a binding in it",
                    blk,
                    BLOCK_CLAIMS_PER_ROUND.min(per_round),
                    new_hosts(BLOCK_CLAIMS_FROM, 0x2545_f491_4f6c_dd1d),
                    &[Counter::NaptBlocksAllocated],
                )
                .against("egress_new_binding"),
            );
        }
        // The same for the minimal NAT (its own hosts, tables as large):
        // the floor of a new binding on this machine.
        let mut new_flows = NewFlows::from(Ipv4Addr::new(10, 192, 0, 0), 0x2545_f491_4f6c_dd1d);
        cases.push(Case::new(
            "baseline_new_binding",
            "minimal NAT (xnat_baseline_new_tc), new UDP flow: creates a binding",
            Prog::BaselineNewTc,
            Method::Loop,
            BULK,
            Box::new(move || {
                let frames = new_flows.round(per_round);
                let before = fresh.baseline_out_len()?;
                let expect = Expect {
                    verdict: Some(Prog::BaselineNewTc.pass()),
                    ..Default::default()
                };
                let s = measure::each(
                    fresh,
                    Prog::BaselineNewTc,
                    &frames,
                    &expect,
                    "baseline_new_binding",
                )?;
                let made = fresh.baseline_out_len()? - before;
                anyhow::ensure!(
                    made == frames.len(),
                    "baseline_new_binding: {made} bindings made for {} new flows",
                    frames.len()
                );
                Ok(s)
            }),
        ));
    }

    // Pass-through: IPv4 that is not xnat's. Inbound: UDP to a pool address
    // on a port without a mapping (the deepest miss: static table, CONFIG,
    // NAPT_IN). Outbound: a source outside --internal (the gateway's own).
    let pass = [
        (
            "pass_ingress_xdp",
            "ingress XDP, pass-through (UDP to an unmapped pool port)",
            Prog::IngressXdp,
            flows::udp(
                Ep::new(Ipv4Addr::new(198, 19, 255, 9), 53),
                Ep::new(Ipv4Addr::new(198, 18, 0, 5), 9),
            ),
        ),
        (
            "pass_egress_tc",
            "egress TC, pass-through (source not inside: the gateway's own)",
            Prog::EgressTc,
            flows::udp(
                Ep::new(Ipv4Addr::new(192, 0, 2, 77), 5000),
                Ep::new(Ipv4Addr::new(198, 19, 255, 9), 53),
            ),
        ),
    ];
    for (id, label, prog, frame) in pass {
        let expect = Expect {
            each: vec![Counter::PassedNotOurs],
            unchanged: vec![Counter::IngressTranslated, Counter::EgressTranslated],
            verdict: Some(prog.pass()),
        };
        cases.push(Case::new(
            id,
            label,
            prog,
            Method::Repeat,
            BULK,
            Box::new(move || measure::repeat(inst, prog, &frame, repeat, &expect, id)),
        ));
    }

    if let (Some(fib), Some(fast)) = (&fib, &fast) {
        nat64_cases(&mut cases, inst, fast, fib, args.loop_calls);
    }

    if args.established_only {
        // The repeated runs of one established flow: ids `noop` (and
        // `noop_loop`, which the suite needs beside it),
        // `xnat_<program>_<proto>` (new bindings and pass-through cases
        // have other ids).
        cases.retain(|c| c.id == NOOP || c.id == NOOP_LOOP || c.id.starts_with("xnat_"));
    }
    let results = suite::run("per-packet", args.runs, &mut cases)?;
    drop(cases);
    let block_tables = match &fresh_block {
        Some(i) => i.block_memory()?,
        None => Value::Null,
    };
    let nat64 = match &fib {
        Some(_) => json!({
            "prefix": format!("{}/{}", std::net::Ipv6Addr::from(nat64::PREFIX.0), nat64::PREFIX.1),
            "host": nat64::HOST.to_string(),
            "server": nat64::SERVER.to_string(),
            "server6": nat64::embedded(nat64::SERVER).to_string(),
            "stand_in": nat64::FLOWS[0].nat44().inside.addr.to_string(),
        }),
        None => Value::Null,
    };
    Ok(json!({
        "bindings": BULK,
        "cases": results,
        "block_tables": block_tables,
        "nat64": nat64,
    }))
}

/// Section 2: the established-flow figures at each scale, map memory, and
/// the expiry sweep at the largest scale.
fn scale(args: &Args) -> Result<Value> {
    let mut instances = Vec::new();
    for &n in &args.scales {
        let cap = Capacity {
            mappings: n + CYCLE_ENTRIES,
            sessions: n + CYCLE_ENTRIES,
        };
        instances.push((n, load_filled(n, cap)?));
    }

    let mut memory = Vec::new();
    for (n, inst) in &instances {
        let mut maps = Vec::new();
        let mut total = 0;
        for m in inst.binding_memory()? {
            total += m.memlock;
            maps.push(json!({"name": m.name, "max_entries": m.max_entries, "memlock": m.memlock}));
        }
        memory.push(json!({
            "bindings": n,
            "maps": maps,
            "total_bytes": total,
            "bytes_per_binding": total as f64 / *n as f64,
        }));
    }

    let mut cases = baselines(&instances[0].1, args);
    let repeat = args.repeat;
    for (n, inst) in &instances {
        let n = *n;
        for (prog, hook) in [
            (Prog::IngressXdp, "ingress XDP"),
            (Prog::IngressTc, "ingress TC"),
            (Prog::EgressTc, "egress TC"),
        ] {
            cases.push(hot(
                inst,
                format!("hot_{}@{n}", prog.name()),
                format!("{hook}, one established UDP flow (hot in cache)"),
                prog,
                &CYCLE_UDP,
                n,
                repeat,
            ));
        }
        // A different established flow every packet, picked at random among
        // all n: the lookups miss the CPU caches as real traffic would.
        for (prog, hook) in [
            (Prog::IngressXdp, "ingress XDP"),
            (Prog::EgressTc, "egress TC"),
            (Prog::BaselineXdp, "minimal NAT, inbound XDP"),
            (Prog::BaselineTc, "minimal NAT, outbound TC"),
        ] {
            let mut rng = Rng::new(0x2545_f491_4f6c_dd1d ^ n as u64);
            let calls = args.loop_calls;
            let id = format!("random_{}@{n}", prog.name());
            let what = id.clone();
            cases.push(Case::new(
                id,
                format!("{hook}, random established UDP flow among all bindings"),
                prog,
                Method::Loop,
                n,
                Box::new(move || {
                    let frames: Vec<Vec<u8>> = (0..calls)
                        .map(|_| {
                            let f = flows::bulk(rng.below(n));
                            if prog.outbound() {
                                flows::outbound_frame(&f)
                            } else {
                                flows::inbound_frame(&f)
                            }
                        })
                        .collect();
                    // The minimal NAT has no counters: the bulk check at
                    // load proved its lookups hit.
                    let expect = if Prog::BASELINE.contains(&prog) {
                        pass_expect(prog)
                    } else {
                        established(prog)
                    };
                    measure::each(inst, prog, &frames, &expect, &what)
                }),
            ));
        }
    }
    let results = suite::run("scale", args.runs, &mut cases)?;
    drop(cases);

    // The sweep runs on the largest instance, alone (the others are freed).
    let (largest, mut inst) = instances.pop().expect("at least one scale");
    drop(instances);
    let pin_dir = PathBuf::from(format!("/sys/fs/bpf/xnat-bench-{}", std::process::id()));
    // --sweep-runs 0 skips it (quick looks at the per-packet figures).
    let sweep = if args.sweep_runs == 0 {
        Value::Null
    } else {
        sweep::run(&mut inst, largest, args.sweep_runs, &pin_dir)?
    };

    Ok(json!({
        "scales": args.scales,
        "cases": results,
        "memory": memory,
        "sweep": sweep,
    }))
}

#[cfg(test)]
mod args_tests {
    use super::parse_args_from;

    fn parse(args: &str) -> super::Args {
        parse_args_from(std::iter::once("xnat-bench").chain(args.split_whitespace()))
            .unwrap_or_else(|e| panic!("{args}: {e}"))
    }

    fn usage_error(args: &str) -> bool {
        parse_args_from(std::iter::once("xnat-bench").chain(args.split_whitespace()))
            .is_err_and(|e| e.exit_code() == 2)
    }

    /// Runs, repeat, loop calls, new flows per round, sweep runs.
    fn sizes(a: &super::Args) -> (usize, u32, usize, usize, usize) {
        (
            a.runs,
            a.repeat,
            a.loop_calls,
            a.new_per_round,
            a.sweep_runs,
        )
    }

    #[test]
    fn defaults() {
        let a = parse("");
        assert_eq!(sizes(&a), (5, 1_000_000, 100_000, 50_000, 5));
        assert_eq!(a.scales, [1_000, 100_000, 1_000_000]);
        assert!(a.out.is_none());
        assert!(!a.established_only);
        assert!(parse("--established-only --quick").established_only);
    }

    #[test]
    fn scales_take_underscores_and_spaces() {
        assert_eq!(parse("--scales 1_000,100_000").scales, [1_000, 100_000]);
        assert_eq!(parse("--scales 7").scales, [7]);
        // The last --scales wins, as with every flag.
        assert_eq!(parse("--scales 1,2 --scales 3").scales, [3]);
        let a = parse_args_from(["xnat-bench", "--scales", " 1_000, 2000"]).unwrap();
        assert_eq!(a.scales, [1_000, 2_000]);
        assert!(usage_error("--scales 1,x"));
        assert!(usage_error("--scales 1,"));
    }

    #[test]
    fn quick_overrides_what_comes_before_it_only() {
        let a = parse("--quick");
        assert_eq!(sizes(&a), (3, 200_000, 20_000, 10_000, 2));
        assert_eq!(a.scales, [1_000, 100_000]);
        let a = parse("--quick --scales 1000 --sweep-runs 0 --runs 9");
        assert_eq!(
            (a.scales.as_slice(), a.sweep_runs, a.runs),
            (&[1_000][..], 0, 9)
        );
        assert_eq!(a.repeat, 200_000);
        let a = parse("--scales 1000 --runs 9 --quick --repeat 7");
        assert_eq!(
            (a.scales.as_slice(), a.runs, a.repeat),
            (&[1_000, 100_000][..], 3, 7)
        );
        // A second --quick counts from where it stands.
        assert_eq!(parse("--quick --runs 9 --quick").runs, 3);
        // The preset applies before the checks.
        assert_eq!(parse("--runs 0 --quick").runs, 3);
    }

    #[test]
    fn bad_usage_exits_2() {
        for bad in [
            "--runs 0",
            "--repeat 0",
            "--loop-calls 0",
            "--quick --runs 0",
            "--runs x",
            "--bogus",
            "--out",
        ] {
            assert!(usage_error(bad), "{bad}");
        }
        assert_eq!(parse("--out /tmp/x --new-per-round 0").new_per_round, 0);
    }
}
