//! The small address universe the fuzzer works in: few hosts, few ports,
//! so generated frames keep hitting the same mappings, sessions, filter
//! entries and fragment records, and the port allocator runs into taken
//! ports and exhausted ranges.

use std::net::{Ipv4Addr, Ipv6Addr};

use std::collections::{HashMap, HashSet};

use nat_common::{
    EndpointKey, FilterKey, FirstSession, InsideEndpoint, MAPPING_FORWARD, MAPPING_PEER, Mapping,
    NatConfig, SESSION_INBOUND, SessionKey, TCP_PICKUP_OFF,
    blocks::{ALLOCATION_BLOCK, BlockKey, BlockOwner, HostBlocks},
    deterministic::ALLOCATION_DETERMINISTIC,
    nat64::{
        Nat64Config, Nat64Host, PREFIX_LENGTHS, STAND_IN_PROBES, WELL_KNOWN_PREFIX, stand_in_probe,
    },
};
use nat_userspace::settings::napt::Filtering;
use rand::Rng;
use rand::seq::IndexedRandom;

use crate::model::State;
use crate::model::nat64::words;
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
/// IPv6 inside hosts (NAT64). The last is crowded: epochs may give some
/// or all of its stand-in probes to other hosts first ([`seed_nat64`]).
pub const HOSTS6: [Ipv6Addr; 4] = [
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 3),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 4),
];
/// The host prefixes an epoch with NAT64 may count port caps over: the
/// default /64 (the third host apart, the others sharing), /56 (all four
/// sharing), /127 (pairs), each address alone (128, or 0 as an older agent
/// leaves the field).
pub const HOST_PREFIXES: [u8; 6] = [64, 64, 56, 127, 128, 0];
/// Sources NAT64 gives no stand-in: unspecified, multicast, link-local.
pub const BAD_SOURCES6: [Ipv6Addr; 3] = [
    Ipv6Addr::UNSPECIFIED,
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
];
/// A static NAT64 entry (`--nat64-map`): the IPv6 host, the stand-in the
/// control plane gives it (from 0.255.255.254 down, apart from the data
/// plane's), and its public address (one of ext0's).
pub const STATIC64: (Ipv6Addr, Ipv4Addr, Ipv4Addr) = (
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x64),
    Ipv4Addr::new(0, 255, 255, 254),
    Ipv4Addr::new(203, 0, 113, 64),
);
/// Share of epochs with NAT64 on (the others have a prefix, switched off).
pub const NAT64_CHANCE: f64 = 0.6;
/// Share of those with the well-known prefix.
pub const WELL_KNOWN_CHANCE: f64 = 0.3;

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

/// Port block sizes an epoch may configure under block allocation, far
/// below the product's minimum so that hosts fill their blocks, reach
/// their cap and exhaust an address's blocks within a few frames (over
/// `RANGES`: from thousands of blocks down to none). Even, so that half
/// of a block's ports have each parity (the model's odds of a probe that
/// keeps parity count on it).
pub const BLOCK_SIZES: [u32; 4] = [2, 2, 4, 8];
/// `--max-blocks-per-host` of those epochs.
pub const MAX_BLOCKS: [u32; 3] = [1, 1, 2];

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
    } else if rng.random_bool(0.25) {
        // Port block allocation (no per-host port cap there: the blocks
        // are the cap).
        cfg.allocation = ALLOCATION_BLOCK;
        cfg.max_ports_per_host = 0;
        cfg.block_size = *BLOCK_SIZES.choose(rng).unwrap();
        cfg.max_blocks_per_host = *MAX_BLOCKS.choose(rng).unwrap();
    }
    // Often no cap on inbound-created sessions, sometimes one a few
    // frames reach.
    cfg.max_inbound_sessions = *[0, 0, 1, 3].choose(rng).unwrap();
    // Sometimes TCP opens on a SYN only (`--tcp-pickup off`): segments
    // without SYN that would open a mapping or a session are dropped.
    if rng.random_bool(0.3) {
        cfg.tcp_pickup = TCP_PICKUP_OFF;
    }
    if rng.random_bool(0.05) {
        // NAPT off: only the static maps translate.
        cfg.pool_len = 0;
    }
    st.config = cfg;
    st.nat64 = nat64_config(rng);
    for _ in 0..rng.random_range(0..3) {
        if let Some((public, inside)) = unused_pair(st, rng) {
            add_fixed(st, public, inside, MAPPING_FORWARD);
        }
    }
    // (Not over blocks of 8: with the forwards above, more than the small
    // tables hold.)
    if cfg.allocation == ALLOCATION_BLOCK && cfg.block_size <= 4 && rng.random_bool(0.7) {
        forwards_over_a_block(st, rng);
    }
    // Mappings learned from a peer gateway (binding sync): no session,
    // idle since they were announced; TCP and UDP on the ports the frames
    // use, so inbound segments meet them. Room is left in the small tables
    // (whose capacity is drawn after this) for the frames' own mappings.
    for _ in 0..rng.random_range(0..3) {
        if st.napt_out.len() < 4
            && let Some((public, inside)) = unused_pair(st, rng)
        {
            add_fixed(st, public, inside, MAPPING_PEER);
        }
    }
}

