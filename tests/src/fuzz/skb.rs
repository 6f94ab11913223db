//! The checksum state of the skb a frame runs in on a TC hook (issue 20).
//!
//! A plain `BPF_PROG_TEST_RUN` makes CHECKSUM_NONE skbs and nothing else
//! but CHECKSUM_COMPLETE (see [`crate::skb_csum`] for what the kernel's
//! test run allows and why). So, with a generator of its own (the frames
//! of a seed stay the frames they were):
//! * most TC frames run as the test run makes them (CHECKSUM_NONE);
//! * [`COMPLETE_CHANCE`] of them as CHECKSUM_COMPLETE, by the test run's
//!   `BPF_F_TEST_SKB_CHECKSUM_COMPLETE`: the output must be the same, and
//!   the kernel fails the run (EBADMSG) if the program left `skb->csum`
//!   out of step with the bytes;
//! * [`PARTIAL_CHANCE`] of the TC frames that a local sender could hand
//!   over with checksum offload (valid TCP or UDP, not fragments: see
//!   [`crate::skb_csum::partial_csum_of`]) as CHECKSUM_PARTIAL: the frame's
//!   checksum field becomes the pseudo-header sum (now and then off by a
//!   little: a wrong one must stay as wrong), and it runs through
//!   [`PartialLane`] — a real partial skb, the same program and maps, on a
//!   veth's TCX egress, with a linear part from the headers up to the
//!   whole frame. The model predicts it with [`model::offload`]; the skb
//!   must leave still partial, with the same `csum_start`/`csum_offset`,
//!   and a translated frame whose input completed to valid checksums must
//!   complete to valid ones.
//!
//! XDP frames have no skb and no checksum state: they come off a wire with
//! whole checksums (README "Ingress modes and checksum offload").

use std::os::fd::AsFd as _;

use anyhow::{Context as _, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::frames::Case;
use super::target::Target;
use crate::bpf::{Hook, Outcome, TC_ACT_OK};
use crate::frame::{ETH_HLEN, check_checksums};
use crate::model::{self, Oracle, Prediction, State, Verdict};
use crate::skb_csum::{Complete, PartialCsum, PartialLane, complete, make_partial, run_complete};

/// Share of TC frames run as CHECKSUM_COMPLETE skbs.
pub const COMPLETE_CHANCE: f64 = 0.15;
/// Share of the TC frames a local sender could make (valid TCP/UDP) run
/// as CHECKSUM_PARTIAL skbs.
pub const PARTIAL_CHANCE: f64 = 0.3;

/// How the skb of a TC frame is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Csum {
    /// The test run's own: CHECKSUM_NONE (and any XDP frame).
    None,
    /// The test run's with `BPF_F_TEST_SKB_CHECKSUM_COMPLETE`.
    Complete,
    /// Through [`PartialLane`]: the checksum to complete at `csum`, the
    /// skb's linear part at least `linear` bytes.
    Partial { csum: PartialCsum, linear: u16 },
}

/// Data-plane defects the CHECKSUM_COMPLETE lane found, not fixed in
/// nat-ebpf yet: the kernel's test run fails with EBADMSG because the
/// program changed bytes `skb->csum` covers without updating it. Each is
/// recognised exactly ([`known_stale_csum`]), counted and named in the
/// report, and does not fail a run; any other stale `skb->csum` is a
/// mismatch. Delete an entry once the data plane is fixed, and the lane
/// holds it to that. Deterministic repros: `tests/packet_csum_state.rs`.
pub const KNOWN_STALE_CSUM: [(&str, &str); 3] = [
    (
        "held-fragments-released",
        "a first fragment that releases held fragments becomes the last of them \
         (bpf_skb_store_bytes without BPF_F_RECOMPUTE_CSUM): skb->csum still \
         sums the first fragment",
    ),
    (
        "nat64-answer",
        "NAT64's answers (Fragmentation Needed, Time Exceeded: nat64/inbound.rs, answer) \
         are written over the packet without updating skb->csum; they leave by a redirect \
         to an egress, where a CHECKSUM_COMPLETE sum is not read, so likely harmless",
    ),
    (
        "nat64-split-checksum-none",
        "an IPv4 packet NAT64 splits into IPv6 fragments (nat64/split.rs) is cut with \
         bpf_skb_change_tail, which turns CHECKSUM_COMPLETE into CHECKSUM_NONE (the stack \
         then checks the reassembled datagram itself); the test run compares skb->csum \
         with the bytes whatever the state, so it reports the pieces stale",
    ),
];

