//! The small address universe the fuzzer works in: few hosts, few ports,
//! so generated frames keep hitting the same mappings, sessions, filter
//! entries and fragment records, and the port allocator runs into taken
//! ports and exhausted ranges.

use std::net::Ipv4Addr;

use nat_common::{
    EndpointKey, FILTER_ADDRESS, FILTER_ADDRESS_AND_PORT, FILTER_ENDPOINT_INDEPENDENT,
    InsideEndpoint, MAPPING_FORWARD, Mapping, NatConfig,
};
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
/// low only (class clipping), a handful.
pub const RANGES: [(u16, u16); 4] = [(1024, 65535), (2000, 2007), (1, 1023), (60000, 60003)];

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
    cfg.filtering = *[
        FILTER_ENDPOINT_INDEPENDENT,
        FILTER_ADDRESS,
        FILTER_ADDRESS_AND_PORT,
    ]
    .choose(rng)
    .unwrap();
    (cfg.port_min, cfg.port_max) = *RANGES.choose(rng).unwrap();
    cfg.max_ports_per_host = *[0, 0, 2, 3].choose(rng).unwrap();
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
