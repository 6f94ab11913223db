//! What the agent's own operations do to the maps, each run on its own:
//! an expiry sweep, `xnat flows flush`, and a reload of the configuration
//! (README "How NAPT behaves", "`xnat flows flush`", "Reload"). Written
//! from those rules, apart from nat-userspace's code; the fuzzer's agent
//! modes check the real operations against these and predict the frames
//! that follow from what they left.

use std::collections::{HashMap, HashSet};

use nat_common::{
    EndpointKey, FirstSession, InsideEndpoint, MAPPING_FORWARD, Mapping, NatConfig,
    SESSION_INBOUND, TCP_ESTABLISHED, TCP_FIN_IN, TCP_FIN_OUT, TCP_PICKUP_IN, TCP_SYN_IN,
    TCP_SYN_RECV,
};

use nat_common::nat64::{Nat64Config, Nat64Host, STAND_IN_SPACE, stand_in};

use super::nat64::{counted_on, is_stand_in};
use super::state::{NOW, State};

const NS: u64 = 1_000_000_000;

/// Idle timeout (s) of a session of `proto` in TCP state `tcp`: TCP
/// established (and half-closed) sessions get `tcp-established`, TCP
/// sessions opened from outside whose handshake is not done `tcp-syn-in`,
/// other TCP states `tcp-transitory`; UDP `udp`, anything else `icmp`.
pub fn session_timeout(cfg: &NatConfig, proto: u8, tcp: u8) -> u32 {
    match proto {
        6 => match tcp {
            TCP_ESTABLISHED | TCP_FIN_OUT | TCP_FIN_IN => cfg.timeout_tcp_established,
            TCP_SYN_IN | TCP_SYN_RECV | TCP_PICKUP_IN => cfg.timeout_tcp_syn_in,
            _ => cfg.timeout_tcp_transitory,
        },
        17 => cfg.timeout_udp,
        _ => cfg.timeout_icmp,
    }
}

/// Idle timeout (s) of a mapping of `proto` with no session left (and of
/// its filter entries): TCP's transitory one, UDP's, ICMP's.
pub fn mapping_timeout(cfg: &NatConfig, proto: u8) -> u32 {
    match proto {
        6 => cfg.timeout_tcp_transitory,
        17 => cfg.timeout_udp,
        _ => cfg.timeout_icmp,
    }
}

fn public_of(k: &EndpointKey, m: &Mapping) -> EndpointKey {
    EndpointKey {
        addr: m.addr,
        port: m.port,
        proto: k.proto,
        _pad: 0,
    }
}

/// An expiry sweep at time `now` with timeouts `cfg` (`stamp` stands for
/// [`NOW`] in `st`: a frame's time). Idle sessions expire (a mapping's
/// first session by emptying its slot); a mapping that is not a forward,
/// has no live session left and is itself idle for its timeout goes, with
/// its public endpoint; a filter entry goes with its mapping, or when idle
/// for the mapping's timeout unless a live session of its public endpoint
/// has its remote address; `INBOUND_SESSIONS` is recounted, and with a
/// per-host cap `HOST_PORTS` too (forwards not counted).
pub fn sweep(st: &State, cfg: &NatConfig, now: u64, stamp: u64) -> State {
    last(sweep_phases(st, cfg, now, stamp), st)
}

