//! Differential fuzzing of the data plane (issue #6): generated frames run
//! through the compiled programs by `BPF_PROG_TEST_RUN` and through the
//! reference [`crate::model`]; verdict, every output byte, every map entry,
//! the counters and the events must agree, and every translated frame of a
//! frame with valid checksums must have valid checksums.
//!
//! State is kept small (a fresh epoch, with a new random configuration,
//! every few dozen frames) so each frame's full map comparison stays cheap
//! and the generator keeps hitting the same flows.
//!
//! NAT64's programs sit in their program arrays in each copy of the object
//! ([`target`]), so an IPv6 frame on the inside TC hook, and a packet NAT44
//! translates to a stand-in on an ingress hook, run them by tail call
//! within the same test run; epochs switch NAT64 on or off with a random
//! RFC 6052 prefix ([`world::nat64_config`]). Data-plane defects the runs
//! found and nat-ebpf has yet to fix are recognised exactly and counted
//! ([`KNOWN_DATA_PLANE_DEFECTS`]) instead of failing every run.

pub mod agent;
pub mod checksums;
pub mod compare;
pub mod frames;
pub mod inside;
pub mod repro;
pub mod skb;
pub mod target;
pub mod world;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use nat_common::EndpointKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::bpf::Hook;
use crate::frame::{first_difference, hex_dump};
use crate::model::{self, Allocation, Oracle, Rule, State, Verdict, rules};
use crate::napt_maps::{dataplane_now_ns, ip};
use compare::Window;
use frames::{Case, Generator};
use target::Target;

/// Chance, before each frame, that an expiry sweep runs (see
/// [`world::sweep`]): about one per epoch.
const SWEEP_CHANCE: f64 = 0.03;

/// Chance that an epoch runs against the copy of the object with tables
/// small enough to fill ([`target::SMALL_TABLES`]).
const SMALL_TABLES_CHANCE: f64 = 0.25;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub packets: u64,
    pub seed: u64,
    /// Stop after this many mismatches.
    pub max_mismatches: usize,
    /// Print a progress line every this many frames (0: never).
    pub progress_every: u64,
}

/// Data-plane defects the fuzzer found, not fixed in nat-ebpf yet: each is
/// recognised exactly — the model's path for the frame takes the rules the
/// defect is about, and the program did exactly what the model says the
/// defective code does (its switch in [`model::Known`]) — counted by name
/// and does not fail a run; anything else is a mismatch. Delete an entry
/// and its switch once the data plane is fixed, and the run holds it to
/// the specification.
pub const KNOWN_DATA_PLANE_DEFECTS: [(&str, &str); 1] = [(
    "nat64-atomic-fragment-error",
    "NAT64 outbound (nat64/outbound.rs) drops an ICMPv6 error behind a fragment header \
         (nat64_drop_unsupported) also when it is an atomic fragment (offset 0, no more), \
         which README and RFC 8021 take as a whole datagram (as it does an atomic echo, TCP \
         or UDP datagram)",
)];

/// A known defect's switch in [`model::Known`].
type Switch = fn(&mut model::Known) -> &mut bool;

/// The known defects that may explain a mismatch of the frame the model
/// predicted as `p` (by the rules its path took), each by its number in
/// [`KNOWN_DATA_PLANE_DEFECTS`] with its switch.
fn known_defects(p: &model::Prediction) -> Vec<(usize, Switch)> {
    let took = |r: Rule| p.path.contains(&r);
    let mut v: Vec<(usize, Switch)> = Vec::new();
    if took(Rule::Nat64OutAtomicFragment) {
        v.push((0, |k| &mut k.nat64_atomic_error_dropped));
    }
    v
}

