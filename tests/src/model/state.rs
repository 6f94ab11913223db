//! The maps' contents as the model sees them: everything a frame's
//! translation reads or changes. Keys and values use nat-common's layouts
//! (addresses and ports in network order) so the runner can compare them
//! with the kernel's maps field by field.

use std::collections::HashMap;

use nat_common::{
    EndpointKey, FilterKey, FragKey, FragValue, InsideEndpoint, Mapping, NatConfig, Session,
    SessionKey,
    blocks::{BlockKey, BlockOwner, HostBlocks},
    nat64::{Nat64Config, Nat64Host},
};

use super::gateway::Gateway;

/// Stands for "the kernel's clock at the time the program ran" in a
/// predicted timestamp; the runner checks the real value lies within the
/// run and adopts it.
pub const NOW: u64 = u64::MAX;

/// A later fragment held until its first fragment comes (TC hooks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub seen: u64,
    /// The fragment's IPv4 datagram part (header onwards).
    pub data: Vec<u8>,
}

/// How many entries the dynamic tables can hold (kernel hash maps: a
/// new key does not fit once a table holds this many; an existing one can
/// always be updated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub napt_out: usize,
    pub napt_in: usize,
    pub sessions: usize,
    pub filter: usize,
    /// `NAT64_HOSTS` and `NAT64_IDS` (each).
    pub nat64: usize,
}

impl Capacity {
    /// Tables too large to fill.
    pub const UNLIMITED: Capacity = Capacity {
        napt_out: usize::MAX,
        napt_in: usize::MAX,
        sessions: usize::MAX,
        filter: usize::MAX,
        nat64: usize::MAX,
    };
}

impl Default for Capacity {
    fn default() -> Capacity {
        Capacity::UNLIMITED
    }
}

/// Everything the programs keep.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Static 1:1 NAT, private → public and public → private.
    pub static_out: HashMap<u32, u32>,
    pub static_in: HashMap<u32, u32>,
    /// NAPT configuration; `pool_len == 0` is NAPT off.
    pub config: NatConfig,
    pub pool: Vec<u32>,
    /// Inside prefixes (address in network order, prefix length).
    pub internal: Vec<(u32, u32)>,
    /// Inside endpoint → mapping: its public endpoint, and the session
    /// whose packet created it (`first`, live until the agent expires it).
    pub napt_out: HashMap<EndpointKey, Mapping>,
    /// Public endpoint → the inside endpoint behind it.
    pub napt_in: HashMap<EndpointKey, InsideEndpoint>,
    /// Every session but a mapping's first.
    pub sessions: HashMap<SessionKey, Session>,
    /// Address-dependent filtering: remote addresses a mapping sent to,
    /// other than through its (live) first session's remote endpoint.
    pub filter: HashMap<FilterKey, u64>,
    pub host_ports: HashMap<u32, u64>,
    /// Block allocation: `BLOCKS`, each port block's owner (its
    /// `allocated` stamp [`NOW`] when a frame claimed it), and
    /// `HOST_BLOCKS`, each inside host's list of its blocks.
    pub blocks: HashMap<BlockKey, BlockOwner>,
    pub host_blocks: HashMap<u32, HostBlocks>,
    /// `INBOUND_SESSIONS`: the data plane's count of live sessions that
    /// inbound packets created.
    pub inbound_sessions: u64,
    pub frags: HashMap<FragKey, FragValue>,
    /// NAT64's prefix (`NAT64`; `enabled == 0`: off), each IPv6 inside
    /// host's stand-in (`NAT64_HOSTS`) and the host behind each stand-in
    /// (`NAT64_IDS`, its `created` stamp [`NOW`] when a frame reserved
    /// it).
    pub nat64: Nat64Config,
    pub nat64_hosts: HashMap<[u8; 16], u32>,
    pub nat64_ids: HashMap<u32, Nat64Host>,
    /// Held fragments by datagram and slot.
    pub held: HashMap<(FragKey, u32), Held>,
    /// Not a map: the pool address each inside host was given, over the
    /// whole run (paired pooling must hold across state resets too).
    pub paired: HashMap<u32, u32>,
    /// Not a map either: the capacities of the tables the frames run
    /// against.
    pub capacity: Capacity,
    /// The fast-path settings and the forwarding tables the inside
    /// programs read.
    pub gateway: Gateway,
}

impl State {
    pub fn napt_on(&self) -> bool {
        self.config.pool_len != 0
    }

    pub fn is_internal(&self, addr: u32) -> bool {
        let host = u32::from_be(addr);
        self.internal.iter().any(|&(net, len)| {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            host & mask == u32::from_be(net) & mask
        })
    }

    pub fn in_pool(&self, addr: u32) -> bool {
        self.pool
            .iter()
            .take(self.config.pool_len as usize)
            .any(|&a| a == addr)
    }

    /// Whether a new mapping cannot be made for want of room (in either
    /// table).
    pub fn mapping_tables_full(&self) -> bool {
        self.napt_in.len() >= self.capacity.napt_in || self.napt_out.len() >= self.capacity.napt_out
    }

    /// How full the two mapping tables are, for violation messages.
    pub fn mapping_fill(&self) -> String {
        format!(
            "NAPT_IN at {} of {} and NAPT_OUT at {} of {}",
            self.napt_in.len(),
            self.capacity.napt_in,
            self.napt_out.len(),
            self.capacity.napt_out
        )
    }

    /// The block `after` has for inside host `host` that `self` had not
    /// (an entry that is new, or named another owner or time), if one: what
    /// a frame's allocation claimed, for the oracles.
    pub fn claimed_block(&self, after: &State, host: u32) -> Option<BlockKey> {
        after
            .blocks
            .iter()
            .filter(|(k, o)| o.host == host && self.blocks.get(k) != Some(o))
            .map(|(k, _)| *k)
            .min()
    }

    /// Drops the dynamic state (mappings, sessions, filter entries, port
    /// blocks, fragments, NAT64's stand-ins), keeping configuration and
    /// static maps.
    pub fn clear_dynamic(&mut self) {
        self.napt_out.clear();
        self.napt_in.clear();
        self.sessions.clear();
        self.filter.clear();
        self.host_ports.clear();
        self.blocks.clear();
        self.host_blocks.clear();
        self.inbound_sessions = 0;
        self.frags.clear();
        self.held.clear();
        self.nat64_hosts.clear();
        self.nat64_ids.clear();
    }
}