fn last(phases: Vec<(&'static str, State)>, st: &State) -> State {
    phases
        .into_iter()
        .last()
        .map_or_else(|| st.clone(), |(_, s)| s)
}

/// The states a sweep passes through, step by step, in the agent's order
/// (each step's decisions taken from the state before the sweep): what a
/// packet running at the same time may meet. The last is [`sweep`]'s.
pub fn sweep_phases(
    st: &State,
    cfg: &NatConfig,
    now: u64,
    stamp: u64,
) -> Vec<(&'static str, State)> {
    let mut phases = Vec::new();
    let mut st = st.clone();
    let t = |v: u64| if v == NOW { stamp } else { v };
    let idle = |last: u64, secs: u32| now.saturating_sub(t(last)) > u64::from(secs) * NS;

    st.sessions
        .retain(|k, s| !idle(s.last_seen, session_timeout(cfg, k.proto, s.tcp)));
    phases.push(("idle SESSIONS entries deleted", st.clone()));
    let live: HashSet<(u32, u16, u8)> = st
        .sessions
        .keys()
        .map(|k| (k.inside_addr, k.inside_port, k.proto))
        .collect();
    let mut in_use: HashSet<(u32, u16, u8, u32)> = st
        .sessions
        .iter()
        .map(|(k, s)| (s.public_addr, s.public_port, k.proto, k.remote_addr))
        .collect();
    st.inbound_sessions = st
        .sessions
        .values()
        .filter(|s| s.flags & SESSION_INBOUND != 0)
        .count() as u64;
    phases.push(("INBOUND_SESSIONS recounted", st.clone()));

    let mut gone = Vec::new();
    let mut emptied = Vec::new();
    for (k, m) in &st.napt_out {
        let mut first_live = m.first.live != 0;
        let mut first_died = false;
        if first_live
            && idle(
                m.first.last_seen,
                session_timeout(cfg, k.proto, m.first.tcp),
            )
        {
            (first_live, first_died) = (false, true);
        }
        let expired = m.flags & MAPPING_FORWARD == 0
            && !first_live
            && !live.contains(&(k.addr, k.port, k.proto))
            && idle(m.last_seen, mapping_timeout(cfg, k.proto));
        if expired {
            gone.push((*k, public_of(k, m)));
        } else if first_died {
            // The mapping stays; its first session's slot is emptied.
            emptied.push(*k);
        } else if first_live {
            in_use.insert((m.addr, m.port, k.proto, m.first.remote_addr));
        }
    }
    // Outbound entries first, then the public endpoints they held.
    for (k, _) in &gone {
        st.napt_out.remove(k);
    }
    phases.push(("idle mappings' NAPT_OUT entries deleted", st.clone()));
    for (_, p) in &gone {
        st.napt_in.remove(p);
    }
    phases.push(("their NAPT_IN entries deleted", st.clone()));
    for k in &emptied {
        if let Some(m) = st.napt_out.get_mut(k) {
            m.first = FirstSession::default();
        }
    }
    phases.push(("idle first sessions emptied", st.clone()));
    let alive: HashSet<(u32, u16, u8)> = st
        .napt_out
        .iter()
        .map(|(k, m)| (m.addr, m.port, k.proto))
        .collect();
    st.filter.retain(|k, last| {
        alive.contains(&(k.public_addr, k.public_port, k.proto))
            && (!idle(*last, mapping_timeout(cfg, k.proto))
                || in_use.contains(&(k.public_addr, k.public_port, k.proto, k.remote_addr)))
    });
    phases.push(("FILTER entries deleted", st.clone()));
    if cfg.max_ports_per_host != 0 {
        // An IPv6 host's on its prefix's counter (README "NAT64").
        let mut held: HashMap<u32, u64> = HashMap::new();
        for (k, m) in &st.napt_out {
            if m.flags & MAPPING_FORWARD == 0 {
                *held.entry(counted_on(&st, k.addr)).or_default() += 1;
            }
        }
        st.host_ports = held;
        phases.push(("HOST_PORTS recounted", st));
    }
    phases
}

/// Which flows `xnat flows flush` takes: of a protocol, of an inside host
/// (network order), or all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushFilter {
    pub proto: Option<u8>,
    pub inside: Option<u32>,
}

impl FlushFilter {
    fn matches(&self, proto: u8, inside: u32) -> bool {
        self.proto.is_none_or(|p| p == proto) && self.inside.is_none_or(|a| a == inside)
    }
}

/// `xnat flows flush`: the sessions and dynamic mappings (never forwards)
/// of the flows `f` names go, with their public endpoints and filter
/// entries; the per-host port counts drop by the mappings taken (an entry
/// reaching 0 goes).
pub fn flush(st: &State, f: FlushFilter) -> State {
    last(flush_phases(st, f), st)
}