/// The model's prediction for a frame, following the known defects its
/// path meets (for a frame run alongside the agent's code, where only one
/// account of the frame is judged: the defects are deterministic, so the
/// program does what they do whenever the path meets them).
pub(crate) fn predict_known(
    st: &State,
    hook: Hook,
    frame: &[u8],
    csum: skb::Csum,
    oracle: &dyn Oracle,
    now: u64,
) -> model::Prediction {
    let p = skb::Lanes::predict(st, hook, frame, csum, oracle, now);
    let defects = known_defects(&p);
    if defects.is_empty() || matches!(csum, skb::Csum::Partial { .. }) {
        return p;
    }
    let mut all = model::Known::default();
    for (_, on) in &defects {
        *on(&mut all) = true;
    }
    model::predict_with(st, hook, frame, oracle, now, all)
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    pub frames: u64,
    pub elapsed: Duration,
    pub mismatches: Vec<String>,
    /// Frames by model verdict.
    pub translated: u64,
    pub passed: u64,
    pub dropped: u64,
    /// Translated frames whose checksums were checked (valid input).
    pub checksums_checked: u64,
    /// Frames BPF_PROG_TEST_RUN refuses to run (not compared).
    pub refused: u64,
    /// The same, by the kernel's reason (see [`refused_by_test_run`]).
    pub refused_by: std::collections::BTreeMap<&'static str, u64>,
    /// Expiry sweeps that changed the bindings between frames.
    pub sweeps: u64,
    /// Epochs run against tables small enough to fill.
    pub small_table_epochs: u64,
    /// Distinct model paths taken, with counts.
    pub paths: std::collections::BTreeMap<String, u64>,
    /// Frames whose path took each rule of the model.
    pub rules: std::collections::BTreeMap<Rule, u64>,
    /// Whether frames went to the inside programs (not alongside the
    /// agent).
    pub inside_programs: bool,
    /// Frames run as CHECKSUM_COMPLETE and CHECKSUM_PARTIAL skbs.
    pub csum: skb::CsumReport,
    /// The agent's operations run alongside (`--interleaved`,
    /// `--concurrent`).
    pub agent: agent::AgentReport,
    /// Frames that met a defect of [`KNOWN_DATA_PLANE_DEFECTS`], by its
    /// name, with the first frame number.
    pub known: std::collections::BTreeMap<&'static str, (u64, u64)>,
}

impl Report {
    pub fn rate(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn summary(&self) -> String {
        format!(
            "{} frames in {:.1} s ({:.0} frames/s): {} translated ({} checksum-checked), {} passed, {} dropped, {} refused by the test run; {} expiry sweeps; {} epochs with small tables; {} mismatches",
            self.frames,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.translated,
            self.checksums_checked,
            self.passed,
            self.dropped,
            self.refused,
            self.sweeps,
            self.small_table_epochs,
            self.mismatches.len()
        ) + &format!("; {} of {} rules taken", self.rules.len(), Rule::ALL.len())
            + &format!("; {}", self.csum.summary())
            + &self
                .known
                .iter()
                .map(|(name, (n, first))| {
                    format!("; known defect {name}: {n} frames (first: frame #{first})")
                })
                .collect::<String>()
            + &if self.agent.mode == agent::Mode::Off {
                String::new()
            } else {
                format!("; {}", self.agent.summary())
            }
            + &self.refusals()
    }

    /// Rules of the model no frame of this run took, less those no
    /// generated frame can reach ([`rules::UNREACHABLE`]) and, when no
    /// frame went to the inside programs, theirs.
    pub fn never_hit(&self) -> Vec<Rule> {
        Rule::ALL
            .iter()
            .copied()
            .filter(|r| !self.rules.contains_key(r))
            .filter(|r| r.unreachable().is_none())
            .filter(|r| self.inside_programs || !rules::inside_only(*r))
            .collect()
    }

    /// A long run ([`COVERAGE_MIN_FRAMES`] or more) that left a rule of
    /// the model untaken: the generator has stopped reaching it, or the
    /// rule is dead.
    pub fn coverage_problem(&self) -> Option<String> {
        let missed = self.never_hit();
        // Refused frames count: they were generated all the same.
        if self.frames + self.refused < COVERAGE_MIN_FRAMES || missed.is_empty() {
            return None;
        }
        let mut s = format!(
            "{} of the model's rules never taken in {} frames:",
            missed.len(),
            self.frames + self.refused
        );
        for r in missed {
            s += &format!("\n  never taken: {}", r.describe());
        }
        Some(s)
    }

    /// The refusals by reason, and a warning when they are more than a
    /// small share of the frames (the run then checks less than it says).
    fn refusals(&self) -> String {
        let mut s = String::new();
        for (why, n) in &self.refused_by {
            s += &format!("\n  refused: {n} × {why}");
        }
        let all = self.frames + self.refused;
        if all > 0 && self.refused * 100 > all * REFUSED_WARN_PERCENT {
            s += &format!(
                "\n  warning: the test run refused {:.2} % of the frames (more than {REFUSED_WARN_PERCENT} %)",
                self.refused as f64 * 100.0 / all as f64
            );
        }
        s
    }
}

/// Frames from which a run must take every rule the generator can reach.
pub const COVERAGE_MIN_FRAMES: u64 = 1_000_000;

/// Share of refused frames above which a run warns.
const REFUSED_WARN_PERCENT: u64 = 1;

/// The allocator's choices, read from the maps after the run (and, for a
/// failure, from the drop counter it bumped).
struct FromMaps<'a> {
    before: &'a State,
    after: &'a State,
    /// Whether the run counted a "mapping table full" drop.
    table_full: bool,
    /// What the program sent (none from a CHECKSUM_COMPLETE run that
    /// failed).
    output: Option<&'a [u8]>,
}

