//! The maps the programs share with user space (names and sizes come from
//! nat-common so both sides agree). User space pins them per interface.
use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray},
};
use nat_common::{Ipv4Be, STATIC_MAX_ENTRIES, stats::COUNTER_COUNT};

/// Static 1:1 NAT, private → public (consulted on egress).
#[map]
pub static STATIC_OUT: HashMap<Ipv4Be, Ipv4Be> = HashMap::with_max_entries(STATIC_MAX_ENTRIES, 0);

/// Static 1:1 NAT, public → private (consulted on ingress).
#[map]
pub static STATIC_IN: HashMap<Ipv4Be, Ipv4Be> = HashMap::with_max_entries(STATIC_MAX_ENTRIES, 0);

/// Per-CPU counters indexed by `nat_common::Counter`.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);