/// What the checksum lanes did in a run.
#[derive(Clone, Debug, Default)]
pub struct CsumReport {
    pub complete: u64,
    pub partial: u64,
    /// Partial frames the model says are translated.
    pub partial_translated: u64,
    /// Of those, how many had a valid checksum once completed (and so
    /// were checked to complete to a valid one after translation).
    pub partial_checked: u64,
    /// Runs that met a defect of [`KNOWN_STALE_CSUM`], by its name, with
    /// the first frame number.
    pub known: std::collections::BTreeMap<&'static str, (u64, u64)>,
}

impl CsumReport {
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} CHECKSUM_COMPLETE and {} CHECKSUM_PARTIAL skbs ({} translated, {} checksum-checked once completed)",
            self.complete, self.partial, self.partial_translated, self.partial_checked
        );
        for (name, (n, first)) in &self.known {
            s += &format!(
                "; known defect {name}: stale skb->csum {n} times (first: frame #{first})"
            );
        }
        s
    }
}

/// Which of [`KNOWN_STALE_CSUM`] explains a stale `skb->csum` after `frame`
/// ran, if one does.
pub fn known_stale_csum(p: &Prediction) -> Option<&'static str> {
    if p.path.contains(&crate::model::Rule::HeldFragmentReleased) {
        return Some(KNOWN_STALE_CSUM[0].0);
    }
    if p.path.contains(&crate::model::Rule::Nat64InTooBigAnswered)
        || p.path.contains(&crate::model::Rule::Nat64InTtlAnswered)
    {
        return Some(KNOWN_STALE_CSUM[1].0);
    }
    if p.path.contains(&crate::model::Rule::Nat64InSplit) {
        return Some(KNOWN_STALE_CSUM[2].0);
    }
    None
}

/// Where a partial skb's checksum is after the program made `output` of
/// `input`: where it was, or 20 bytes on when NAT64 made it IPv6 (the
/// kernel moves `csum_start` with the header).
fn shifted(csum: PartialCsum, input: &[u8], output: &[u8]) -> PartialCsum {
    match model::offload::nat64_growth(input, output) {
        Some(n) => PartialCsum {
            start: csum.start + n as u16,
            offset: csum.offset,
        },
        None => csum,
    }
}

/// Whether NAT64 may answer `case` in place (README "NAT64"): an ingress
/// frame longer than the inside MTU allows once translated, or with TTL 1
/// or 0. The partial lane cannot run those: the answer, redirected out of
/// the lane's own device, meets the program at its TCX egress a second
/// time and leaves as a pass.
fn nat64_may_answer(st: &State, case: &Case) -> bool {
    let f = &case.frame;
    let mtu = st.nat64.inside_mtu as usize;
    if case.hook != Hook::IngressTc || st.nat64.enabled == 0 || f.len() < ETH_HLEN + 9 {
        return false;
    }
    let too_big =
        mtu != 0 && usize::from(u16::from_be_bytes([f[ETH_HLEN + 2], f[ETH_HLEN + 3]])) + 20 > mtu;
    too_big || f[ETH_HLEN + 8] <= 1
}

/// What running a frame gave.
pub struct Ran {
    /// `None` when the kernel returns no output (a stale `skb->csum`).
    pub outcome: Option<Outcome>,
    /// The CHECKSUM_COMPLETE run failed: `skb->csum` left stale.
    pub stale: bool,
    pub problems: Vec<String>,
    /// Where a partial skb left partial (a frame passed: Some).
    pub left_partial: Option<PartialCsum>,
}

/// The lanes of one run: a [`PartialLane`] device for each TC program of
/// each target, and the generator that picks a frame's checksum state.
pub struct Lanes {
    lane: PartialLane,
    rng: ChaCha8Rng,
    /// Whether the kernel's test run takes `BPF_F_TEST_SKB_CHECKSUM_COMPLETE`
    /// (6.11 and later).
    complete: bool,
    pub report: CsumReport,
}

