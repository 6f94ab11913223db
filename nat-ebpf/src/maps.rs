//! The maps the programs share with user space (names and sizes come from
//! nat-common so both sides agree). User space pins them per interface.
use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, DevMapHash, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use nat_common::{
    DEFAULT_MAX_MAPPINGS, DEFAULT_MAX_SESSIONS, EVENTS_BYTES, EXPIRE_KEEP_MAX, EndpointKey,
    ExpireWalk, FRAG_HOLD_MAX, FRAGS_MAX, FilterKey, FragKey, FragValue, HeldFragment, HoldKey,
    INTERNAL_MAX, InsideEndpoint, InternalPrefix, Ipv4Be, MAX_HOSTS, Mapping, NatConfig, POOL_MAX,
    ROUTE_CACHE_SLOTS, RouteCacheEntry, STATIC_MAX_ENTRIES, Session, SessionKey,
    blocks::{BLOCKS_MAX, BlockKey, BlockOwner, HostBlocks},
    nat64::{NAT64_HOSTS_MAX, NAT64_SLOTS, NAT64_SPLIT_VALUE, Nat64Config, Nat64Host},
    stats::COUNTER_COUNT,
    trace::{TRACE_BYTES, TRACE_SCRATCH_LEN, TraceFilter},
};

/// Static 1:1 NAT, private → public (consulted on egress).
#[map]
pub static STATIC_OUT: HashMap<Ipv4Be, Ipv4Be> = HashMap::with_max_entries(STATIC_MAX_ENTRIES, 0);

/// Static 1:1 NAT, public → private (consulted on ingress).
#[map]
pub static STATIC_IN: HashMap<Ipv4Be, Ipv4Be> = HashMap::with_max_entries(STATIC_MAX_ENTRIES, 0);

/// 1 when both static tables are empty (see nat_common::MAP_STATIC_EMPTY).
#[map]
pub static STATIC_EMPTY: Array<u32> = Array::with_max_entries(1, 0);

/// Per-CPU clock cache `[jiffies, ns]` (see clock::now).
#[map]
pub static CLOCK: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU cache of FIB results, one tick each (see forward::lookup).
#[map]
pub static ROUTE_CACHE: PerCpuArray<RouteCacheEntry> =
    PerCpuArray::with_max_entries(ROUTE_CACHE_SLOTS, 0);

/// Per-CPU counters indexed by `nat_common::Counter`.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

// ---- Dynamic NAPT (see nat_common::napt for what each map holds) ----

/// `--fast-path`: 1 forwards established flows in BPF (FIB + redirect).
#[map]
pub static FAST_PATH: Array<u32> = Array::with_max_entries(2, 0);

/// Devices the XDP fast path may redirect to (see nat_common).
#[map]
pub static XDP_TARGETS: DevMapHash = DevMapHash::with_max_entries(64, 0);

/// NAPT configuration; `pool_len == 0` means NAPT is off.
#[map]
pub static CONFIG: Array<NatConfig> = Array::with_max_entries(1, 0);

#[map]
pub static POOL: Array<Ipv4Be> = Array::with_max_entries(POOL_MAX, 0);

/// LPM tries must not be preallocated.
#[map]
pub static INTERNAL: LpmTrie<InternalPrefix, u32> =
    LpmTrie::with_max_entries(INTERNAL_MAX, BPF_F_NO_PREALLOC);

#[map]
pub static NAPT_OUT: HashMap<EndpointKey, Mapping> =
    HashMap::with_max_entries(DEFAULT_MAX_MAPPINGS, 0);

#[map]
pub static NAPT_IN: HashMap<EndpointKey, InsideEndpoint> =
    HashMap::with_max_entries(DEFAULT_MAX_MAPPINGS, 0);

/// Sessions beyond each mapping's first. Not preallocated: most mappings
/// never have one here, and a preallocated table would cost its whole
/// capacity (64 B of kernel header and bucket, plus key and value, per
/// slot) all the same.
#[map]
pub static SESSIONS: HashMap<SessionKey, Session> =
    HashMap::with_max_entries(DEFAULT_MAX_SESSIONS, BPF_F_NO_PREALLOC);

/// Remote addresses beyond each mapping's first session's (address-
/// dependent filtering only). Not preallocated, as `SESSIONS`.
#[map]
pub static FILTER: HashMap<FilterKey, u64> =
    HashMap::with_max_entries(DEFAULT_MAX_SESSIONS, BPF_F_NO_PREALLOC);

/// One entry per inside host, inserted once per host: not preallocated, so
/// it costs what it holds (plus its bucket array).
#[map]
pub static HOST_PORTS: HashMap<Ipv4Be, u64> =
    HashMap::with_max_entries(MAX_HOSTS, BPF_F_NO_PREALLOC);

/// Inside host → its pool address (see nat_common::MAP_HOST_POOL). Not
/// preallocated: it costs what it holds.
#[map]
pub static HOST_POOL: HashMap<Ipv4Be, Ipv4Be> =
    HashMap::with_max_entries(MAX_HOSTS, BPF_F_NO_PREALLOC);

