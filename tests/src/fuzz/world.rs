//! The small address universe the fuzzer works in: few hosts, few ports,
//! so generated frames keep hitting the same mappings, sessions, filter
//! entries and fragment records, and the port allocator runs into taken
//! ports and exhausted ranges.

use std::net::Ipv4Addr;

use std::collections::{HashMap, HashSet};

use nat_common::{
    EndpointKey, FilterKey, FirstSession, InsideEndpoint, MAPPING_FORWARD, Mapping, NatConfig,
    SESSION_INBOUND, SessionKey, deterministic::ALLOCATION_DETERMINISTIC,
};
use nat_userspace::settings::napt::Filtering;
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::model::State;
use crate::napt_maps::{be, default_config};

pub const INTERNAL: (Ipv4Addr, u32) = (Ipv4Addr::new(10, 0, 0, 0), 24);
/// NAPT hosts inside `INTERNAL`.
pub const INSIDE: [Ipv4Addr; 4] = [
    Ipv4Addr::new(10, 0, 0, 1),
    Ipv4Addr::new(10, 0, 0, 2),
    Ipv4Addr::new(10, 0, 0, 3),
    Ipv4Addr::new(10, 0, 0, 4),
];
/// Static 1:1 maps: one host inside `INTERNAL` (static wins over NAPT),
/// one outside it.
pub const STATIC: [(Ipv4Addr, Ipv4Addr); 2] = [
    (Ipv4Addr::new(10, 0, 0, 9), Ipv4Addr::new(203, 0, 113, 9)),
    (Ipv4Addr::new(192, 168, 7, 7), Ipv4Addr::new(203, 0, 113, 7)),
];
/// A private address xnat does not translate.
pub const NOT_INTERNAL: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
pub const POOL: [Ipv4Addr; 2] = [
    Ipv4Addr::new(198, 51, 100, 1),
    Ipv4Addr::new(198, 51, 100, 2),
];
pub const REMOTES: [Ipv4Addr; 3] = [
    Ipv4Addr::new(192, 0, 2, 1),
    Ipv4Addr::new(192, 0, 2, 2),
    Ipv4Addr::new(8, 8, 8, 8),
];
/// A public address that is neither pooled nor mapped.
pub const OTHER_PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 50);
/// Ports that collide: both range classes, both parities, range edges.
pub const PORTS: [u16; 12] = [
    0, 53, 80, 1000, 1023, 1024, 2000, 2001, 2002, 40000, 40001, 65535,
];
/// Port ranges an epoch may configure: wide, narrow (probing, exhaustion),
/// low only (class clipping), a handful, one port of each parity (no
/// public port soon).
pub const RANGES: [(u16, u16); 5] = [
    (1024, 65535),
    (2000, 2007),
    (1, 1023),
    (60000, 60003),
    (60000, 60001),
];

/// Deterministic layouts an epoch may configure (hosts per pool address,
/// ports per host): roomy; two ports per host (exhaustion); hosts 4 and
/// up beyond a two-address pool; one port each.
pub const DETERMINISTIC_LAYOUTS: [(u32, u32); 4] = [(128, 500), (4, 2), (2, 3), (3, 1)];

/// The fixed part of the state: static maps, pool, inside prefix.
pub fn base_state() -> State {
    let mut st = State::default();
    for (private, public) in STATIC {
        st.static_out.insert(be(private), be(public));
        st.static_in.insert(be(public), be(private));
    }
    st.pool = POOL.iter().map(|a| be(*a)).collect();
    st.internal = vec![(be(INTERNAL.0), INTERNAL.1)];
    st.config = default_config();
    st.config.pool_len = POOL.len() as u32;
    st
}

