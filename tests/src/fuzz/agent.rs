//! The agent's own code on the maps the frames run on (issue 20): a second
//! thread runs nat-userspace's real expiry sweep
//! ([`nat_userspace::agent::expiry::Sweeper::sweep`], with timeouts of seconds
//! and a clock a few seconds ahead, so things expire), `xnat flows flush`
//! ([`nat_userspace::tables::flush::flush`]) and a reload
//! ([`nat_userspace::settings::reconcile`]: `read_live`, `plan`, `apply`, as SIGHUP
//! does) against the copy of the object the frames run on, its maps
//! pinned in a bpffs directory of their own. What each operation must do
//! is [`crate::model::agent`].
//!
//! Two modes, and what each proves:
//!
//! * [`Mode::Interleaved`]: before a frame, now and then (the seeded
//!   generator decides when and what), the second thread runs one
//!   operation while the frames wait. The maps it leaves must be exactly
//!   what the model of the operation says (and a reload must be refused,
//!   fail or apply when the model says so), and the frames that follow are
//!   predicted from them. It proves the agent's operations are right on
//!   their own and that the data plane handles every state they leave; it
//!   says nothing about an operation and a packet at the same time.
//! * [`Mode::Concurrent`]: now and then an operation is started alongside
//!   a frame: each side waits a random while, or the frame waits for the
//!   operation to start and then a random part of what such operations
//!   take, so the operation lands before, after or across the frame's run
//!   (truly concurrent: on another CPU when one is free). Each such frame
//!   is judged against both orders — the frame, then the operation on the
//!   state it left; or the operation, then the frame on its result — and
//!   by the clock: an operation that ended before the frame started must
//!   match the second order, one that started after it ended the first.
//!   One that overlapped the frame may match either; if it matches
//!   neither, the frame saw (or left) a state that neither order gives: a
//!   *race*. It is named by the step of the operation whose state the
//!   frame's outcome matches ([`crate::model::agent`] has each operation's
//!   steps, in the agent's order), or by the count (`HOST_PORTS`,
//!   `INBOUND_SESSIONS`) the operation wrote from reads older than the
//!   frame's change, and listed with the frame, the operation and a repro
//!   of the state the frame met; a race nothing explains is a mismatch. It
//!   proves that any outcome outside those two orders gets caught when it
//!   happens; whether a given interleaving happens depends on timing, so a
//!   run finds races by chance and a seed does not replay one. Frames of
//!   which the model could not learn the allocator's choice if the
//!   operation deleted the new mapping are not run alongside (see
//!   [`Agent::launch`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use nat_common::nat64::Nat64Config;
use nat_common::{EndpointKey, NatConfig};
use nat_userspace::settings::Settings;
use nat_userspace::settings::napt::Filtering;
use nat_userspace::settings::napt::{NaptSettings, Prefix};
use nat_userspace::tables::forward::Proto;
use nat_userspace::{loader::Limits, settings::HookMode};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::compare::Window;
use super::frames::Case;
use super::skb::Csum;
use super::target::Target;
use super::world::{INSIDE, INTERNAL, POOL, PORTS, RANGES, STATIC, STATIC64};
use crate::bpf::{Hook, Outcome};
use crate::frame::hex_dump;
use crate::model::agent::{self as spec, FlushFilter, Reload, Reloaded};
use crate::model::{Allocation, Oracle, Prediction, State, parse};
use crate::napt_maps::{be, dataplane_now_ns, ip};

/// How the agent's code runs alongside the frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Not at all (the fuzzer's own simulated sweeps only).
    #[default]
    Off,
    /// Between frames, at points the seeded generator picks.
    Interleaved,
    /// Alongside frames, in a thread of its own.
    Concurrent,
}

/// Chance, before a frame, that an interleaved operation runs.
const INTERLEAVED_CHANCE: f64 = 0.05;
/// Chance that an operation is started alongside a frame.
const CONCURRENT_CHANCE: f64 = 0.2;
/// Each side waits up to this many µs before it starts.
const SKEW_US: u64 = 300;
/// Share of concurrent operations whose frame waits for the operation to
/// start, then part of the time operations of its kind have been taking:
/// most then land inside the operation; the rest fall where the skews put
/// them.
const INSIDE_CHANCE: f64 = 0.75;
/// The sweep's timeouts (s) and how far ahead of the data plane's clock it
/// runs (s): every binding of an epoch is stamped within a fraction of a
/// second, so an age lands a second or more from any timeout.
const SWEEP_TIMEOUTS: [u32; 3] = [2, 4, 6];
const SWEEP_AHEAD: [u64; 4] = [0, 3, 5, 7];

