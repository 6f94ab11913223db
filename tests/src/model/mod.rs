//! A reference model of xnat's translation, in plain host Rust: given the
//! maps' contents ([`State`]), a frame and the hook it is run on, what must
//! come out — the verdict, every output byte, the state afterwards, the
//! counters bumped and the events emitted.
//!
//! It is written from the README's rules ("How NAPT behaves", "IPv4
//! fragments", "Design in brief") as a specification; it shares no code
//! with the data plane (checksums are computed from the covered bytes, see
//! [`csum`]). Where the data plane may choose (the public port of a new
//! mapping is picked by hashing and random probing), the model asks an
//! [`Oracle`] what was chosen and checks the choice is one the rules allow.

pub mod agent;
pub mod alloc;
pub mod blocks;
pub mod csum;
pub mod fastpath;
pub mod fib;
pub mod forward;
pub mod frag;
pub mod gateway;
pub mod hairpin;
pub mod icmp;
pub mod inside;
pub mod local_error;
pub mod napt;
pub mod nat64;
pub mod offload;
pub mod parse;
pub mod rewrite;
pub mod rules;
pub mod state;
pub mod static_nat;
pub mod tcp;

use nat_common::{Counter, EndpointKey, blocks::BlockKey};

use crate::bpf::Hook;
pub use rules::Rule;
pub use state::{Capacity, Held, NOW, State};

/// The XDP verdict that sends a frame back out of the device it came in
/// on.
pub const XDP_TX: u32 = 3;

/// What the program does with the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// To the stack untouched (not ours, or malformed inbound).
    Pass,
    Drop,
    /// Translated and passed on.
    Translated,
    /// Translated and redirected to another device by the program itself
    /// (hairpinning, the fast path).
    Redirected,
    /// Answered in place and sent back out of the device it came in on
    /// (`XDP_TX`; TC redirects to that device).
    Returned,
}

impl Verdict {
    /// The program's return code for this verdict on `hook`.
    pub fn code(self, hook: Hook) -> u32 {
        match self {
            Verdict::Pass | Verdict::Translated => hook.pass(),
            Verdict::Drop => hook.drop(),
            Verdict::Redirected => hook.redirect(),
            Verdict::Returned if hook.is_xdp() => XDP_TX,
            Verdict::Returned => hook.redirect(),
        }
    }
}

/// What the allocator did for a new mapping (read from the maps after the
/// run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocation {
    /// Public endpoint (address and port in network order).
    Mapped { addr: u32, port: u16 },
    /// No mapping was made: no free port found.
    Failed,
    /// No mapping was made: a mapping table was full.
    TableFull,
}

/// Tells the model the allocator's choices.
pub trait Oracle {
    fn allocation(&self, inside: &EndpointKey) -> Allocation;
    /// Under block allocation: the port block the allocator claimed for
    /// inside host `host` (network order), if it claimed one: a `BLOCKS`
    /// entry naming the host after the run that was not there before.
    fn claimed_block(&self, host: u32) -> Option<BlockKey>;
    /// The identification (bytes as on the wire) of the IPv4 header NAT64
    /// made for an IPv6 packet of at most 1260 bytes as IPv4: random (RFC
    /// 7915 section 5.1 lets the translator pick it), so read from what
    /// the program sent; everything it covers (the header checksum) is
    /// still the model's.
    fn nat64_id(&self) -> [u8; 2] {
        [0, 0]
    }
}

/// The model's prediction for one frame.
#[derive(Clone, Debug)]
pub struct Prediction {
    pub verdict: Verdict,
    pub output: Vec<u8>,
    /// The untranslated frame `output` was made from: the input, or the
    /// last held fragment released (with the input's Ethernet header).
    pub source: Vec<u8>,
    /// The maps afterwards; timestamps the program sets are [`NOW`].
    pub state: State,
    /// Counter increments.
    pub counters: Vec<(Counter, u64)>,
    /// Port-exhaustion events: the quoted bytes (IPv4 header + 8).
    pub events: Vec<Vec<u8>>,
    /// The rule that decided, for reports.
    pub path: Vec<Rule>,
    /// Choices of the allocator the rules do not allow.
    pub violations: Vec<String>,
}