/// The states a flush passes through, in the agent's order; the last is
/// [`flush`]'s.
pub fn flush_phases(st: &State, f: FlushFilter) -> Vec<(&'static str, State)> {
    let mut phases = Vec::new();
    let mut st = st.clone();
    let taken: Vec<(EndpointKey, Mapping)> = st
        .napt_out
        .iter()
        .filter(|(k, m)| m.flags & MAPPING_FORWARD == 0 && f.matches(k.proto, k.addr))
        .map(|(k, m)| (*k, *m))
        .collect();
    // Sessions first, then the mappings' outbound entries, then their
    // public endpoints.
    st.sessions
        .retain(|k, _| !f.matches(k.proto, k.inside_addr));
    phases.push(("SESSIONS entries deleted", st.clone()));
    for (k, _) in &taken {
        st.napt_out.remove(k);
    }
    phases.push(("NAPT_OUT entries deleted", st.clone()));
    let mut public = HashSet::new();
    let mut per_host: HashMap<u32, u64> = HashMap::new();
    for (k, m) in &taken {
        let p = public_of(k, m);
        st.napt_in.remove(&p);
        public.insert((p.addr, p.port, p.proto));
        *per_host.entry(counted_on(&st, k.addr)).or_default() += 1;
    }
    phases.push(("NAPT_IN entries deleted", st.clone()));
    st.filter
        .retain(|k, _| !public.contains(&(k.public_addr, k.public_port, k.proto)));
    phases.push(("FILTER entries deleted", st.clone()));
    st.host_ports.retain(|addr, held| match per_host.get(addr) {
        Some(n) if *held <= *n => false,
        Some(n) => {
            *held -= n;
            true
        }
        None => true,
    });
    phases.push(("HOST_PORTS counts lowered", st));
    phases
}

/// A port forward: protocol, public endpoint, inside endpoint (keys in
/// network order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    pub public: EndpointKey,
    pub inside: EndpointKey,
}

/// A configuration to reload to (NAPT on, the same pool and inside
/// prefixes).
#[derive(Clone, Debug)]
pub struct Reload {
    pub config: NatConfig,
    /// Static 1:1 maps, private → public (network order).
    pub static_maps: Vec<(u32, u32)>,
    pub forwards: Vec<Forward>,
    /// NAT64's prefix (`enabled == 0`: NAT64 off) and its static entries,
    /// IPv6 host → public address (network order; NAT64 on only).
    pub nat64: Nat64Config,
    pub nat64_maps: Vec<([u8; 16], u32)>,
}

/// The static NAT64 entries of `st`: (IPv6 host, public address,
/// stand-in) of each static 1:1 entry from a stand-in, the host as
/// `NAT64_IDS` names it (unspecified if it names none).
pub fn nat64_maps(st: &State) -> Vec<([u8; 16], u32, u32)> {
    let mut v: Vec<([u8; 16], u32, u32)> = st
        .static_out
        .iter()
        .filter(|(s, _)| is_stand_in(**s))
        .map(|(s, public)| {
            let host = st.nat64_ids.get(s).map_or([0; 16], |h| h.addr);
            (host, *public, *s)
        })
        .collect();
    v.sort();
    v
}

/// How a reload went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// Everything applied.
    Applied,
    /// Refused: nothing changed.
    Refused(String),
}

/// The forwards in force: `NAPT_IN` entries flagged as forwards, TCP and
/// UDP.
pub fn forwards(st: &State) -> Vec<Forward> {
    let mut v: Vec<Forward> = st
        .napt_in
        .iter()
        .filter(|(k, i)| i.flags & MAPPING_FORWARD != 0 && matches!(k.proto, 6 | 17))
        .map(|(k, i)| Forward {
            public: *k,
            inside: EndpointKey {
                addr: i.addr,
                port: i.port,
                proto: k.proto,
                _pad: 0,
            },
        })
        .collect();
    v.sort_by_key(|f| {
        (
            f.public.proto,
            u32::from_be(f.public.addr),
            u16::from_be(f.public.port),
        )
    });
    v
}