/// One of the agent's operations.
#[derive(Clone, Debug)]
pub enum Op {
    /// An expiry sweep with these timeouts at this time (CLOCK_BOOTTIME).
    Sweep {
        cfg: NatConfig,
        now: u64,
    },
    Flush(FlushFilter),
    Reload(Reload),
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Sweep { .. } => "sweep",
            Op::Flush(_) => "flush",
            Op::Reload(_) => "reload",
        }
    }

    /// What the operation may leave of `st` (`stamp` stands for the data
    /// plane's `NOW` in it): what the model says it must, and for a reload
    /// that fails, also what a known defect leaves.
    fn effects(&self, st: &State, stamp: u64) -> Vec<Effect> {
        let done = |state| Effect {
            state,
            result: Ended::Done,
            known: None,
        };
        match self {
            Op::Sweep { cfg, now } => vec![done(spec::sweep(st, cfg, *now, stamp))],
            Op::Flush(f) => vec![done(spec::flush(st, *f))],
            Op::Reload(r) => match spec::reload(st, r) {
                (state, Reloaded::Applied) => vec![done(state)],
                (state, Reloaded::Refused(why)) => {
                    let mut v = vec![Effect {
                        state,
                        result: Ended::Refused(why),
                        known: None,
                    }];
                    if let Some((state, why)) = spec::reload_part_way(st, r) {
                        v.push(Effect {
                            state,
                            result: Ended::Failed(why),
                            known: Some(KNOWN_AGENT_DEFECTS[0].0),
                        });
                    }
                    v
                }
            },
        }
    }

    /// The states the operation passes through on `st`, step by step.
    fn phases(&self, st: &State, stamp: u64) -> Vec<(&'static str, State)> {
        match self {
            Op::Sweep { cfg, now } => spec::sweep_phases(st, cfg, *now, stamp),
            Op::Flush(f) => spec::flush_phases(st, *f),
            Op::Reload(r) => spec::reload_phases(st, r),
        }
    }
}

/// Defects of the agent's code the agent modes found, not fixed yet: each
/// is recognised exactly (the maps are what the defective code leaves,
/// [`crate::model::agent::reload_part_way`]), counted by name and does
/// not fail a run. Delete an entry once the agent is fixed.
pub const KNOWN_AGENT_DEFECTS: [(&str, &str); 1] = [(
    "reload-fails-part-way",
    "a reload whose new forward finds its public endpoint taken in NAPT_IN (by an entry no \
     mapping points to, or one a packet made since the plan) or a mapping table full stops \
     there, with the forwards and static maps it removed gone and CONFIG rewritten: README \
     says a failed reload changes nothing (reconcile::plan checks NAPT_OUT only)",
)];

/// One thing an operation may leave.
struct Effect {
    state: State,
    result: Ended,
    /// The known defect this is, if one.
    known: Option<&'static str>,
}

/// How an operation ended.
#[derive(Clone, Debug)]
enum Ended {
    Done,
    /// A reload refused before changing anything.
    Refused(String),
    /// An error part way.
    Failed(String),
}

impl Ended {
    fn kind(&self) -> &'static str {
        match self {
            Ended::Done => "done",
            Ended::Refused(_) => "refused",
            Ended::Failed(_) => "failed",
        }
    }

    /// Whether it agrees with `real` on what happened: done, or not
    /// (refused, or failed having changed nothing: README's "a reload that
    /// fails changes nothing" either way); a known defect's failure must
    /// be a failure.
    fn agrees(&self, real: &Ended, known: bool) -> bool {
        match (self, real) {
            (Ended::Done, Ended::Done) => true,
            (Ended::Failed(_), Ended::Failed(_)) if known => true,
            (Ended::Refused(_), Ended::Refused(_) | Ended::Failed(_)) => !known,
            _ => false,
        }
    }

    fn show(&self) -> String {
        match self {
            Ended::Done => "done".into(),
            Ended::Refused(e) => format!("refused: {e}"),
            Ended::Failed(e) => format!("failed: {e}"),
        }
    }
}

struct Job {
    dir: PathBuf,
    op: Op,
    limits: Limits,
    /// Start no earlier than this (CLOCK_BOOTTIME ns).
    at: u64,
}

/// A finished operation: how it ended, and when it ran.
struct Done {
    result: Ended,
    /// A sweep that walked the mappings in the kernel (`xnat_expire`).
    in_kernel: bool,
    start: u64,
    end: u64,
}

/// The second thread: runs each job's operation with nat-userspace's code.
fn agent_thread(jobs: mpsc::Receiver<Job>, done: mpsc::Sender<Done>, started: Arc<AtomicU64>) {
    while let Ok(job) = jobs.recv() {
        while dataplane_now_ns() < job.at {
            std::thread::yield_now();
        }
        let start = dataplane_now_ns();
        started.store(start, Ordering::Release);
        let (result, in_kernel) = execute(&job.dir, &job.op, job.limits);
        let end = dataplane_now_ns();
        let d = Done {
            result,
            in_kernel,
            start,
            end,
        };
        if done.send(d).is_err() {
            return;
        }
    }
}

/// Runs `op`; whether it was a sweep that walked in the kernel.
fn execute(dir: &Path, op: &Op, limits: Limits) -> (Ended, bool) {
    if let Op::Sweep { cfg, now } = op {
        // A sweeper of its own each time: its first sweep never scans for
        // orphans. Every other one walks in the kernel (`--expiry-walk
        // kernel`), unless the configuration needs the mappings listed (a
        // per-host cap, pinned hosts).
        static SWEEPS: AtomicU64 = AtomicU64::new(0);
        let kernel = SWEEPS.fetch_add(1, Ordering::Relaxed) % 2 == 1;
        return match nat_userspace::agent::expiry::Sweeper::open(dir)
            .and_then(|s| s.walking_in_kernel(kernel).sweep(cfg, *now))
        {
            Ok(r) => (Ended::Done, r.in_kernel),
            Err(e) => (Ended::Failed(format!("{e:#}")), false),
        };
    }
    (execute_other(dir, op, limits), false)
}