/// NAT64's prefix for a new epoch: the well-known 64:ff9b::/96 or a
/// random one of a length RFC 6052 allows (a global unicast start, bits
/// past the length and the "u" octet zero); on or off.
pub fn nat64_config(rng: &mut impl Rng) -> Nat64Config {
    let mut cfg = if rng.random_bool(WELL_KNOWN_CHANCE) {
        Nat64Config::new(WELL_KNOWN_PREFIX, 96)
    } else {
        let len = *PREFIX_LENGTHS.choose(rng).unwrap();
        let mut prefix = [0u8; 16];
        for (i, b) in prefix.iter_mut().enumerate().take(usize::from(len) / 8) {
            *b = if i == 8 { 0 } else { rng.random() };
        }
        prefix[0] = 0x20 | (prefix[0] & 0x1f);
        Nat64Config::new(prefix, len)
    }
    .expect("an RFC 6052 prefix");
    // The inside links' smallest MTU: unknown, in1's, in0's, or one in
    // between.
    cfg.inside_mtu = *[0, 1280, 1500, 1400].choose(rng).unwrap();
    cfg.host_prefix = *HOST_PREFIXES.choose(rng).unwrap();
    if !rng.random_bool(NAT64_CHANCE) {
        // Off, as a reload leaves it: the prefix stays, unused.
        cfg.enabled = 0;
    }
    cfg
}

/// After the epoch's tables are chosen (`st.capacity`): sometimes the
/// static NAT64 entry (both NAT64 tables, and the static 1:1 tables from
/// its stand-in), and sometimes stand-ins of other hosts on some or all of
/// the crowded host's probes (`NAT64_IDS` alone, as the agent leaves one
/// half freed), within the tables' room.
pub fn seed_nat64(st: &mut State, rng: &mut impl Rng) {
    let cap = st.capacity.nat64;
    if rng.random_bool(0.3) {
        let (host, stand_in, public) = STATIC64;
        let s = be(stand_in);
        st.nat64_ids.insert(
            s,
            Nat64Host {
                addr: host.octets(),
                created: 0,
            },
        );
        st.nat64_hosts.insert(host.octets(), s);
        st.static_out.insert(s, be(public));
        st.static_in.insert(be(public), s);
    }
    if rng.random_bool(0.3) {
        let crowded = HOSTS6[3].octets();
        let taken = rng.random_range(1..=STAND_IN_PROBES);
        for i in 0..taken {
            if st.nat64_ids.len() >= cap {
                break;
            }
            let other = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, i as u16 + 1);
            st.nat64_ids.insert(
                stand_in_probe(&words(&crowded), i),
                Nat64Host {
                    addr: other.octets(),
                    created: 1,
                },
            );
        }
    }
}

/// A TCP or UDP public endpoint of the pool and an inside endpoint, on
/// the ports the frames use, neither mapped yet (`None`: the draw met one
/// that is).
fn unused_pair(st: &State, rng: &mut impl Rng) -> Option<(EndpointKey, EndpointKey)> {
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
    let unused = !st.napt_in.contains_key(&public) && !st.napt_out.contains_key(&inside);
    unused.then_some((public, inside))
}