/// A reload to `want` (README "Reload"): forwards and static maps no
/// longer wanted go, the NAPT settings are written, new static maps and
/// forwards are added. A reload that cannot do all of it changes nothing:
/// it is refused if a forward to add names a public endpoint that is
/// taken (by a live dynamic mapping, or by anything in `NAPT_IN` once the
/// forwards no longer wanted are gone) or an inside endpoint that has a
/// mapping, or if the mapping tables have no room for the new forwards.
pub fn reload(st: &State, want: &Reload) -> (State, Reloaded) {
    match apply_reload(st, want, &mut Vec::new()) {
        (after, None) => (after, Reloaded::Applied),
        (_, Some(why)) => (st.clone(), Reloaded::Refused(why)),
    }
}

/// The states a reload passes through as the agent applies it (up to
/// where it stops, if it fails part way).
pub fn reload_phases(st: &State, want: &Reload) -> Vec<(&'static str, State)> {
    let mut phases = Vec::new();
    let _ = apply_reload(st, want, &mut phases);
    phases
}

/// What a reload that applies its steps in turn and stops at the first
/// that fails leaves (the state part way, and why), if one fails: forwards
/// no longer wanted removed (outbound entry first), static maps no longer
/// wanted removed, the NAPT settings written, new static maps added, then
/// new forwards added until one finds its public endpoint in `NAPT_IN`,
/// its inside endpoint in `NAPT_OUT`, or no room. Not what README
/// promises ([`reload`]); the fuzzer names a reload that does this.
pub fn reload_part_way(st: &State, want: &Reload) -> Option<(State, String)> {
    match apply_reload(st, want, &mut Vec::new()) {
        (part, Some(why)) => Some((part, why)),
        (_, None) => None,
    }
}