fn execute_other(dir: &Path, op: &Op, limits: Limits) -> Ended {
    let failed = |e: anyhow::Error| Ended::Failed(format!("{e:#}"));
    match op {
        Op::Sweep { .. } => unreachable!("sweeps run in execute"),
        Op::Flush(f) => {
            let filter = nat_userspace::tables::flush::Filter {
                proto: f.proto,
                inside: f.inside.map(|a| ip(a).into()),
            };
            match nat_userspace::tables::flush::flush(dir, filter) {
                Ok(_) => Ended::Done,
                Err(e) => failed(e),
            }
        }
        Op::Reload(r) => {
            let live = match nat_userspace::settings::reconcile::read_live(dir) {
                Ok(l) => l,
                Err(e) => return failed(e),
            };
            let plan = match nat_userspace::settings::reconcile::plan(&live, &settings(r, limits)) {
                Ok(p) => p,
                Err(e) => return Ended::Refused(format!("{e:#}")),
            };
            match nat_userspace::settings::reconcile::apply(dir, &live, &plan) {
                Ok(()) => Ended::Done,
                Err(e) => failed(e),
            }
        }
    }
}

/// The settings a config file would give for `r` (as `xnat reload` has
/// them after parsing and validation).
pub fn settings(r: &Reload, limits: Limits) -> Settings {
    let c = &r.config;
    let forwards = r
        .forwards
        .iter()
        .map(|f| nat_userspace::tables::forward::Forward {
            proto: Proto::from_number(f.public.proto).expect("TCP or UDP"),
            public: (ip(f.public.addr), u16::from_be(f.public.port)),
            inside: (ip(f.inside.addr), u16::from_be(f.inside.port)),
        })
        .collect();
    Settings {
        ifname: "xfz-none".into(),
        ingress: HookMode::Auto,
        inside: Vec::new(),
        inside_hook: HookMode::Auto,
        xdp_redirect: Vec::new(),
        keep: false,
        fast_path: false,
        static_maps: r.static_maps.iter().map(|&(p, q)| (ip(p), ip(q))).collect(),
        // CONFIG's fields through the product's own conversion.
        napt: NaptSettings::from_config(
            c,
            &POOL,
            &[Prefix {
                addr: INTERNAL.0,
                len: INTERNAL.1 as u8,
            }],
        ),
        limits,
        forwards,
        metrics: None,
        log_bindings: None,
        ipfix: None,
        expiry_walk: Default::default(),
        sync: None,
        nat64: (r.nat64.enabled != 0).then(|| nat_userspace::settings::nat64::Nat64Settings {
            prefix: nat_userspace::settings::nat64::Nat64Prefix::new(
                std::net::Ipv6Addr::from(r.nat64.prefix),
                r.nat64.prefix_len,
            )
            .expect("an RFC 6052 prefix"),
            maps: r
                .nat64_maps
                .iter()
                .map(|(h, p)| (std::net::Ipv6Addr::from(*h), ip(*p)))
                .collect(),
            host_prefix: r.nat64.host_prefix,
        }),
    }
}

/// What the agent's operations did in a run.
#[derive(Clone, Debug, Default)]
pub struct AgentReport {
    pub mode: Mode,
    /// Operations run, by name and how they ended.
    pub ops: BTreeMap<String, u64>,
    /// Concurrent operations that ended before their frame started,
    /// started after it ended, or overlapped it.
    pub before: u64,
    pub after: u64,
    pub overlapped: u64,
    /// Overlapping ones whose frame matched the order "operation first",
    /// "frame first" (both: counted as the first).
    pub overlapped_op_first: u64,
    pub overlapped_frame_first: u64,
    /// Races: by name, how often, and the first one in full.
    pub races: BTreeMap<String, (u64, String)>,
    /// Operations that met a defect of [`KNOWN_AGENT_DEFECTS`], by name.
    pub known: BTreeMap<&'static str, u64>,
}

impl AgentReport {
    pub fn summary(&self) -> String {
        if self.mode == Mode::Off {
            return String::new();
        }
        let ops: Vec<String> = self.ops.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let mut s = format!("agent ({:?}): {}", self.mode, ops.join(", "));
        for (name, n) in &self.known {
            let _ = write!(s, "; known defect {name} {n} times");
        }
        if self.mode == Mode::Concurrent {
            let _ = write!(
                s,
                "; alongside frames: {} ended before, {} started after, {} overlapped ({} as if first, {} as if after the frame), {} race(s)",
                self.before,
                self.after,
                self.overlapped,
                self.overlapped_op_first,
                self.overlapped_frame_first,
                self.races.values().map(|(n, _)| n).sum::<u64>()
            );
            for (name, (n, _)) in &self.races {
                let _ = write!(s, "\n  race ×{n}: {name}");
            }
        }
        s
    }
}

/// A pinned copy of each target's maps.
struct Pins {
    dirs: Vec<PathBuf>,
}