/// Known defects of the data plane the model can follow on request (see
/// `fuzz::KNOWN_DATA_PLANE_DEFECTS`): with a switch on, the model says
/// what the defective code does, so that a run recognises the defect
/// exactly instead of failing on it. Off, the model says what the
/// specification says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Known {
    /// NAT64 outbound drops an ICMPv6 error behind any fragment header,
    /// an atomic one (a whole datagram) too.
    pub nat64_atomic_error_dropped: bool,
}

/// Direction of a hook: egress translates sources, ingress destinations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Out,
    In,
}

/// The working state of one prediction.
pub struct Ctx<'a> {
    pub hook: Hook,
    pub dir: Dir,
    pub st: State,
    pub out: Vec<u8>,
    /// See [`Prediction::source`].
    pub source: Vec<u8>,
    pub counters: Vec<(Counter, u64)>,
    pub events: Vec<Vec<u8>>,
    pub path: Vec<Rule>,
    pub violations: Vec<String>,
    pub oracle: &'a dyn Oracle,
    /// The kernel clock around the run (for freshness decisions).
    pub now: u64,
    /// Known defects to follow (none but for a second opinion).
    pub known: Known,
}

impl Ctx<'_> {
    pub fn bump(&mut self, c: Counter) {
        self.add(c, 1);
    }

    pub fn add(&mut self, c: Counter, n: u64) {
        match self.counters.iter_mut().find(|(k, _)| *k == c) {
            Some((_, v)) => *v += n,
            None => self.counters.push((c, n)),
        }
    }

    pub fn note(&mut self, rule: Rule) {
        self.path.push(rule);
    }

    /// Counts a translated packet of `bytes` bytes in this direction.
    pub fn translated(&mut self, bytes: u64) -> Verdict {
        match self.dir {
            Dir::Out => {
                self.bump(Counter::EgressTranslated);
                self.add(Counter::EgressBytes, bytes);
            }
            Dir::In => {
                self.bump(Counter::IngressTranslated);
                self.add(Counter::IngressBytes, bytes);
            }
        }
        Verdict::Translated
    }

    /// A drop counted under `reason`.
    pub fn drop(&mut self, reason: Counter) -> Verdict {
        self.bump(reason);
        Verdict::Drop
    }

    /// Malformed: outbound packets of a translated host are dropped (no
    /// inside address may leak), inbound ones passed untouched.
    pub fn malformed(&mut self) -> Verdict {
        match self.dir {
            Dir::Out => self.drop(Counter::EgressDroppedMalformed),
            Dir::In => {
                self.bump(Counter::IngressPassedMalformed);
                Verdict::Pass
            }
        }
    }

    pub fn not_ours(&mut self) -> Verdict {
        self.note(Rule::NotOurs);
        self.bump(Counter::PassedNotOurs);
        Verdict::Pass
    }
}

/// Predicts what the program of `hook` does with `frame` given `state`.
/// `now` is the kernel clock at (about) the time of the run.
pub fn predict(
    state: &State,
    hook: Hook,
    frame: &[u8],
    oracle: &dyn Oracle,
    now: u64,
) -> Prediction {
    predict_with(state, hook, frame, oracle, now, Known::default())
}