/// Port blocks → their owners, and each host's blocks (see
/// nat_common::blocks). Not preallocated: they cost what they hold.
#[map]
pub static BLOCKS: HashMap<BlockKey, BlockOwner> =
    HashMap::with_max_entries(BLOCKS_MAX, BPF_F_NO_PREALLOC);

#[map]
pub static HOST_BLOCKS: HashMap<Ipv4Be, HostBlocks> =
    HashMap::with_max_entries(BLOCKS_MAX, BPF_F_NO_PREALLOC);

/// Live sessions created by inbound packets (see
/// nat_common::MAP_INBOUND_SESSIONS).
#[map]
pub static INBOUND_SESSIONS: Array<u64> = Array::with_max_entries(1, 0);

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// In-flight fragmented datagrams, outbound (the inside hosts'). LRU is
/// right here (unlike bindings): an entry only serves fragments of one
/// datagram for a few seconds, and a flood of stray fragments must not be
/// able to fill anything up.
#[map]
pub static FRAGS_OUT: LruHashMap<FragKey, FragValue> = LruHashMap::with_max_entries(FRAGS_MAX, 0);

/// In-flight fragmented datagrams, inbound: a table of their own, so a
/// flood of first fragments from the outside evicts only outside ones.
#[map]
pub static FRAGS_IN: LruHashMap<FragKey, FragValue> = LruHashMap::with_max_entries(FRAGS_MAX, 0);

/// Later fragments waiting for their first fragment (TC only; LRU-bounded),
/// outbound.
#[map]
pub static FRAG_HOLD_OUT: LruHashMap<HoldKey, HeldFragment> =
    LruHashMap::with_max_entries(FRAG_HOLD_MAX, 0);

/// The same, inbound: a table of its own, as for `FRAGS_IN`.
#[map]
pub static FRAG_HOLD_IN: LruHashMap<HoldKey, HeldFragment> =
    LruHashMap::with_max_entries(FRAG_HOLD_MAX, 0);

/// Per-CPU staging buffer, too big for the 512-byte BPF stack: a fragment
/// on its way into a hold table, or the bytes of an inbound ICMP error whose
/// checksums are being verified (verify.rs). Never both in one run.
#[map]
pub static FRAG_SCRATCH: PerCpuArray<HeldFragment> = PerCpuArray::with_max_entries(1, 0);

/// Layout version of this pinned state (`nat_common::LAYOUT_VERSION`),
/// written by user space at attach; the programs never read it.
#[map]
pub static VERSION: Array<u32> = Array::with_max_entries(1, 0);

/// `xnat trace`'s filter; `tracer == 0`: off (see nat_common::trace).
#[map]
pub static TRACE_FILTER: Array<TraceFilter> = Array::with_max_entries(1, 0);

/// Records of traced packets.
#[map]
pub static TRACE: RingBuf = RingBuf::with_byte_size(TRACE_BYTES, 0);

/// This CPU's counters as a traced packet found them (too big for the
/// stack next to the programs' own use of it).
#[map]
pub static TRACE_SCRATCH: PerCpuArray<[u64; TRACE_SCRATCH_LEN]> =
    PerCpuArray::with_max_entries(1, 0);

/// The in-kernel expiry walk's input and output (see nat_common::MAP_EXPIRE).
#[map]
pub static EXPIRE: Array<ExpireWalk> = Array::with_max_entries(1, 0);

/// Inside endpoints the walk keeps (see nat_common::MAP_EXPIRE_KEEP).
#[map]
pub static EXPIRE_KEEP: HashMap<EndpointKey, u8> =
    HashMap::with_max_entries(EXPIRE_KEEP_MAX, BPF_F_NO_PREALLOC);

// ---- NAT64 (see nat_common::nat64) ----

/// NAT64's prefix; `enabled == 0`: off.
#[map]
pub static NAT64: Array<Nat64Config> = Array::with_max_entries(1, 0);

/// IPv6 inside host → its stand-in. Not preallocated: it costs what it
/// holds.
#[map]
pub static NAT64_HOSTS: HashMap<[u8; 16], Ipv4Be> =
    HashMap::with_max_entries(NAT64_HOSTS_MAX, BPF_F_NO_PREALLOC);

/// Stand-in → the IPv6 host behind it; the reservation of a stand-in.
#[map]
pub static NAT64_IDS: HashMap<Ipv4Be, Nat64Host> =
    HashMap::with_max_entries(NAT64_HOSTS_MAX, BPF_F_NO_PREALLOC);

/// The NAT64 programs the TC programs tail-call (one program type per
/// array: the kernel ties a program array to its first caller's type).
#[map]
pub static NAT64_TC_PROGS: ProgramArray = ProgramArray::with_max_entries(NAT64_SLOTS, 0);

/// The NAT64 program the XDP ingress program tail-calls.
#[map]
pub static NAT64_XDP_PROGS: ProgramArray = ProgramArray::with_max_entries(NAT64_SLOTS, 0);

/// Scratch for splitting an IPv4 packet into IPv6 fragments: its payload
/// past the first piece (nat64/split.rs).
#[map]
pub static NAT64_SPLIT: PerCpuArray<[u8; NAT64_SPLIT_VALUE]> = PerCpuArray::with_max_entries(1, 0);