impl Pins {
    fn new(targets: &[Target], seed: u64) -> Result<Pins> {
        nat_userspace::tables::bpffs::ensure_mounted()?;
        let mut pins = Pins { dirs: Vec::new() };
        for (i, t) in targets.iter().enumerate() {
            // Unique in the process too: tests run fuzzers in parallel.
            static RUNS: AtomicU64 = AtomicU64::new(0);
            let dir = PathBuf::from(format!(
                "/sys/fs/bpf/xnat-fuzz-{}-{}-{}-{i}",
                std::process::id(),
                seed % 100_000,
                RUNS.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            pins.dirs.push(dir.clone());
            t.pin_maps(&dir)?;
        }
        Ok(pins)
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        for d in &self.dirs {
            if let Err(e) = std::fs::remove_dir_all(d) {
                eprintln!("warning: removing {}: {e}", d.display());
            }
        }
    }
}

/// An operation started alongside a frame.
pub struct InFlight {
    op: Op,
}

/// A finished one.
pub struct Landed {
    op: Op,
    done: Done,
}

/// The agent's side of a run.
pub struct Agent {
    mode: Mode,
    rng: ChaCha8Rng,
    pins: Pins,
    limits: Vec<Limits>,
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<Done>,
    /// When the operation in flight started (0: not yet).
    started: Arc<AtomicU64>,
    /// How long (ns) operations of each kind have been taking (a moving
    /// average).
    took: BTreeMap<&'static str, u64>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub report: AgentReport,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The allocator's choice for a frame run alongside an operation: from the
/// maps, or, when the operation deleted the new mapping again, from the
/// translated frame itself (its new source endpoint).
struct Alloc<'a> {
    before: &'a State,
    after: &'a State,
    table_full: bool,
    from_output: Option<(u32, u16)>,
    /// What the program sent, if anything.
    output: Option<&'a [u8]>,
}

impl Oracle for Alloc<'_> {
    fn allocation(&self, inside: &EndpointKey) -> Allocation {
        match (
            self.before.napt_out.get(inside),
            self.after.napt_out.get(inside),
        ) {
            (None, Some(m)) => Allocation::Mapped {
                addr: m.addr,
                port: m.port,
            },
            _ if self.table_full => Allocation::TableFull,
            _ => match self.from_output {
                Some((addr, port)) => Allocation::Mapped { addr, port },
                None => Allocation::Failed,
            },
        }
    }

    fn claimed_block(&self, host: u32) -> Option<nat_common::blocks::BlockKey> {
        self.before.claimed_block(self.after, host)
    }

    fn nat64_id(&self) -> [u8; 2] {
        super::ipv4_id(self.output)
    }
}

/// The public endpoint an outbound frame left with, if it was translated
/// (its source address changed; for an IPv6 frame NAT64 translated, it is
/// no stand-in any more).
fn allocated_in_output(hook: Hook, input: &[u8], output: &[u8]) -> Option<(u32, u16)> {
    let nat64 = hook == Hook::InsideTc && parse::ethertype(input) == Some(parse::ETH_P_IPV6);
    if hook != Hook::EgressTc && !nat64 {
        return None;
    }
    let b = parse::outer(output)?;
    let translated = if nat64 {
        !crate::model::nat64::is_stand_in(b.src)
    } else {
        parse::outer(input)?.src != b.src
    };
    if !translated || b.later_fragment {
        return None;
    }
    let l4 = b.l4();
    let at = match b.proto {
        parse::TCP | parse::UDP => l4,
        parse::ICMP => l4 + 4,
        _ => return None,
    };
    (at + 2 <= output.len()).then(|| (b.src, u16::from_ne_bytes([output[at], output[at + 1]])))
}

/// Differences in what a reload rewrites: the configuration and the
/// static tables.
fn settings_problems(want: &State, got: &State) -> Vec<String> {
    let mut out = Vec::new();
    if want.config != got.config {
        out.push(format!(
            "CONFIG\n      model:   {:?}\n      program: {:?}",
            want.config, got.config
        ));
    }
    if want.nat64 != got.nat64 {
        out.push(format!(
            "NAT64\n      model:   {:?}\n      program: {:?}",
            want.nat64, got.nat64
        ));
    }
    if want.static_out != got.static_out || want.static_in != got.static_in {
        out.push(format!(
            "static tables: model {:?}, maps {:?}",
            want.static_out, got.static_out
        ));
    }
    out
}

impl Agent {
    /// The agent's thread and the pinned maps of `targets`, or `None` for
    /// [`Mode::Off`].
    pub fn start(mode: Mode, targets: &[Target], seed: u64) -> Result<Option<Agent>> {
        if mode == Mode::Off {
            return Ok(None);
        }
        let pins = Pins::new(targets, seed)?;
        let (jobs, job_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let started = Arc::new(AtomicU64::new(0));
        let flag = Arc::clone(&started);
        let thread = std::thread::Builder::new()
            .name("xnat-fuzz-agent".into())
            .spawn(move || agent_thread(job_rx, done_tx, flag))?;
        let limits = targets
            .iter()
            .map(|t| Limits {
                max_mappings: t.capacity().napt_out as u32,
                max_sessions: t.capacity().sessions as u32,
            })
            .collect();
        Ok(Some(Agent {
            mode,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xbb67_ae85_84ca_a73b),
            pins,
            limits,
            jobs: Some(jobs),
            done,
            started,
            took: BTreeMap::new(),
            thread: Some(thread),
            report: AgentReport {
                mode,
                ..AgentReport::default()
            },
        }))
    }