/// A fresh epoch: a random configuration and a few port forwards on an
/// empty dynamic state.
pub fn new_epoch(st: &mut State, rng: &mut impl Rng) {
    st.clear_dynamic();
    let base = base_state();
    if rng.random_bool(0.1) {
        // No static maps (the data plane then skips their lookups).
        st.static_out.clear();
        st.static_in.clear();
    } else {
        st.static_out = base.static_out;
        st.static_in = base.static_in;
    }
    let mut cfg: NatConfig = default_config();
    cfg.pool_len = POOL.len() as u32;
    cfg.filtering = [
        Filtering::EndpointIndependent,
        Filtering::Address,
        Filtering::AddressAndPort,
    ]
    .choose(rng)
    .unwrap()
    .code();
    (cfg.port_min, cfg.port_max) = *RANGES.choose(rng).unwrap();
    cfg.max_ports_per_host = *[0, 0, 2, 3].choose(rng).unwrap();
    if rng.random_bool(0.25) {
        // Deterministic allocation (no per-host cap there: the range is
        // the cap): a roomy layout, tight ones, and ones that reach only
        // some inside hosts (`INSIDE` are hosts 1-4 of the prefix).
        cfg.allocation = ALLOCATION_DETERMINISTIC;
        cfg.max_ports_per_host = 0;
        (cfg.det_hosts_per_addr, cfg.det_ports_per_host) =
            *DETERMINISTIC_LAYOUTS.choose(rng).unwrap();
    }
    // Often no cap on inbound-created sessions, sometimes one a few
    // frames reach.
    cfg.max_inbound_sessions = *[0, 0, 1, 3].choose(rng).unwrap();
    if rng.random_bool(0.05) {
        // NAPT off: only the static maps translate.
        cfg.pool_len = 0;
    }
    st.config = cfg;
    for _ in 0..rng.random_range(0..3) {
        let proto = *[6u8, 17].choose(rng).unwrap();
        let public = EndpointKey {
            addr: be(*POOL.choose(rng).unwrap()),
            port: PORTS.choose(rng).unwrap().to_be(),
            proto,
            _pad: 0,
        };
        let inside = EndpointKey {
            addr: be(*INSIDE.choose(rng).unwrap()),
            port: PORTS.choose(rng).unwrap().to_be(),
            proto,
            _pad: 0,
        };
        if st.napt_in.contains_key(&public) || st.napt_out.contains_key(&inside) {
            continue;
        }
        // As `xnat forward add` writes them: no timestamps, no first
        // session (every session of a forward is in SESSIONS).
        st.napt_out.insert(
            inside,
            Mapping {
                addr: public.addr,
                port: public.port,
                flags: MAPPING_FORWARD,
                ..Default::default()
            },
        );
        st.napt_in.insert(
            public,
            InsideEndpoint {
                addr: inside.addr,
                port: inside.port,
                flags: MAPPING_FORWARD,
            },
        );
    }
}