/// A mapping from `inside` to `public` that no packet made, flagged
/// `flags` in both entries: a port forward (`MAPPING_FORWARD`, as `xnat
/// forward add` writes it) or one learned from a peer gateway
/// (`MAPPING_PEER`, as binding sync writes it). No timestamps, no first
/// session (their sessions are all in `SESSIONS`).
fn add_fixed(st: &mut State, public: EndpointKey, inside: EndpointKey, flags: u16) {
    st.napt_out.insert(
        inside,
        Mapping {
            addr: public.addr,
            port: public.port,
            flags,
            ..Default::default()
        },
    );
    st.napt_in.insert(
        public,
        InsideEndpoint {
            addr: inside.addr,
            port: inside.port,
            flags,
        },
    );
}

/// Under block allocation: forwards on every port of a block holding a
/// port the generator uses (of TCP and UDP for a block of two ports, of
/// one of them for a block of four), on a pool address some host has,
/// so that a host claiming that block finds no port in it.
fn forwards_over_a_block(st: &mut State, rng: &mut impl Rng) {
    let c = st.config;
    let (min, max, size) = (u32::from(c.port_min), u32::from(c.port_max), c.block_size);
    let whole = (max + 1 - min) / size * size;
    let ports: Vec<u32> = PORTS
        .iter()
        .map(|&p| u32::from(p))
        .filter(|&p| p >= min && p - min < whole)
        .collect();
    let Some(&port) = ports.choose(rng) else {
        return;
    };
    let mut paired: Vec<u32> = st.paired.values().copied().collect();
    paired.sort();
    paired.dedup();
    let addr = match paired.choose(rng) {
        Some(&a) => a,
        None => be(*POOL.choose(rng).unwrap()),
    };
    let protos: &[u8] = if size <= 2 {
        &[6, 17]
    } else {
        &[*[6u8, 17].choose(rng).unwrap()]
    };
    let lo = min + (port - min) / size * size;
    for &proto in protos {
        for p in lo..lo + size {
            let key = |addr, port: u32| EndpointKey {
                addr,
                port: (port as u16).to_be(),
                proto,
                _pad: 0,
            };
            let (public, inside) = (key(addr, p), key(be(*INSIDE.choose(rng).unwrap()), p));
            if !st.napt_in.contains_key(&public) && !st.napt_out.contains_key(&inside) {
                add_fixed(st, public, inside, MAPPING_FORWARD);
            }
        }
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
///   mappings left (forwards not counted);
/// * under block allocation, what the block keeper (agent/blocks.rs) and
///   the data plane may leave: see [`blocks_left`].
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
                let counter = crate::model::nat64::counted_on(st, k.addr);
                *held.entry(counter).or_default() += 1;
            }
        }
        changed |= held != st.host_ports;
        st.host_ports = held;
    }
    if st.config.allocation == ALLOCATION_BLOCK && st.config.block_size != 0 {
        changed |= blocks_left(st, rng);
    }
    changed |= stand_ins_left(st, rng);
    changed
}

/// What the agent's sweep may leave of NAT64's stand-ins, a coin for each:
/// * a stand-in no mapping uses and no static entry names is freed:
///   `NAT64_HOSTS` first, then `NAT64_IDS` (sometimes only by a later
///   sweep: frames then meet a stand-in taken that names a host without
///   one);
/// * rarely, one a mapping still uses (the agent found it unused just
///   before the data plane made the mapping): packets to that mapping
///   then find no host.
///
/// Returns whether anything changed.
fn stand_ins_left(st: &mut State, rng: &mut impl Rng) -> bool {
    let mut changed = false;
    let used: HashSet<u32> = st.napt_out.keys().map(|k| k.addr).collect();
    let mut ids: Vec<u32> = st.nat64_ids.keys().copied().collect();
    ids.sort();
    for s in ids {
        if st.static_out.contains_key(&s) {
            continue;
        }
        let chance = if used.contains(&s) { 0.05 } else { 0.5 };
        if !rng.random_bool(chance) {
            continue;
        }
        let host = st.nat64_ids[&s].addr;
        if st.nat64_hosts.get(&host) == Some(&s) {
            st.nat64_hosts.remove(&host);
        }
        if rng.random_bool(0.9) {
            st.nat64_ids.remove(&s);
        }
        changed = true;
    }
    changed
}