/// The identification of the IPv4 header in `output`, if it has one: what
/// NAT64 drew for a packet it made IPv4 ([`Oracle::nat64_id`]).
pub(crate) fn ipv4_id(output: Option<&[u8]>) -> [u8; 2] {
    match output {
        Some(f) if f.len() >= crate::frame::ETH_HLEN + 20 && f[12..14] == [0x08, 0x00] => {
            [f[18], f[19]]
        }
        _ => [0, 0],
    }
}

impl Oracle for FromMaps<'_> {
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
            _ => Allocation::Failed,
        }
    }

    fn claimed_block(&self, host: u32) -> Option<nat_common::blocks::BlockKey> {
        self.before.claimed_block(self.after, host)
    }

    fn nat64_id(&self) -> [u8; 2] {
        ipv4_id(self.output)
    }
}

/// [`run`] on a thread inside a scratch network namespace of its own:
/// releasing held fragments clones packets onto the test skb's device,
/// the current namespace's loopback, and they must not reach the host's;
/// and the inside programs' FIB lookups see the gateway built there
/// ([`inside::Network`]).
pub fn run_isolated(opts: &Options) -> Result<Report> {
    run_isolated_with(opts, agent::Mode::Off)
}

/// [`run_isolated`] with the agent's code running alongside in `mode`.
pub fn run_isolated_with(opts: &Options, mode: agent::Mode) -> Result<Report> {
    crate::bpf::require_root();
    let ns =
        crate::netns::Netns::create(format!("xfz{}-{}", std::process::id(), opts.seed % 100_000));
    let net = inside::Network::create(&ns)?;
    ns.in_ns(|| run_with(opts, mode, &net))
}

/// Runs `opts.packets` frames (as root, on a thread in the namespace of
/// `net`; see [`run_isolated`]).
pub fn run(opts: &Options, net: &inside::Network) -> Result<Report> {
    run_with(opts, agent::Mode::Off, net)
}

