//! Comparing a program's run with the model's prediction: verdict, every
//! output byte, every map entry (timestamps the program sets must lie
//! within the run), counters and events.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;

use nat_common::blocks::{BlockOwner, HostBlocks};
use nat_common::nat64::Nat64Host;
use nat_common::stats::COUNTER_COUNT;
use nat_common::{Counter, FirstSession, FragValue, InsideEndpoint, Mapping, Session};

use crate::model::{Held, NOW, Prediction, State};

/// The kernel clock before and after the run.
#[derive(Clone, Copy)]
pub struct Window {
    pub t0: u64,
    pub t1: u64,
}

impl Window {
    fn ts(&self, want: u64, got: u64) -> bool {
        if want == NOW {
            // The data plane's clock is cached per CPU per jiffy: it can
            // lag the user-space reading a little.
            crate::napt_maps::clock_window(self.t0, self.t1).contains(&got)
        } else {
            want == got
        }
    }
}

trait Stamped: Debug {
    fn same(&self, real: &Self, w: &Window) -> bool;
}

impl Stamped for Mapping {
    fn same(&self, r: &Self, w: &Window) -> bool {
        self.addr == r.addr
            && self.port == r.port
            && self.flags == r.flags
            && w.ts(self.created, r.created)
            && w.ts(self.last_seen, r.last_seen)
            && self.first.same(&r.first, w)
    }
}

impl Stamped for FirstSession {
    fn same(&self, r: &Self, w: &Window) -> bool {
        (self.remote_addr, self.remote_port, self.tcp, self.live)
            == (r.remote_addr, r.remote_port, r.tcp, r.live)
            && w.ts(self.last_seen, r.last_seen)
            && (
                self.packets_out,
                self.packets_in,
                self.bytes_out,
                self.bytes_in,
            ) == (r.packets_out, r.packets_in, r.bytes_out, r.bytes_in)
    }
}

/// `NAPT_IN` values hold no timestamp.
impl Stamped for InsideEndpoint {
    fn same(&self, r: &Self, _: &Window) -> bool {
        self == r
    }
}

impl Stamped for Session {
    fn same(&self, r: &Self, w: &Window) -> bool {
        w.ts(self.created, r.created)
            && w.ts(self.last_seen, r.last_seen)
            && (
                self.packets_out,
                self.packets_in,
                self.bytes_out,
                self.bytes_in,
            ) == (r.packets_out, r.packets_in, r.bytes_out, r.bytes_in)
            && (self.public_addr, self.public_port, self.tcp, self.flags)
                == (r.public_addr, r.public_port, r.tcp, r.flags)
    }
}

impl Stamped for u64 {
    fn same(&self, r: &Self, w: &Window) -> bool {
        w.ts(*self, *r)
    }
}

impl Stamped for FragValue {
    fn same(&self, r: &Self, w: &Window) -> bool {
        self.new_addr == r.new_addr && w.ts(self.seen, r.seen)
    }
}

impl Stamped for Held {
    fn same(&self, r: &Self, w: &Window) -> bool {
        self.data == r.data && w.ts(self.seen, r.seen)
    }
}

/// A block's owner, stamped when the data plane claimed it.
impl Stamped for BlockOwner {
    fn same(&self, r: &Self, w: &Window) -> bool {
        (self.host, self._pad) == (r.host, r._pad) && w.ts(self.allocated, r.allocated)
    }
}

/// A host's list of blocks holds no timestamp: every byte counts (the
/// entries past `count` too, as the data plane and the agent leave them).
impl Stamped for HostBlocks {
    fn same(&self, r: &Self, _: &Window) -> bool {
        self == r
    }
}

/// The IPv6 host behind a stand-in, stamped when the data plane reserved
/// the stand-in.
impl Stamped for Nat64Host {
    fn same(&self, r: &Self, w: &Window) -> bool {
        self.addr == r.addr && w.ts(self.created, r.created)
    }
}

/// An IPv6 host's stand-in, as the maps hold it.
#[derive(Debug, PartialEq, Eq)]
struct StandIn(std::net::Ipv4Addr);