/// Under block allocation, a coin for each of:
/// * a block with no binding on its ports (no `NAPT_IN` entry, of any
///   protocol) is released, as the block keeper does once it stayed so
///   for the hold-down: its index leaves its owner's list if the list is
///   on its address and names it (the rest keep their order, the slots
///   freed are zeroed, an emptied list is deleted), then its `BLOCKS`
///   entry goes;
/// * a list lost its last block, which `BLOCKS` still gives its host (two
///   CPUs appending at once; the keeper puts it back later);
/// * a listed block is no longer its host's in `BLOCKS`: gone, or another
///   host's (released, claimed by another host, then put back into the
///   list by a release that had found a binding in it);
/// * a host's list is on the pool address it does not have, with a block
///   held there (stale: the pool changed while it held blocks; its blocks
///   on its own address, if any, stay in `BLOCKS`).
///
/// Returns whether anything changed.
fn blocks_left(st: &mut State, rng: &mut impl Rng) -> bool {
    let mut changed = false;
    let (min, size) = (u32::from(st.config.port_min), st.config.block_size);
    let bound: HashSet<(u32, u32)> = st
        .napt_in
        .keys()
        .map(|k| (k.addr, u32::from(u16::from_be(k.port))))
        .collect();
    let mut blocks: Vec<BlockKey> = st.blocks.keys().copied().collect();
    blocks.sort();
    for k in blocks {
        let lo = min + k.index * size;
        let unused = (lo..lo + size).all(|p| !bound.contains(&(k.addr, p)));
        if !unused || !rng.random_bool(0.5) {
            continue;
        }
        let host = st.blocks[&k].host;
        if let Some(l) = st.host_blocks.get_mut(&host)
            && l.addr == k.addr
            && l.holds(k.index)
        {
            let n = (l.count as usize).min(l.index.len());
            let kept: Vec<u16> = l.index[..n]
                .iter()
                .copied()
                .filter(|&i| u32::from(i) != k.index)
                .collect();
            l.index = Default::default();
            l.index[..kept.len()].copy_from_slice(&kept);
            l.count = kept.len() as u32;
            if l.count == 0 {
                st.host_blocks.remove(&host);
            }
        }
        st.blocks.remove(&k);
        changed = true;
    }
    let mut hosts: Vec<u32> = st.host_blocks.keys().copied().collect();
    hosts.sort();
    for h in hosts {
        let l = st.host_blocks.get_mut(&h).expect("listed");
        let n = (l.count as usize).min(l.index.len());
        if n == 0 {
            continue;
        }
        if rng.random_bool(0.1) {
            l.index[n - 1] = 0;
            l.count = n as u32 - 1;
            changed = true;
        } else if rng.random_bool(0.1) {
            let key = BlockKey {
                addr: l.addr,
                index: u32::from(l.index[rng.random_range(0..n)]),
            };
            let other = be(*INSIDE.choose(rng).unwrap());
            if other == h || rng.random_bool(0.5) {
                st.blocks.remove(&key);
            } else {
                st.blocks.insert(
                    key,
                    BlockOwner {
                        host: other,
                        _pad: 0,
                        allocated: 1,
                    },
                );
            }
            changed = true;
        }
    }
    let count = (u32::from(st.config.port_max) + 1 - min) / size;
    for host in INSIDE.map(be) {
        let Some(&own) = st.paired.get(&host) else {
            continue;
        };
        let others: Vec<u32> = st
            .pool
            .iter()
            .take(st.config.pool_len as usize)
            .copied()
            .filter(|&a| a != own)
            .collect();
        if others.is_empty() || count == 0 || !rng.random_bool(0.05) {
            continue;
        }
        let key = BlockKey {
            addr: *others.choose(rng).unwrap(),
            index: rng.random_range(0..count),
        };
        if st.blocks.contains_key(&key) {
            continue;
        }
        st.blocks.insert(
            key,
            BlockOwner {
                host,
                _pad: 0,
                allocated: 1,
            },
        );
        let mut list = HostBlocks {
            addr: key.addr,
            count: 1,
            ..HostBlocks::default()
        };
        list.index[0] = key.index as u16;
        st.host_blocks.insert(host, list);
        changed = true;
    }
    changed
}