/// [`run`] with the agent's code running alongside in `mode`.
pub fn run_with(opts: &Options, mode: agent::Mode, net: &inside::Network) -> Result<Report> {
    // Two copies of the object: tables as large as the state never gets,
    // and tables small enough to fill; each epoch runs on one.
    let mut targets = [Target::load(false)?, Target::load(true)?];
    // Some TC frames run in CHECKSUM_COMPLETE or CHECKSUM_PARTIAL skbs.
    let mut lanes = skb::Lanes::new(&mut targets, opts.seed)?;
    let mut agent = agent::Agent::start(mode, &targets, opts.seed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut generator = Generator {
        rng: ChaCha8Rng::seed_from_u64(opts.seed ^ 0x9e37_79b9_7f4a_7c15),
        inside: mode == agent::Mode::Off,
    };
    let mut st = world::base_state();
    st.gateway = net.gateway();
    for t in &mut targets {
        t.configure(&st)?;
    }
    let mut report = Report {
        inside_programs: generator.inside,
        ..Report::default()
    };
    let start = Instant::now();
    let mut epoch_left = 0u32;
    let mut epoch = 0u64;
    let mut cur = 0usize;
    let mut counters = targets[cur].counters();
    for i in 0..opts.packets {
        if opts.progress_every != 0 && i != 0 && i % opts.progress_every == 0 {
            report.elapsed = start.elapsed();
            report.csum = lanes.report.clone();
            if let Some(a) = &agent {
                report.agent = a.report.clone();
            }
            eprintln!("xnat-fuzz: {}", report.summary());
        }
        if epoch_left == 0 {
            world::new_epoch(&mut st, &mut rng);
            net.new_epoch(&mut st.gateway, &mut rng);
            let small = rng.random_bool(SMALL_TABLES_CHANCE);
            cur = small as usize;
            st.capacity = targets[cur].capacity();
            world::seed_nat64(&mut st, &mut rng);
            targets[cur].reset(&st)?;
            targets[cur].events()?;
            counters = targets[cur].counters();
            // Small tables take longer epochs: enough new flows to fill
            // them and keep meeting them full.
            epoch_left = if small {
                rng.random_range(48..128)
            } else {
                rng.random_range(16..64)
            };
            epoch += 1;
            if small {
                report.small_table_epochs += 1;
            }
        }
        let target = &mut targets[cur];
        epoch_left -= 1;
        if rng.random_bool(SWEEP_CHANCE) && world::sweep(&mut st, &mut rng) {
            // The agent's expiry sweep ran: first sessions, sessions,
            // mappings and filter entries expired.
            target.set_bindings(&st)?;
            report.sweeps += 1;
        }
        if let Some(a) = agent.as_mut()
            && let Some(text) = a.between_frames(i, cur, &mut st, target)?
        {
            // The agent's operation left other maps than the model says.
            eprintln!("{text}");
            report.mismatches.push(text);
        }
        let mut case = generator.next(&st);
        if let Some(why) = refused_by_test_run(&case) {
            report.refused += 1;
            *report.refused_by.entry(why).or_default() += 1;
            continue;
        }
        let csum = lanes.choose(&mut case, &st);
        let in_flight = match agent.as_mut() {
            Some(a) => a.launch(cur, &st, &case.frame, csum)?,
            None => None,
        };
        let t0 = dataplane_now_ns();
        let mut ran = lanes
            .run(target, cur, case.hook, &case.frame, csum)
            .with_context(|| {
                format!(
                    "frame #{i} ({}), {} bytes:\n{}",
                    case.what.join("; "),
                    case.frame.len(),
                    hex_dump(&case.frame, None)
                )
            })?;
        let t1 = dataplane_now_ns();
        let landed = match (in_flight, agent.as_mut()) {
            (Some(f), Some(a)) => Some(a.land(f)?),
            _ => None,
        };
        let mut real = target.state(&st)?;
        // With the agent's code about, the configuration and static maps
        // are read back too (a reload rewrites them).
        let settings_problem = match agent {
            Some(_) => target.read_settings(&mut real)?,
            None => None,
        };
        let after = target.counters();
        let events = target.events()?;
        let full = nat_common::Counter::DropMappingTableFull as usize;
        // No output when a CHECKSUM_COMPLETE run failed (`ran.stale`).
        let outcome = ran.outcome.take();
        let oracle = FromMaps {
            before: &st,
            after: &real,
            table_full: after[full] > counters[full],
            output: outcome.as_ref().map(|o| o.data.as_slice()),
        };
        let p = skb::Lanes::predict(&st, case.hook, &case.frame, csum, &oracle, t0);
        report.frames += 1;
        match p.verdict {
            Verdict::Translated | Verdict::Redirected | Verdict::Returned => report.translated += 1,
            Verdict::Pass => report.passed += 1,
            Verdict::Drop => report.dropped += 1,
        }
        *report.paths.entry(rules::path_text(&p.path)).or_default() += 1;
        let mut taken = p.path.clone();
        taken.sort();
        taken.dedup();
        for r in taken {
            *report.rules.entry(r).or_default() += 1;
        }

        let mut problems = ran.problems;
        let w = Window { t0, t1 };
        let mut paired = p.state.paired.clone();
        let mut explained = false;
        match (&landed, agent.as_mut()) {
            (Some(l), Some(a)) => {
                // An operation ran alongside: either order may do.
                let (v, pd) = a.judge(
                    opts.seed,
                    i,
                    l,
                    &st,
                    &case,
                    csum,
                    outcome.as_ref(),
                    &real,
                    settings_problem,
                    &counters,
                    &after,
                    &events,
                    &w,
                );
                problems.extend(v);
                paired = pd;
            }
            _ => {
                if ran.stale {
                    problems.extend(lanes.stale_problem(i, &p));
                }
                let mut these = frame_problems(
                    case.hook,
                    &p,
                    &p.state,
                    outcome.as_ref(),
                    &real,
                    &counters,
                    &after,
                    &events,
                    &w,
                );
                let defects = known_defects(&p);
                if !these.is_empty() && !defects.is_empty() {
                    // What the defective code does, exactly?
                    let mut all = model::Known::default();
                    for (_, on) in &defects {
                        *on(&mut all) = true;
                    }
                    let predict = |k: model::Known| {
                        model::predict_with(&st, case.hook, &case.frame, &oracle, t0, k)
                    };
                    let alt = predict(all);
                    let alt_problems = frame_problems(
                        case.hook,
                        &alt,
                        &alt.state,
                        outcome.as_ref(),
                        &real,
                        &counters,
                        &after,
                        &events,
                        &w,
                    );
                    if alt_problems.is_empty() {
                        // Each counted where it made the difference.
                        for (n, on) in &defects {
                            let mut without = all;
                            *on(&mut without) = false;
                            let other = predict(without);
                            if other.output != alt.output || other.verdict != alt.verdict {
                                let name = KNOWN_DATA_PLANE_DEFECTS[*n].0;
                                report.known.entry(name).or_insert((0, i)).0 += 1;
                            }
                        }
                        paired = alt.state.paired.clone();
                        these.clear();
                        explained = true;
                    }
                }
                problems.extend(these);
                problems.extend(settings_problem);
            }
        }
        // (A frame a known defect explained may leave with the checksums
        // the defect breaks.)
        if let Some(o) = &outcome
            && !explained
            && let Some(checked) = lanes.check_translated(csum, &p, &o.data)
        {
            report.checksums_checked += 1;
            problems.extend(checked.err());
        }
        if !problems.is_empty() {
            let text = describe(
                opts.seed,
                i,
                epoch,
                &case,
                &st,
                &p,
                outcome.as_ref().map_or(&p.output, |o| &o.data),
                &problems,
            );
            eprintln!("{text}");
            report.mismatches.push(text);
        }
        // Carry on from what the kernel has (identical unless reported),
        // keeping the model's memory of paired pool addresses.
        st = real;
        st.paired = paired;
        counters = after;
        if report.mismatches.len() >= opts.max_mismatches {
            break;
        }
    }
    report.csum = lanes.report.clone();
    if let Some(a) = &agent {
        report.agent = a.report.clone();
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Differences between what the model predicts for a frame (`p`, and the
/// maps afterwards `want`: `p.state` unless something else ran too) and
/// what the program did: verdict, output (unless the run returned none),
/// maps, counters, events, and the allocator's choices.
#[allow(clippy::too_many_arguments)]
pub(crate) fn frame_problems(
    hook: crate::bpf::Hook,
    p: &model::Prediction,
    want: &State,
    outcome: Option<&crate::bpf::Outcome>,
    real: &State,
    counters: &[u64; nat_common::stats::COUNTER_COUNT as usize],
    after: &[u64; nat_common::stats::COUNTER_COUNT as usize],
    events: &[Vec<u8>],
    w: &Window,
) -> Vec<String> {
    let mut problems = Vec::new();
    let want_verdict = p.verdict.code(hook);
    if let Some(outcome) = outcome
        && outcome.verdict != want_verdict
    {
        problems.push(format!(
            "verdict: model {} ({:?}), program {}",
            hook.verdict_name(want_verdict),
            p.verdict,
            hook.verdict_name(outcome.verdict)
        ));
    }
    if let Some(outcome) = outcome
        && let Some(at) = first_difference(&p.output, &outcome.data)
    {
        problems.push(format!(
            "output differs at offset {at} (0x{at:x}); model {} bytes, program {}\n--- model:\n{}--- program:\n{}",
            p.output.len(),
            outcome.data.len(),
            hex_dump(&p.output, Some(at)),
            hex_dump(&outcome.data, Some(at))
        ));
    }
    problems.extend(compare::states(want, real, w));
    problems.extend(compare::counters(p, counters, after));
    if p.events != events {
        problems.push(format!(
            "events: model {:02x?}, program {:02x?}",
            p.events, events
        ));
    }
    problems.extend(p.violations.iter().map(|v| format!("allocator: {v}")));
    problems
}

/// The kernel's skb test run refuses an IPv4 frame without a whole
/// 20-byte IPv4 header (EINVAL); XDP runs take anything from 14 bytes.
/// Why BPF_PROG_TEST_RUN refuses to run `case` (EINVAL), if it does: the
/// kernel's own checks of the input. Any test run wants an Ethernet
/// header; the skb one also wants the whole IPv4 or IPv6 header behind
/// the EtherType that announces it (a NIC would hand such a frame to the
/// program: it cannot be checked here, and is counted and skipped).
pub fn refused_by_test_run(case: &Case) -> Option<&'static str> {
    let f = &case.frame;
    let eth = crate::frame::ETH_HLEN;
    if f.len() < eth {
        return Some("frame shorter than an Ethernet header");
    }
    if case.hook.is_xdp() {
        return None;
    }
    match [f[12], f[13]] {
        [0x08, 0x00] if f.len() < eth + 20 => {
            Some("skb test run: IPv4 frame shorter than its header")
        }
        [0x86, 0xdd] if f.len() < eth + 40 => {
            Some("skb test run: IPv6 frame shorter than its header")
        }
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn describe(
    seed: u64,
    i: u64,
    epoch: u64,
    case: &Case,
    st: &State,
    p: &model::Prediction,
    program_output: &[u8],
    problems: &[String],
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "=== mismatch: seed {seed}, frame #{i} (epoch {epoch}), {:?} ===",
        case.hook
    );
    if st.capacity == target::SMALL_TABLES {
        let _ = writeln!(
            s,
            "tables: small ({:?}); the repro below runs on full-size tables",
            st.capacity
        );
    }
    if matches!(case.hook, Hook::InsideTc | Hook::InsideXdp) {
        let _ = writeln!(s, "{}", inside::describe(&st.gateway));
    }
    let nat64_frame = p.path.iter().any(|r| r.site().starts_with("NAT64"));
    if nat64_frame || st.nat64.enabled != 0 {
        let mut hosts: Vec<String> = st
            .nat64_hosts
            .iter()
            .map(|(h, s)| format!("{} → {}", std::net::Ipv6Addr::from(*h), ip(*s)))
            .collect();
        hosts.sort();
        let mut ids: Vec<String> = st
            .nat64_ids
            .iter()
            .map(|(s, h)| format!("{} → {}", ip(*s), std::net::Ipv6Addr::from(h.addr)))
            .collect();
        ids.sort();
        let _ = writeln!(
            s,
            "NAT64: {}/{} ({}); NAT64_HOSTS [{}]; NAT64_IDS [{}]; the repro below sets up \
             neither: it needs NAT64's programs in their program arrays \
             (fuzz::target::set_nat64_programs) and these maps written",
            std::net::Ipv6Addr::from(st.nat64.prefix),
            st.nat64.prefix_len,
            if st.nat64.enabled != 0 { "on" } else { "off" },
            hosts.join(", "),
            ids.join(", ")
        );
    }
    let _ = writeln!(s, "generated: {}", case.what.join("; "));
    if let Some(state) = case.what.iter().find(|w| w.starts_with("CHECKSUM_")) {
        let _ = writeln!(
            s,
            "skb: {state}; the repro below runs the frame as a plain test run's CHECKSUM_NONE skb"
        );
    }
    let _ = writeln!(
        s,
        "model: {:?} via {}",
        p.verdict,
        rules::path_text(&p.path)
    );
    let _ = writeln!(
        s,
        "frame ({} bytes):\n{}",
        case.frame.len(),
        hex_dump(&case.frame, None)
    );
    if p.output == program_output {
        let _ = writeln!(
            s,
            "output (model and program agree, {} bytes):\n{}",
            p.output.len(),
            hex_dump(&p.output, None)
        );
    }
    for pr in problems {
        let _ = writeln!(s, "- {pr}");
    }
    let _ = writeln!(s, "repro:");
    s.push_str(&repro::test_code(
        &format!("fuzz_seed_{seed}_frame_{i}"),
        st,
        case.hook,
        case.base.as_ref(),
        &case.base_frame,
        &case.frame,
        p.verdict.code(case.hook),
        &p.output,
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(frames: u64, taken: &[Rule]) -> Report {
        Report {
            frames,
            rules: taken.iter().map(|r| (*r, 1)).collect(),
            inside_programs: true,
            ..Report::default()
        }
    }

    #[test]
    fn a_long_run_fails_on_a_rule_never_taken() {
        let all: Vec<Rule> = Rule::ALL.to_vec();
        assert!(
            report(COVERAGE_MIN_FRAMES, &all)
                .coverage_problem()
                .is_none()
        );
        let missing: Vec<Rule> = all
            .iter()
            .copied()
            .filter(|r| *r != Rule::Filtered)
            .collect();
        let text = report(COVERAGE_MIN_FRAMES, &missing)
            .coverage_problem()
            .expect("a never-taken rule fails a long run");
        assert!(text.contains("NAPT inbound: filtered"), "{text}");
        // Short runs only list it; unreachable rules never count.
        assert!(report(1000, &missing).coverage_problem().is_none());
        let reachable: Vec<Rule> = all
            .iter()
            .copied()
            .filter(|r| r.unreachable().is_none())
            .collect();
        assert!(
            report(COVERAGE_MIN_FRAMES, &reachable)
                .coverage_problem()
                .is_none()
        );
    }

    #[test]
    fn runs_without_inside_frames_do_not_owe_the_inside_rules() {
        let outside: Vec<Rule> = Rule::ALL
            .iter()
            .copied()
            .filter(|r| !rules::inside_only(*r))
            .collect();
        let mut r = report(COVERAGE_MIN_FRAMES, &outside);
        assert!(r.coverage_problem().is_some());
        r.inside_programs = false;
        assert!(r.coverage_problem().is_none());
    }
}