    /// An operation for state `st`, picked by the seeded generator.
    fn pick(&mut self, st: &State) -> Op {
        let r = &mut self.rng;
        match r.random_range(0..10) {
            0..=3 => {
                let mut cfg = st.config;
                cfg.timeout_udp = *SWEEP_TIMEOUTS.choose(r).unwrap();
                cfg.timeout_tcp_established = *SWEEP_TIMEOUTS.choose(r).unwrap();
                cfg.timeout_tcp_transitory = *SWEEP_TIMEOUTS.choose(r).unwrap();
                cfg.timeout_icmp = *SWEEP_TIMEOUTS.choose(r).unwrap();
                cfg.timeout_tcp_syn_in = *SWEEP_TIMEOUTS.choose(r).unwrap();
                let ahead = *SWEEP_AHEAD.choose(r).unwrap();
                Op::Sweep {
                    cfg,
                    now: dataplane_now_ns() + ahead * 1_000_000_000,
                }
            }
            4..=6 => {
                let inside = *[
                    None,
                    None,
                    Some(INSIDE[0]),
                    Some(INSIDE[1]),
                    Some(STATIC[0].0),
                ]
                .choose(r)
                .unwrap();
                Op::Flush(FlushFilter {
                    proto: *[None, None, Some(6), Some(17), Some(1)].choose(r).unwrap(),
                    inside: inside.map(be),
                })
            }
            _ => Op::Reload(self.pick_reload(st)),
        }
    }

    /// A configuration to reload to: new NAPT parameters, a subset of the
    /// static maps, some of the forwards in force and maybe new ones.
    fn pick_reload(&mut self, st: &State) -> Reload {
        let r = &mut self.rng;
        let mut config = crate::napt_maps::default_config();
        config.pool_len = POOL.len() as u32;
        config.filtering = [
            Filtering::EndpointIndependent,
            Filtering::Address,
            Filtering::AddressAndPort,
        ]
        .choose(r)
        .unwrap()
        .code();
        (config.port_min, config.port_max) = *RANGES.choose(r).unwrap();
        config.max_ports_per_host = *[0, 0, 2, 3].choose(r).unwrap();
        config.max_inbound_sessions = *[0, 0, 1, 3].choose(r).unwrap();
        let static_maps = STATIC
            .iter()
            .filter(|_| r.random_bool(0.7))
            .map(|&(p, q)| (be(p), be(q)))
            .collect();
        let mut forwards: Vec<spec::Forward> = spec::forwards(st)
            .into_iter()
            .filter(|_| r.random_bool(0.6))
            .collect();
        for _ in 0..r.random_range(0..3) {
            let proto = *[6u8, 17].choose(r).unwrap();
            let port = |r: &mut ChaCha8Rng| loop {
                let p = *PORTS.choose(r).unwrap();
                if p != 0 {
                    return p.to_be();
                }
            };
            let f = spec::Forward {
                public: EndpointKey {
                    addr: be(*POOL.choose(r).unwrap()),
                    port: port(r),
                    proto,
                    _pad: 0,
                },
                inside: EndpointKey {
                    addr: be(*INSIDE.choose(r).unwrap()),
                    port: port(r),
                    proto,
                    _pad: 0,
                },
            };
            // A config names a public or inside endpoint once.
            if forwards
                .iter()
                .all(|g| g.public != f.public && g.inside != f.inside)
            {
                forwards.push(f);
            }
        }
        let (nat64, nat64_maps) = self.pick_nat64(st);
        Reload {
            config,
            static_maps,
            forwards,
            nat64,
            nat64_maps,
        }
    }

    /// NAT64 to reload to: mostly as it is (its prefix, its static
    /// entries), else switched off, another prefix, or the static NAT64
    /// entry added or removed (added only where the stand-in tables have
    /// room: a full one fails the reload).
    fn pick_nat64(&mut self, st: &State) -> (Nat64Config, Vec<([u8; 16], u32)>) {
        let r = &mut self.rng;
        let on = st.nat64.enabled != 0;
        let mut cfg = if on { st.nat64 } else { Nat64Config::default() };
        let mut maps: Vec<([u8; 16], u32)> = if on {
            spec::nat64_maps(st)
                .into_iter()
                .filter(|(h, ..)| *h != [0; 16])
                .map(|(h, p, _)| (h, p))
                .collect()
        } else {
            Vec::new()
        };
        match r.random_range(0..10) {
            0 => {
                cfg = Nat64Config::default();
                maps.clear();
            }
            1 => {
                cfg = super::world::nat64_config(r);
                cfg.enabled = 1;
            }
            3 if on => cfg.host_prefix = *super::world::HOST_PREFIXES.choose(r).unwrap(),
            2 if on => {
                let entry = (STATIC64.0.octets(), be(STATIC64.2));
                if let Some(i) = maps.iter().position(|e| *e == entry) {
                    maps.remove(i);
                } else if st.capacity.nat64 > 64 && !st.nat64_hosts.contains_key(&entry.0) {
                    maps.push(entry);
                }
            }
            _ => {}
        }
        // What reconcile writes for the settings' inside interfaces: none
        // here, so no MTU known.
        if cfg.enabled != 0 {
            cfg.inside_mtu = 0;
        }
        (cfg, maps)
    }