impl Stamped for StandIn {
    fn same(&self, r: &Self, _: &Window) -> bool {
        self == r
    }
}

/// Host-port counts are plain numbers (no timestamp).
#[derive(Debug, PartialEq, Eq)]
struct Count(u64);

impl Stamped for Count {
    fn same(&self, r: &Self, _: &Window) -> bool {
        self == r
    }
}

fn diff_map<K: Eq + Hash + Debug, V: Stamped>(
    name: &str,
    want: &HashMap<K, V>,
    got: &HashMap<K, V>,
    w: &Window,
    out: &mut Vec<String>,
) {
    for (k, v) in want {
        match got.get(k) {
            None => out.push(format!("{name}: missing {k:?} => {v:?}")),
            Some(g) if !v.same(g, w) => out.push(format!(
                "{name}: {k:?}\n      model:   {v:?}\n      program: {g:?}"
            )),
            Some(_) => {}
        }
    }
    for (k, g) in got {
        if !want.contains_key(k) {
            out.push(format!("{name}: unexpected {k:?} => {g:?}"));
        }
    }
}

/// Differences between the predicted and the real state (empty if none).
pub fn states(want: &State, got: &State, w: &Window) -> Vec<String> {
    let mut out = Vec::new();
    diff_map("NAPT_OUT", &want.napt_out, &got.napt_out, w, &mut out);
    diff_map("NAPT_IN", &want.napt_in, &got.napt_in, w, &mut out);
    diff_map("SESSIONS", &want.sessions, &got.sessions, w, &mut out);
    diff_map("FILTER", &want.filter, &got.filter, w, &mut out);
    let counts = |m: &HashMap<u32, u64>| -> HashMap<u32, Count> {
        m.iter().map(|(k, v)| (*k, Count(*v))).collect()
    };
    diff_map(
        "HOST_PORTS",
        &counts(&want.host_ports),
        &counts(&got.host_ports),
        w,
        &mut out,
    );
    diff_map("BLOCKS", &want.blocks, &got.blocks, w, &mut out);
    diff_map(
        "HOST_BLOCKS",
        &want.host_blocks,
        &got.host_blocks,
        w,
        &mut out,
    );
    if want.inbound_sessions != got.inbound_sessions {
        out.push(format!(
            "INBOUND_SESSIONS: model {}, program {}",
            want.inbound_sessions, got.inbound_sessions
        ));
    }
    diff_map("FRAGS_OUT/FRAGS_IN", &want.frags, &got.frags, w, &mut out);
    diff_map("FRAG_HOLD", &want.held, &got.held, w, &mut out);
    let hosts = |m: &HashMap<[u8; 16], u32>| -> HashMap<std::net::Ipv6Addr, StandIn> {
        m.iter()
            .map(|(k, v)| {
                (
                    std::net::Ipv6Addr::from(*k),
                    StandIn(crate::napt_maps::ip(*v)),
                )
            })
            .collect()
    };
    diff_map(
        "NAT64_HOSTS",
        &hosts(&want.nat64_hosts),
        &hosts(&got.nat64_hosts),
        w,
        &mut out,
    );
    let ids = |m: &HashMap<u32, Nat64Host>| -> HashMap<std::net::Ipv4Addr, Nat64Host> {
        m.iter()
            .map(|(k, v)| (crate::napt_maps::ip(*k), *v))
            .collect()
    };
    diff_map(
        "NAT64_IDS",
        &ids(&want.nat64_ids),
        &ids(&got.nat64_ids),
        w,
        &mut out,
    );
    out
}

/// Differences between predicted counter increments and real ones.
pub fn counters(
    p: &Prediction,
    before: &[u64; COUNTER_COUNT as usize],
    after: &[u64; COUNTER_COUNT as usize],
) -> Vec<String> {
    let mut out = Vec::new();
    for c in Counter::ALL {
        let want: u64 = p
            .counters
            .iter()
            .filter(|(k, _)| *k == c)
            .map(|(_, v)| v)
            .sum();
        let got = after[c as usize].wrapping_sub(before[c as usize]);
        if want != got {
            out.push(format!(
                "counter {}: model +{want}, program +{got}",
                c.name()
            ));
        }
    }
    out
}