fn apply_reload(
    st: &State,
    want: &Reload,
    phases: &mut Vec<(&'static str, State)>,
) -> (State, Option<String>) {
    // The state as the steps leave it, and why they stopped, if they did.
    let mut st = st.clone();
    let live = forwards(&st);
    let adding: Vec<Forward> = want
        .forwards
        .iter()
        .filter(|f| !live.contains(f))
        .copied()
        .collect();
    for f in &adding {
        for (k, m) in st
            .napt_out
            .iter()
            .filter(|(_, m)| m.flags & MAPPING_FORWARD == 0)
        {
            if public_of(k, m) == f.public || *k == f.inside {
                let why = format!("forward {f:?} meets live binding {k:?}");
                return (st.clone(), Some(why));
            }
        }
    }
    for f in live.iter().filter(|f| !want.forwards.contains(f)) {
        st.napt_out.remove(&f.inside);
        phases.push(("a forward's NAPT_OUT entry removed", st.clone()));
        st.napt_in.remove(&f.public);
        phases.push(("a forward removed", st.clone()));
    }
    // (Static 1:1 entries from a stand-in are static NAT64's, below.)
    let removed: Vec<(u32, u32)> = st
        .static_out
        .iter()
        .filter(|(p, q)| !is_stand_in(**p) && !want.static_maps.contains(&(**p, **q)))
        .map(|(p, q)| (*p, *q))
        .collect();
    for (private, public) in removed {
        st.static_out.remove(&private);
        st.static_in.remove(&public);
        phases.push(("a static map removed", st.clone()));
    }
    // NAT64's prefix is rewritten where it differs (on or off, prefix,
    // host prefix);
    // switched off, the map is zeroed. Its dynamic bindings stay: they
    // are NAPT bindings.
    // (On, the inside links' smallest MTU is written too, where it
    // differs.)
    let on = |c: &Nat64Config| (c.enabled != 0).then_some((c.prefix, c.prefix_len, c.host_prefix));
    let nat64_changed = on(&st.nat64) != on(&want.nat64)
        || (want.nat64.enabled != 0 && st.nat64.inside_mtu != want.nat64.inside_mtu);
    if nat64_changed && want.nat64.enabled == 0 {
        st.nat64 = Nat64Config::default();
        phases.push(("NAT64 switched off", st.clone()));
    }
    // Static NAT64 entries no longer wanted: the host first (if it still
    // names the stand-in), the static 1:1 entries, the stand-in.
    for (host, public, s) in nat64_maps(&st) {
        if want.nat64_maps.contains(&(host, public)) {
            continue;
        }
        if st.nat64_hosts.get(&host) == Some(&s) {
            st.nat64_hosts.remove(&host);
            phases.push(("a static NAT64 host unnamed", st.clone()));
        }
        st.static_out.remove(&s);
        st.static_in.remove(&public);
        phases.push(("a static NAT64 entry's 1:1 maps removed", st.clone()));
        st.nat64_ids.remove(&s);
        phases.push(("a static NAT64 stand-in freed", st.clone()));
    }
    st.config = want.config;
    phases.push(("CONFIG written", st.clone()));
    for &(private, public) in &want.static_maps {
        if st.static_out.insert(private, public) != Some(public) {
            st.static_in.insert(public, private);
            phases.push(("a static map added", st.clone()));
        }
    }
    // New static NAT64 entries: the highest stand-in nobody holds
    // (from 0.255.255.254 down), its static 1:1 entries, then the host
    // pointed at it (its new flows take it; a dynamic stand-in it had
    // stays for its bindings).
    let live: Vec<([u8; 16], u32)> = nat64_maps(&st).iter().map(|(h, p, _)| (*h, *p)).collect();
    for &(host, public) in &want.nat64_maps {
        if live.contains(&(host, public)) {
            continue;
        }
        let Some(s) = (1..=STAND_IN_SPACE)
            .rev()
            .map(stand_in)
            .find(|s| !st.nat64_ids.contains_key(s))
        else {
            return (st, Some("no free stand-in".into()));
        };
        st.nat64_ids.insert(
            s,
            Nat64Host {
                addr: host,
                created: 0,
            },
        );
        phases.push(("a static NAT64 stand-in reserved", st.clone()));
        st.static_out.insert(s, public);
        st.static_in.insert(public, s);
        phases.push(("a static NAT64 entry's 1:1 maps added", st.clone()));
        st.nat64_hosts.insert(host, s);
        phases.push(("a static NAT64 host named", st.clone()));
    }
    if nat64_changed && want.nat64.enabled != 0 {
        st.nat64 = want.nat64;
        phases.push(("NAT64's prefix written", st.clone()));
    }
    // The fast path and the XDP redirect targets as the new config has
    // them (README "Reload"): the fuzzer's reloads name neither
    // `--fast-path` nor `--xdp-redirect`, so both go off.
    if st.gateway.fast_path {
        st.gateway.fast_path = false;
        phases.push(("the fast path switched off", st.clone()));
    }
    if !st.gateway.xdp_targets.is_empty() {
        st.gateway.xdp_targets.clear();
        phases.push(("XDP_TARGETS emptied", st.clone()));
    }
    for f in &adding {
        let why = if st.napt_in.contains_key(&f.public) {
            "public endpoint taken"
        } else if st.napt_out.contains_key(&f.inside) {
            "inside endpoint mapped"
        } else if st.napt_in.len() >= st.capacity.napt_in {
            "NAPT_IN full"
        } else if st.napt_out.len() >= st.capacity.napt_out {
            "NAPT_OUT full"
        } else {
            st.napt_in.insert(
                f.public,
                InsideEndpoint {
                    addr: f.inside.addr,
                    port: f.inside.port,
                    flags: MAPPING_FORWARD,
                },
            );
            phases.push(("a forward's NAPT_IN entry added", st.clone()));
            st.napt_out.insert(
                f.inside,
                Mapping {
                    addr: f.public.addr,
                    port: f.public.port,
                    flags: MAPPING_FORWARD,
                    ..Default::default()
                },
            );
            phases.push(("a forward added", st.clone()));
            continue;
        };
        return (st, Some(format!("{f:?}: {why}")));
    }
    (st, None)
}