/// [`predict`] following the known defects `known` switches on.
pub fn predict_with(
    state: &State,
    hook: Hook,
    frame: &[u8],
    oracle: &dyn Oracle,
    now: u64,
    known: Known,
) -> Prediction {
    // The inside programs translate outbound first (hairpinning then
    // inbound too).
    let dir = match hook {
        Hook::EgressTc | Hook::InsideTc | Hook::InsideXdp => Dir::Out,
        Hook::IngressXdp | Hook::IngressTc => Dir::In,
    };
    let mut ctx = Ctx {
        hook,
        dir,
        st: state.clone(),
        out: frame.to_vec(),
        source: frame.to_vec(),
        counters: Vec::new(),
        events: Vec::new(),
        path: Vec::new(),
        violations: Vec::new(),
        oracle,
        now,
        known,
    };
    // Only a translation edits `ctx.out` (nothing is half-rewritten), and
    // releasing held fragments replaces it.
    let verdict = match hook {
        Hook::InsideTc | Hook::InsideXdp => inside::decide(&mut ctx, frame),
        Hook::IngressTc | Hook::IngressXdp => match decide(&mut ctx, frame) {
            // NAT44 made the destination an IPv6 host's stand-in: NAT64
            // makes the packet IPv6 for it.
            Verdict::Translated if to_stand_in(&ctx.out) => {
                nat64::inbound::decide(&mut ctx, nat64::inbound::Origin::Outside)
            }
            v => v,
        },
        Hook::EgressTc => decide(&mut ctx, frame),
    };
    Prediction {
        verdict,
        output: ctx.out,
        source: ctx.source,
        state: ctx.st,
        counters: ctx.counters,
        events: ctx.events,
        path: ctx.path,
        violations: ctx.violations,
    }
}

/// Whether the IPv4 destination field of `frame` holds a stand-in.
pub(crate) fn to_stand_in(frame: &[u8]) -> bool {
    let at = parse::ETH_HLEN + 16;
    frame.len() >= at + 4 && nat64::is_stand_in(parse::addr(frame, at))
}

/// An outbound frame that says it is IPv4 but has no usable header, whose
/// source field (bytes 12..16 of where the header would be) holds an
/// address xnat translates: it must not leave with that address.
fn unparsable_from_translated_source(ctx: &Ctx, frame: &[u8]) -> bool {
    if frame.len() < parse::ETH_HLEN + 16 || parse::be16(frame, 12) != parse::ETH_P_IP {
        return false;
    }
    let src = parse::addr(frame, parse::ETH_HLEN + 12);
    ctx.st.static_out.contains_key(&src) || (ctx.st.napt_on() && ctx.st.is_internal(src))
}

/// A frame without an IPv4 header the programs parse: they read the
/// EtherType at offset 12 and nothing else (a VLAN tag there hides the
/// IPv4 header behind it). All pass untouched, but for one typed IPv4
/// whose source field holds an address xnat translates, going out.
fn unparsed(ctx: &mut Ctx, frame: &[u8]) -> Verdict {
    let rule = match parse::ethertype(frame) {
        Some(parse::ETH_P_IP) => {
            if ctx.dir == Dir::Out && unparsable_from_translated_source(ctx, frame) {
                ctx.note(Rule::UnparsableTranslatedSource);
                return ctx.drop(Counter::EgressDroppedMalformed);
            }
            Rule::UnparsableIpv4
        }
        Some(parse::ETH_P_IPV6) => Rule::Ipv6,
        Some(parse::ETH_P_ARP) => Rule::Arp,
        Some(parse::ETH_P_8021Q | parse::ETH_P_8021AD) => Rule::VlanTagged,
        _ => Rule::OtherEtherType,
    };
    ctx.note(rule);
    ctx.not_ours()
}

fn decide(ctx: &mut Ctx, frame: &[u8]) -> Verdict {
    let Some(ip) = parse::outer(frame) else {
        return unparsed(ctx, frame);
    };
    if ctx.dir == Dir::Out && nat64::is_stand_in(ip.src) {
        // Only NAT64 sends from a stand-in (through its own NAT44 step):
        // one from anywhere else would use an IPv6 host's bindings.
        ctx.note(Rule::EgressStandInSource);
        return ctx.drop(Counter::EgressDroppedMalformed);
    }
    let mapped = match ctx.dir {
        Dir::Out => ctx.st.static_out.get(&ip.src).copied(),
        Dir::In => ctx.st.static_in.get(&ip.dst).copied(),
    };
    if let Some(new) = mapped {
        ctx.note(Rule::Static);
        return static_nat::translate(ctx, frame, &ip, new);
    }
    let v = match ctx.dir {
        Dir::Out => napt::egress(ctx, frame, &ip).or_else(|| local_error::egress(ctx, frame, &ip)),
        Dir::In => napt::ingress(ctx, frame, &ip),
    };
    v.unwrap_or_else(|| ctx.not_ours())
}
