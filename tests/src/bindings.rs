//! NAPT bindings as the data plane makes them, for tests and the benchmark
//! that fill the tables without sending the packets: the flow each binding
//! stands for, its map entries, and a bulk layout that holds up to four
//! million distinct bindings.
use std::net::Ipv4Addr;

use nat_common::{EndpointKey, FirstSession, InsideEndpoint, Mapping, TCP_ESTABLISHED};

use crate::napt_maps::be;

pub const UDP: u8 = 17;
pub const TCP: u8 = 6;

#[derive(Clone, Copy, Debug)]
pub struct Ep {
    pub addr: Ipv4Addr,
    pub port: u16,
}

impl Ep {
    pub const fn new(addr: Ipv4Addr, port: u16) -> Self {
        Ep { addr, port }
    }
}

/// One flow through a mapping.
#[derive(Clone, Copy, Debug)]
pub struct Flow {
    pub proto: u8,
    pub inside: Ep,
    pub public: Ep,
    pub remote: Ep,
}

/// Bulk binding `k` (UDP): 64 ports on each of many inside hosts,
/// spread over the 64 pool addresses, one remote each.
pub fn bulk(k: u32) -> Flow {
    Flow {
        proto: UDP,
        inside: Ep::new(
            Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 64, 0, 0)) + k / 64),
            20000 + (k % 64) as u16,
        ),
        public: Ep::new(
            Ipv4Addr::new(198, 18, 0, (k % 64) as u8),
            1024 + (k / 64) as u16,
        ),
        remote: Ep::new(
            Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 1)) + k % 60_000),
            53,
        ),
    }
}

pub fn ep_key(ep: Ep, proto: u8) -> EndpointKey {
    EndpointKey {
        addr: be(ep.addr),
        port: ep.port.to_be(),
        proto,
        _pad: 0,
    }
}

/// The `NAPT_OUT` value of flow `f` as its first packet made it (counters
/// of one packet each way): the public endpoint and the first session.
pub fn mapping(f: &Flow, now: u64) -> Mapping {
    Mapping {
        addr: be(f.public.addr),
        port: f.public.port.to_be(),
        flags: 0,
        created: now,
        last_seen: now,
        first: FirstSession {
            remote_addr: be(f.remote.addr),
            remote_port: f.remote.port.to_be(),
            tcp: tcp_state(f.proto),
            live: 1,
            last_seen: now,
            packets_out: 1,
            packets_in: 1,
            bytes_out: 50,
            bytes_in: 50,
        },
    }
}

/// The `NAPT_IN` value pointing at inside endpoint `to`.
pub fn inside(to: Ep) -> InsideEndpoint {
    InsideEndpoint {
        addr: be(to.addr),
        port: to.port.to_be(),
        flags: 0,
    }
}

fn tcp_state(proto: u8) -> u8 {
    if proto == TCP { TCP_ESTABLISHED } else { 0 }
}

/// The entries of `flows` as established bindings, as the data plane makes
/// them: a `NAPT_OUT` entry holding the flow's session as its first, and
/// the `NAPT_IN` entry, stamped `now`. A binding with one session has
/// nothing in `SESSIONS` or `FILTER`.
#[derive(Default)]
pub struct Entries {
    pub out: (Vec<EndpointKey>, Vec<Mapping>),
    pub inb: (Vec<EndpointKey>, Vec<InsideEndpoint>),
}

impl Entries {
    pub fn with_capacity(n: usize) -> Self {
        Entries {
            out: (Vec::with_capacity(n), Vec::with_capacity(n)),
            inb: (Vec::with_capacity(n), Vec::with_capacity(n)),
        }
    }

    pub fn push(&mut self, f: &Flow, now: u64) {
        self.out.0.push(ep_key(f.inside, f.proto));
        self.out.1.push(mapping(f, now));
        self.inb.0.push(ep_key(f.public, f.proto));
        self.inb.1.push(inside(f.inside));
    }

    /// Bulk bindings `0..n` ([`bulk`]), stamped `now`.
    pub fn bulk(n: u32, now: u64) -> Self {
        let mut e = Entries::with_capacity(n as usize);
        for k in 0..n {
            e.push(&bulk(k), now);
        }
        e
    }
}