/// What the agent's expiry sweep (nat-userspace agent/expiry.rs) may leave of
/// the bindings, a coin standing for each idle-time test:
/// * a `SESSIONS` entry may expire (deleted);
/// * a mapping's live first session may expire: the mapping stays with an
///   empty first slot (`FirstSession::default()`; sometimes only `live`
///   cleared, the rest left as it was), or goes with it (below);
/// * a mapping that is not a forward and has no session left (no live
///   first, no `SESSIONS` entry of its inside endpoint) may expire: its
///   `NAPT_OUT` and `NAPT_IN` entries are deleted, in that order (the
///   `NAPT_IN` one sometimes only by the next sweep, so frames meet a
///   public endpoint whose mapping is gone);
/// * `FILTER` entries of a mapping that is gone are deleted; others may
///   expire unless a live session (first or in `SESSIONS`) of their public
///   endpoint has their remote address;
/// * with `--max-ports-per-host`, `HOST_PORTS` is recounted from the
///   mappings left (forwards not counted).
///
/// Returns whether anything changed.
pub fn sweep(st: &mut State, rng: &mut impl Rng) -> bool {
    let mut changed = false;
    // The rest of a sweep interrupted between its two deletes (below):
    // public endpoints whose mapping is gone, or is another one now.
    let mut orphans: Vec<EndpointKey> = st
        .napt_in
        .iter()
        .filter(|(p, i)| {
            st.napt_out
                .get(&EndpointKey {
                    addr: i.addr,
                    port: i.port,
                    proto: p.proto,
                    _pad: 0,
                })
                .is_none_or(|m| (m.addr, m.port) != (p.addr, p.port))
        })
        .map(|(p, _)| *p)
        .collect();
    orphans.sort_by_key(|k| (k.addr, k.port, k.proto));
    for k in orphans {
        st.napt_in.remove(&k);
        changed = true;
    }
    // Keys in a fixed order (a HashMap's differs from run to run), so a
    // seed replays.
    let mut sessions: Vec<SessionKey> = st.sessions.keys().copied().collect();
    sessions.sort_by_key(|k| {
        (
            k.inside_addr,
            k.inside_port,
            k.remote_addr,
            k.remote_port,
            k.proto,
        )
    });
    for k in sessions {
        if rng.random_bool(0.3) {
            st.sessions.remove(&k);
            changed = true;
        }
    }
    let with_sessions: HashSet<(u32, u16, u8)> = st
        .sessions
        .keys()
        .map(|k| (k.inside_addr, k.inside_port, k.proto))
        .collect();
    let mut mappings: Vec<EndpointKey> = st.napt_out.keys().copied().collect();
    mappings.sort_by_key(|k| (k.addr, k.port, k.proto));
    for k in mappings {
        let m = st.napt_out.get_mut(&k).expect("listed");
        if m.flags & MAPPING_FORWARD != 0 {
            continue;
        }
        if m.first.live != 0 && rng.random_bool(0.5) {
            if rng.random_bool(0.8) {
                m.first = FirstSession::default();
            } else {
                // Not what the agent writes, but what the data plane must
                // cope with all the same: a slot is empty by `live` alone.
                m.first.live = 0;
            }
            changed = true;
        }
        let idle = m.first.live == 0 && !with_sessions.contains(&(k.addr, k.port, k.proto));
        if idle && rng.random_bool(0.6) {
            let public = EndpointKey {
                addr: m.addr,
                port: m.port,
                proto: k.proto,
                _pad: 0,
            };
            // NAPT_OUT first, then NAPT_IN; now and then the frames see
            // the moment between the two (the public endpoint still there,
            // its mapping gone: not ours).
            st.napt_out.remove(&k);
            if rng.random_bool(0.9) {
                st.napt_in.remove(&public);
            }
            changed = true;
        }
    }
    let alive: HashSet<(u32, u16, u8)> = st
        .napt_out
        .iter()
        .map(|(k, m)| (m.addr, m.port, k.proto))
        .collect();
    let mut in_use: HashSet<(u32, u16, u8, u32)> = st
        .sessions
        .iter()
        .map(|(k, s)| (s.public_addr, s.public_port, k.proto, k.remote_addr))
        .collect();
    in_use.extend(
        st.napt_out
            .iter()
            .filter(|(_, m)| m.first.live != 0)
            .map(|(k, m)| (m.addr, m.port, k.proto, m.first.remote_addr)),
    );
    let mut filter: Vec<FilterKey> = st.filter.keys().copied().collect();
    filter.sort_by_key(|k| (k.public_addr, k.public_port, k.proto, k.remote_addr));
    for k in filter {
        let id = (k.public_addr, k.public_port, k.proto, k.remote_addr);
        let gone = !alive.contains(&(id.0, id.1, id.2));
        if gone || (!in_use.contains(&id) && rng.random_bool(0.3)) {
            st.filter.remove(&k);
            changed = true;
        }
    }
    // The agent recounts the sessions inbound packets created.
    let inbound = st
        .sessions
        .values()
        .filter(|s| s.flags & SESSION_INBOUND != 0)
        .count() as u64;
    changed |= inbound != st.inbound_sessions;
    st.inbound_sessions = inbound;
    if st.config.max_ports_per_host != 0 {
        let mut held: HashMap<u32, u64> = HashMap::new();
        for (k, m) in &st.napt_out {
            if m.flags & MAPPING_FORWARD == 0 {
                *held.entry(k.addr).or_default() += 1;
            }
        }
        changed |= held != st.host_ports;
        st.host_ports = held;
    }
    changed
}