    fn send(&self, cur: usize, op: &Op, at: u64) -> Result<()> {
        self.jobs
            .as_ref()
            .expect("running")
            .send(Job {
                dir: self.pins.dirs[cur].clone(),
                op: op.clone(),
                limits: self.limits[cur],
                at,
            })
            .map_err(|_| anyhow!("the agent thread is gone"))
    }

    fn wait(&self) -> Result<Done> {
        self.done
            .recv_timeout(Duration::from_secs(60))
            .map_err(|e| anyhow!("waiting for the agent thread: {e}"))
    }

    fn count(&mut self, op: &Op, done: &Done) {
        *self
            .report
            .ops
            .entry(format!("{} {}", op.name(), done.result.kind()))
            .or_default() += 1;
        if done.in_kernel {
            *self
                .report
                .ops
                .entry("sweep in the kernel".into())
                .or_default() += 1;
        }
    }

    /// [`Mode::Interleaved`]: now and then, one operation on `target`
    /// (number `cur`) while the frames wait; `st` becomes what it left.
    /// Returns a mismatch report if the maps differ from the model's
    /// account of the operation.
    pub fn between_frames(
        &mut self,
        i: u64,
        cur: usize,
        st: &mut State,
        target: &Target,
    ) -> Result<Option<String>> {
        if self.mode != Mode::Interleaved || !self.rng.random_bool(INTERLEAVED_CHANCE) {
            return Ok(None);
        }
        let op = self.pick(st);
        self.send(cur, &op, 0)?;
        let done = self.wait()?;
        self.count(&op, &done);
        let mut real = target.state(st)?;
        let settings_problem = target.read_settings(&mut real)?;
        let mut problems = Vec::new();
        for (n, e) in op.effects(st, 0).into_iter().enumerate() {
            let mut v: Vec<String> = settings_problem.iter().cloned().collect();
            if !e.result.agrees(&done.result, e.known.is_some()) {
                v.push(format!(
                    "the operation: model {}, real {}",
                    e.result.show(),
                    done.result.show()
                ));
            }
            v.extend(super::compare::states(
                &e.state,
                &real,
                &Window { t0: 0, t1: 0 },
            ));
            v.extend(settings_problems(&e.state, &real));
            if v.is_empty() {
                if let Some(name) = e.known {
                    *self.report.known.entry(name).or_default() += 1;
                }
                problems.clear();
                break;
            }
            if n == 0 {
                // Report against what the model says, not a known defect.
                problems = v;
            }
        }
        let text = (!problems.is_empty()).then(|| {
            let mut s = format!(
                "=== agent mismatch: before frame #{i}, {} ===\noperation: {op:?}\nreal: {}\n",
                op.name(),
                done.result.show()
            );
            for p in &problems {
                let _ = writeln!(s, "- {p}");
            }
            let _ = writeln!(s, "state before: {st:?}");
            s
        });
        real.paired = std::mem::take(&mut st.paired);
        *st = real;
        Ok(text)
    }

    /// [`Mode::Concurrent`]: now and then, starts an operation on target
    /// `cur` to run alongside the next frame (after a random wait, while
    /// this thread waits a random while too before the frame).
    ///
    /// Not alongside the first fragment of a datagram while later ones are
    /// held: releasing them replaces the frame with the last held one, so
    /// the new mapping's public port shows nowhere once the operation has
    /// deleted it again, and the model could not be told the allocator's
    /// choice. Nor alongside a CHECKSUM_COMPLETE run, which returns no
    /// output at all when it meets a known defect.
    pub fn launch(
        &mut self,
        cur: usize,
        st: &State,
        frame: &[u8],
        csum: Csum,
    ) -> Result<Option<InFlight>> {
        if self.mode != Mode::Concurrent || !self.rng.random_bool(CONCURRENT_CHANCE) {
            return Ok(None);
        }
        let op = self.pick(st);
        let (agent_wait, own_wait, inside, into) = (
            self.rng.random_range(0..=SKEW_US),
            self.rng.random_range(0..=SKEW_US),
            self.rng.random_bool(INSIDE_CHANCE),
            self.rng.random::<f64>(),
        );
        let took = self.took.get(op.name()).copied().unwrap_or(100_000);
        let into = (into * took as f64) as u64;
        if csum == Csum::Complete
            || !st.held.is_empty()
                && parse::outer(frame).is_some_and(|ip| ip.more_fragments && !ip.later_fragment)
        {
            return Ok(None);
        }
        self.started.store(0, Ordering::Release);
        let now = dataplane_now_ns();
        self.send(cur, &op, now + agent_wait * 1000)?;
        let until = if inside {
            // Wait for the operation to start (bounded: the thread may not
            // get a CPU for a while), then go a little into it.
            let give_up = now + 50_000_000;
            loop {
                let s = self.started.load(Ordering::Acquire);
                if s != 0 {
                    break s + into;
                }
                if dataplane_now_ns() > give_up {
                    break 0;
                }
                std::thread::yield_now();
            }
        } else {
            now + own_wait * 1000
        };
        while dataplane_now_ns() < until {
            std::thread::yield_now();
        }
        Ok(Some(InFlight { op }))
    }