/// The partial-lane device of `hook`'s program of target `target`.
fn device(target: usize, hook: Hook) -> usize {
    target * 2 + usize::from(hook == Hook::IngressTc)
}

impl Lanes {
    /// Veth devices running the TC programs of `targets` (inside the
    /// fuzzer's own network namespace).
    pub fn new(targets: &mut [Target], seed: u64) -> Result<Lanes> {
        let mut lane = PartialLane::new("xfzp");
        for (i, t) in targets.iter_mut().enumerate() {
            for hook in [Hook::EgressTc, Hook::IngressTc] {
                let n = lane.add(t.tc_program_mut(hook)?)?;
                assert_eq!(n, device(i, hook));
            }
        }
        // An ARP frame, which the programs pass untouched, tells whether the
        // test run knows the flag (EINVAL before 6.11).
        let probe = crate::frame::arp_request(
            std::net::Ipv4Addr::new(10, 0, 0, 1),
            std::net::Ipv4Addr::new(10, 0, 0, 2),
        );
        let prog = targets[0].tc_program(Hook::EgressTc)?.fd()?;
        let complete = match run_complete(prog.as_fd(), &probe, probe.len()) {
            Ok(_) => true,
            Err(e) => {
                eprintln!(
                    "xnat-fuzz: no CHECKSUM_COMPLETE test runs on this kernel ({e:#}); TC frames \
                     run as CHECKSUM_NONE and CHECKSUM_PARTIAL skbs only"
                );
                false
            }
        };
        Ok(Lanes {
            lane,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6a09_e667_f3bc_c908),
            complete,
            report: CsumReport::default(),
        })
    }

    /// Picks the checksum state of `case`'s skb; a partial one rewrites
    /// the frame's checksum field (noted in `case.what`).
    pub fn choose(&mut self, case: &mut Case, st: &State) -> Csum {
        // XDP has no checksum state; the inside programs' lanes are not
        // built (their frames run as CHECKSUM_NONE skbs only).
        if !matches!(case.hook, Hook::EgressTc | Hook::IngressTc) {
            return Csum::None;
        }
        // Drawn whatever the frame, so one frame's shape does not shift the
        // choices for the next ones.
        let (r, wrong, linear_pick): (f64, u16, u8) =
            (self.rng.random(), self.rng.random(), self.rng.random());
        if r < COMPLETE_CHANCE && self.complete {
            case.what.push("CHECKSUM_COMPLETE skb".into());
            self.report.complete += 1;
            return Csum::Complete;
        }
        if !(COMPLETE_CHANCE..COMPLETE_CHANCE + PARTIAL_CHANCE).contains(&r)
            || check_checksums(&case.frame).is_err()
            || nat64_may_answer(st, case)
        {
            return Csum::None;
        }
        let Some((mut f, csum)) = make_partial(&case.frame) else {
            return Csum::None;
        };
        let field = usize::from(csum.start + csum.offset);
        if wrong % 8 == 0 {
            // Off by a little: the translation must keep it as wrong.
            let v = u16::from_be_bytes([f[field], f[field + 1]]);
            let bad = match v.wrapping_add(wrong | 1) {
                0 => 1,
                b => b,
            };
            f[field..field + 2].copy_from_slice(&bad.to_be_bytes());
            case.what.push("partial checksum field off".into());
        }
        // The linear part: the headers up to the checksum field (the kernel
        // pulls that much whatever is asked), or the whole frame.
        let linear = [0u16, f.len() as u16, (field + 2) as u16][usize::from(linear_pick % 3)];
        case.what.push(format!(
            "CHECKSUM_PARTIAL skb (csum_start {}, csum_offset {}, {} linear bytes asked)",
            csum.start, csum.offset, linear
        ));
        case.frame = f;
        self.report.partial += 1;
        Csum::Partial { csum, linear }
    }

    /// Runs `frame` through `hook`'s program of target number `which` in
    /// the skb state `csum`.
    pub fn run(
        &self,
        target: &Target,
        which: usize,
        hook: Hook,
        frame: &[u8],
        csum: Csum,
    ) -> Result<Ran> {
        let mut ran = Ran {
            outcome: None,
            stale: false,
            problems: Vec::new(),
            left_partial: None,
        };
        match csum {
            Csum::None => ran.outcome = Some(target.run(hook, frame)?),
            Csum::Complete => {
                let prog = target.tc_program(hook)?.fd()?;
                let room = frame.len().max(nat_common::FRAG_HOLD_BYTES) + ETH_HLEN + 512;
                match run_complete(prog.as_fd(), frame, room)? {
                    Complete::Ran(o) => ran.outcome = Some(o),
                    Complete::CsumStale => ran.stale = true,
                }
            }
            Csum::Partial { csum, linear } => {
                let o = self
                    .lane
                    .run(device(which, hook), frame, csum, linear)
                    .context("running a CHECKSUM_PARTIAL skb")?;
                let want = shifted(csum, frame, &o.data);
                if o.verdict == TC_ACT_OK && o.partial != Some(want) {
                    ran.problems.push(format!(
                        "CHECKSUM_PARTIAL: the skb left as {:?}, not partial at {want:?}",
                        o.partial
                    ));
                }
                ran.left_partial = o.partial;
                ran.outcome = Some(Outcome {
                    verdict: o.verdict,
                    data: o.data,
                });
            }
        }
        Ok(ran)
    }

    /// The problem with a run that left `skb->csum` stale (`ran.stale`),
    /// unless it is a known defect (counted instead).
    pub fn stale_problem(&mut self, i: u64, p: &Prediction) -> Option<String> {
        if let Some(name) = known_stale_csum(p) {
            self.report.known.entry(name).or_insert((0, i)).0 += 1;
            return None;
        }
        Some(
            "CHECKSUM_COMPLETE: the program left skb->csum out of step with the packet \
             (the kernel's test run failed with EBADMSG; no output returned)"
                .into(),
        )
    }

    /// The model's prediction for `frame` in skb state `csum`.
    pub fn predict(
        st: &State,
        hook: Hook,
        frame: &[u8],
        csum: Csum,
        oracle: &dyn Oracle,
        now: u64,
    ) -> Prediction {
        match csum {
            Csum::Partial { csum, .. } => {
                let mut p = model::offload::predict(
                    st,
                    hook,
                    frame,
                    oracle,
                    now,
                    usize::from(csum.start),
                    usize::from(csum.start + csum.offset),
                );
                // The lane reads back only what leaves the device: a dropped
                // frame is reported as it went in, whatever the program had
                // done to it (NAT64 drops what NAT44 translated).
                if p.verdict == Verdict::Drop {
                    p.output = frame.to_vec();
                }
                p
            }
            Csum::None | Csum::Complete => model::predict(st, hook, frame, oracle, now),
        }
    }

    /// The checksum check of a translated frame: `Some` when the input's
    /// checksums were valid (once completed, for a partial skb) and so the
    /// output's must be; `None` when there was nothing to check.
    pub fn check_translated(
        &mut self,
        csum: Csum,
        p: &Prediction,
        output: &[u8],
    ) -> Option<Result<(), String>> {
        if !matches!(p.verdict, Verdict::Translated | Verdict::Redirected) {
            return None;
        }
        match csum {
            Csum::Partial { csum, .. } => {
                self.report.partial_translated += 1;
                check_checksums(&complete(&p.source, csum)).ok()?;
                self.report.partial_checked += 1;
                let out = shifted(csum, &p.source, output);
                Some(
                    super::checksums::check(&complete(output, out)).map_err(|e| {
                        format!("translated partial frame, completed, has a bad checksum: {e}")
                    }),
                )
            }
            Csum::None | Csum::Complete => {
                // NAT64 changes the family: both checked by the same rules.
                let nat64 =
                    super::checksums::is_ipv6(&p.source) || super::checksums::is_ipv6(output);
                let check = if nat64 {
                    super::checksums::check
                } else {
                    check_checksums
                };
                check(&p.source).ok()?;
                Some(check(output).map_err(|e| format!("translated frame has a bad checksum: {e}")))
            }
        }
    }
}