    /// Waits for the operation started by [`Agent::launch`].
    pub fn land(&mut self, f: InFlight) -> Result<Landed> {
        let done = self.wait()?;
        self.count(&f.op, &done);
        let took = self
            .took
            .entry(f.op.name())
            .or_insert(done.end - done.start);
        *took = (*took * 7 + (done.end - done.start)) / 8;
        Ok(Landed { op: f.op, done })
    }

    /// Judges a frame run alongside operation `l` (see the module comment):
    /// `s0` the state before both, `real` after both, `outcome` what the
    /// program returned (none from a CHECKSUM_COMPLETE run that left
    /// `skb->csum` stale). Returns the problems
    /// of a frame whose order is known and that matches it not (a
    /// mismatch); a frame that overlapped and matches neither order is
    /// recorded as a race instead. Also returns the matching prediction's
    /// memory of paired pool addresses.
    #[allow(clippy::too_many_arguments)]
    pub fn judge(
        &mut self,
        seed: u64,
        i: u64,
        l: &Landed,
        s0: &State,
        case: &Case,
        csum: Csum,
        outcome: Option<&Outcome>,
        real: &State,
        settings_problem: Option<String>,
        before: &[u64; nat_common::stats::COUNTER_COUNT as usize],
        after: &[u64; nat_common::stats::COUNTER_COUNT as usize],
        events: &[Vec<u8>],
        w: &Window,
    ) -> (Vec<String>, std::collections::HashMap<u32, u32>) {
        let full = nat_common::Counter::DropMappingTableFull as usize;
        let table_full = after[full] > before[full];
        let from_output =
            outcome.and_then(|o| allocated_in_output(case.hook, &case.frame, &o.data));
        let problems = |p: &Prediction, e: &Effect| {
            let mut v = super::frame_problems(
                case.hook, p, &e.state, outcome, real, before, after, events, w,
            );
            // No output: the CHECKSUM_COMPLETE run left skb->csum stale,
            // which only the known defects may do (for this order's
            // account of the frame).
            if outcome.is_none() && super::skb::known_stale_csum(p).is_none() {
                v.push("CHECKSUM_COMPLETE: skb->csum left stale".into());
            }
            v.extend(settings_problems(&e.state, real));
            v.extend(settings_problem.clone());
            if !e.result.agrees(&l.done.result, e.known.is_some()) {
                v.push(format!(
                    "the operation: model {}, real {}",
                    e.result.show(),
                    l.done.result.show()
                ));
            }
            v
        };
        // The frame first, then the operation on what it left.
        let oracle = Alloc {
            before: s0,
            after: real,
            table_full,
            from_output,
            output: outcome.map(|o| o.data.as_slice()),
        };
        let pa = super::predict_known(s0, case.hook, &case.frame, csum, &oracle, w.t0);
        let frame_first: Vec<(Vec<String>, Option<&'static str>)> =
            l.op.effects(&pa.state, w.t0)
                .iter()
                .map(|e| (problems(&pa, e), e.known))
                .collect();
        // The operation first, then the frame on what it left.
        let mut op_first: Vec<(Vec<String>, Option<&'static str>, Prediction)> = Vec::new();
        for e in l.op.effects(s0, w.t0) {
            let oracle = Alloc {
                before: &e.state,
                after: real,
                table_full,
                from_output,
                output: outcome.map(|o| o.data.as_slice()),
            };
            let pb = super::predict_known(&e.state, case.hook, &case.frame, csum, &oracle, w.t0);
            let after_both = Effect {
                state: pb.state.clone(),
                result: e.result.clone(),
                known: e.known,
            };
            op_first.push((problems(&pb, &after_both), e.known, pb));
        }

        let d = &l.done;
        let header = |what: &str| {
            format!(
                "{what}: {} ({}) ran {}..{} ns, the frame {}..{} ns; {:?}",
                l.op.name(),
                d.result.show(),
                d.start,
                d.end,
                w.t0,
                w.t1,
                l.op
            )
        };
        let fits_frame_first = frame_first.iter().find(|(v, _)| v.is_empty());
        let fits_op_first = op_first.iter().find(|(v, ..)| v.is_empty());
        let mut known = |k: Option<&'static str>| {
            if let Some(name) = k {
                *self.report.known.entry(name).or_default() += 1;
            }
        };
        if d.end < w.t0 {
            self.report.before += 1;
            if let Some((_, k, pb)) = fits_op_first {
                known(*k);
                return (Vec::new(), pb.state.paired.clone());
            }
            let mut v = op_first[0].0.clone();
            v.insert(0, header("operation before the frame"));
            v.push(format!(
                "(model, operation first, via {}; NAPT_OUT before both {:?}; after the operation by the model {:?}; after both {:?})",
                crate::model::rules::path_text(&op_first[0].2.path),
                s0.napt_out,
                l.op.effects(s0, w.t0)[0].state.napt_out,
                real.napt_out
            ));
            return (v, op_first[0].2.state.paired.clone());
        }
        if d.start > w.t1 {
            self.report.after += 1;
            if let Some((_, k)) = fits_frame_first {
                known(*k);
                return (Vec::new(), pa.state.paired.clone());
            }
            let mut v = frame_first[0].0.clone();
            v.insert(0, header("operation after the frame"));
            return (v, pa.state.paired.clone());
        }
        self.report.overlapped += 1;
        if let Some((_, k, pb)) = fits_op_first {
            known(*k);
            self.report.overlapped_op_first += 1;
            return (Vec::new(), pb.state.paired.clone());
        }
        if let Some((_, k)) = fits_frame_first {
            known(*k);
            self.report.overlapped_frame_first += 1;
            return (Vec::new(), pa.state.paired.clone());
        }
        let (frame_first, op_first, pb) = (&frame_first[0].0, &op_first[0].0, &op_first[0].2);
        // Neither order: a race, if the frame met a state the operation
        // passes through, or the operation wrote what it had read before
        // the frame's change.
        let recounted = recount(&l.op, frame_first).or_else(|| recount(&l.op, op_first));
        let half_done = || {
            l.op.phases(s0, w.t0).into_iter().find_map(|(phase, mid)| {
                let oracle = Alloc {
                    before: &mid,
                    after: real,
                    table_full,
                    from_output,
                    output: outcome.map(|o| o.data.as_slice()),
                };
                let p = super::predict_known(&mid, case.hook, &case.frame, csum, &oracle, w.t0);
                // The frame's own outcome only: what the operation then
                // does with what the frame left follows from its reads.
                super::frame_problems(case.hook, &p, real, outcome, real, before, after, events, w)
                    .is_empty()
                    .then(|| {
                        let name = format!("{} half done ({phase}) met by a frame", l.op.name());
                        (name, mid, p)
                    })
            })
        };
        let (name, repro) = match recounted {
            Some(name) => (name, None),
            None => match half_done() {
                Some((name, mid, p)) => (name, Some((mid, p))),
                None => {
                    let mut v = vec![header(
                        "unexplained race, the operation overlapping the frame",
                    )];
                    v.push(format!(
                        "against \"frame, then operation\": {}",
                        frame_first.join("\n  ")
                    ));
                    v.push(format!(
                        "against \"operation, then frame\": {}",
                        op_first.join("\n  ")
                    ));
                    return (v, pa.state.paired.clone());
                }
            },
        };
        let mut text = format!(
            "=== race: seed {seed}, frame #{i}, {:?}: {name} ===\n{}\n",
            case.hook,
            header("overlapping")
        );
        let _ = writeln!(text, "operation: {:?}", l.op);
        let _ = writeln!(text, "generated: {}", case.what.join("; "));
        let _ = writeln!(
            text,
            "frame ({} bytes):\n{}",
            case.frame.len(),
            hex_dump(&case.frame, None)
        );
        let _ = writeln!(
            text,
            "against \"frame, then operation\" (model via {}):",
            crate::model::rules::path_text(&pa.path)
        );
        for p in frame_first {
            let _ = writeln!(text, "- {p}");
        }
        let _ = writeln!(
            text,
            "against \"operation, then frame\" (model via {}):",
            crate::model::rules::path_text(&pb.path)
        );
        for p in op_first {
            let _ = writeln!(text, "- {p}");
        }
        let (label, st, verdict, output) = match &repro {
            Some((mid, p)) => (
                format!(
                    "the frame on the state the operation passes through (model via {}), \
                     which reproduces what it met:",
                    crate::model::rules::path_text(&p.path)
                ),
                mid,
                p.verdict.code(case.hook),
                &p.output,
            ),
            None => (
                "the operation read the maps before the frame changed them and wrote its \
                 count after; the frame on the state before both:"
                    .to_string(),
                s0,
                pa.verdict.code(case.hook),
                &pa.output,
            ),
        };
        let _ = writeln!(text, "{label}");
        text.push_str(&super::repro::test_code(
            &format!("race_seed_{seed}_frame_{i}"),
            st,
            case.hook,
            case.base.as_ref(),
            &case.base_frame,
            &case.frame,
            verdict,
            output,
        ));
        eprintln!("{text}");
        let e = self.report.races.entry(name).or_insert((0, text));
        e.0 += 1;
        (Vec::new(), pa.state.paired.clone())
    }
}

/// Which map a problem is about ("NAPT_OUT: missing ..."), if it is
/// about one.
fn map_of(problem: &str) -> Option<&str> {
    let head = problem.split(':').next()?;
    [
        "NAPT_OUT",
        "NAPT_IN",
        "SESSIONS",
        "FILTER",
        "HOST_PORTS",
        "BLOCKS",
        "HOST_BLOCKS",
        "INBOUND_SESSIONS",
        "FRAGS",
        "FRAG_HOLD",
        "NAT64_HOSTS",
        "NAT64_IDS",
    ]
    .into_iter()
    .find(|m| *m == head)
}

/// A race where the frame matched an order but a count the operation
/// writes does not: the operation wrote what it had counted from its
/// reads, before the frame's change.
fn recount(op: &Op, problems: &[String]) -> Option<String> {
    let maps: std::collections::BTreeSet<&str> =
        problems.iter().map(|p| map_of(p)).collect::<Option<_>>()?;
    let counts = ["HOST_PORTS", "INBOUND_SESSIONS"];
    (!maps.is_empty() && maps.iter().all(|m| counts.contains(m))).then(|| {
        format!(
            "{} wrote {} as counted from what it read before a frame changed it",
            op.name(),
            maps.into_iter().collect::<Vec<_>>().join(" and ")
        )
    })
}
