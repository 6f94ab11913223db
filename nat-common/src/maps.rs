//! Names, sizes, keys and values of the maps shared by the data plane and the
//! control plane. The maps are pinned under `/sys/fs/bpf/xnat/<ifname>/`
//! with these names, so changing a name or a layout is an on-disk format
//! change.

/// An IPv4 address exactly as it lies in the packet (network byte order),
/// loaded into a native `u32`. User space converts with
/// `u32::from_ne_bytes(addr.octets())`.
pub type Ipv4Be = u32;

/// Static 1:1 NAT, outbound: private address -> public address.
pub const MAP_STATIC_OUT: &str = "STATIC_OUT";
/// Static 1:1 NAT, inbound: public address -> private address.
pub const MAP_STATIC_IN: &str = "STATIC_IN";
/// Single-entry array: 1 when user space knows both static tables are
/// empty, so the programs skip looking them up on every packet. 0 (the
/// value of a fresh map) means "look": a writer that does not know about
/// this flag can never make a static mapping invisible.
pub const MAP_STATIC_EMPTY: &str = "STATIC_EMPTY";
/// Per-CPU cache of the data plane's clock: `[jiffies, ns]`, the
/// CLOCK_BOOTTIME read when this CPU first saw that jiffies value (see
/// nat-ebpf/src/session.rs). Nobody outside the programs reads it.
pub const MAP_CLOCK: &str = "CLOCK";
/// Per-CPU cache of the fast path's FIB results ([`RouteCacheEntry`]), each
/// valid for the timer tick it was made in (see nat-ebpf/src/forward.rs).
/// Nobody outside the programs reads it.
pub const MAP_ROUTE_CACHE: &str = "ROUTE_CACHE";
/// Slots per CPU (direct-mapped by the lookup's addresses and interface).
pub const ROUTE_CACHE_SLOTS: u32 = 256;
const _: () = assert!(ROUTE_CACHE_SLOTS.is_power_of_two());

/// One cached FIB result: packets from `src` to `dst` arriving on `iif`
/// no longer than `max_len` go out of `ifindex` with these MAC addresses.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteCacheEntry {
    /// jiffies when the lookup was made; the entry serves that tick only.
    pub jiffies: u64,
    pub src: u32,
    pub dst: u32,
    pub iif: u32,
    /// The longest packet (IPv4 total length) the route was checked for:
    /// the egress MTU is at least this.
    pub max_len: u32,
    pub ifindex: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
}
#[cfg(feature = "user")]
// SAFETY: #[repr(C)], Copy, integers only, no padding (8 + 5 * 4 + 12 = 40
// bytes, a multiple of its alignment), so every bit pattern is valid.
unsafe impl aya::Pod for RouteCacheEntry {}

/// `--fast-path` switch: `[FAST_PATH_ON]` 1 when on, `[FAST_PATH_EXT_IFINDEX]` the
/// external interface (outbound fast-path packets must route there).
pub const MAP_FAST_PATH: &str = "FAST_PATH";
pub const FAST_PATH_ON: u32 = 0;
pub const FAST_PATH_EXT_IFINDEX: u32 = 1;
/// Devices the XDP fast path may redirect to (a DEVMAP_HASH keyed by
/// ifindex): only devices known to take XDP frames (physical NICs running
/// an xnat XDP program, and those named by `--xdp-redirect`); redirects to
/// anything else would be dropped by the kernel.
pub const MAP_XDP_TARGETS: &str = "XDP_TARGETS";
/// Per-CPU packet counters indexed by [`crate::Counter`].
pub const MAP_STATS: &str = "STATS";
/// The layout version of the pinned state (single-entry array holding
/// [`LAYOUT_VERSION`]), written at attach and checked before a restarted
/// agent adopts pinned maps.
pub const MAP_VERSION: &str = "VERSION";
/// Which optional events the data plane emits into `EVENTS` (single-entry
/// array of `1 << EVENT_*` bits), set by the agent.
pub const MAP_EVENT_MASK: &str = "EVENT_MASK";

/// Version of the on-bpffs format: map names, key and value layouts, map
/// types and counter indices. Bump it whenever any of them changes, so a
/// new `xnat` refuses to adopt state pinned by an incompatible one instead
/// of misreading it.
pub const LAYOUT_VERSION: u32 = 13;

/// Every map the programs define, in the order user space pins them.
pub const ALL_MAPS: &[&str] = &[
    MAP_STATIC_OUT,
    MAP_STATIC_IN,
    MAP_STATIC_EMPTY,
    MAP_STATS,
    MAP_FAST_PATH,
    MAP_XDP_TARGETS,
    crate::napt::MAP_CONFIG,
    crate::napt::MAP_POOL,
    crate::napt::MAP_INTERNAL,
    crate::napt::MAP_NAPT_OUT,
    crate::napt::MAP_NAPT_IN,
    crate::napt::MAP_SESSIONS,
    crate::napt::MAP_FILTER,
    crate::napt::MAP_HOST_PORTS,
    crate::napt::MAP_INBOUND_SESSIONS,
    crate::napt::MAP_HOST_POOL,
    crate::blocks::MAP_BLOCKS,
    crate::blocks::MAP_HOST_BLOCKS,
    crate::napt::MAP_EVENTS,
    crate::napt::MAP_FRAGS_OUT,
    crate::napt::MAP_FRAGS_IN,
    crate::napt::MAP_FRAG_HOLD_OUT,
    crate::napt::MAP_FRAG_HOLD_IN,
    crate::napt::MAP_FRAG_SCRATCH,
    crate::napt::MAP_EXPIRE,
    crate::napt::MAP_EXPIRE_KEEP,
    MAP_VERSION,
    MAP_EVENT_MASK,
    MAP_CLOCK,
    MAP_ROUTE_CACHE,
    crate::trace::MAP_TRACE_FILTER,
    crate::trace::MAP_TRACE,
    crate::trace::MAP_TRACE_SCRATCH,
    crate::nat64::MAP_NAT64,
    crate::nat64::MAP_NAT64_HOSTS,
    crate::nat64::MAP_NAT64_IDS,
    crate::nat64::MAP_NAT64_TC_PROGS,
    crate::nat64::MAP_NAT64_XDP_PROGS,
    crate::nat64::MAP_NAT64_SPLIT,
];

/// Capacity of the static 1:1 table (each direction).
pub const STATIC_MAX_ENTRIES: u32 = 16_384;

/// Program names as they appear in the object file.
pub const PROG_INGRESS_XDP: &str = "xnat_ingress_xdp";
pub const PROG_INGRESS_TC: &str = "xnat_ingress_tc";
/// TC ingress behind `xnat_ingress_xdp` (XDP mode with NAT64): finishes
/// what the XDP program hands over in its metadata.
pub const PROG_INGRESS_HANDOFF_TC: &str = "xnat_ingress_handoff_tc";
pub const PROG_EGRESS_TC: &str = "xnat_egress_tc";
/// Passes every packet: benchmark baseline and veth-peer receiver for XDP
/// redirects.
pub const PROG_NOOP_XDP: &str = "xnat_noop_xdp";
/// Never attached: the agent's expiry walk over the mappings, loaded as a
/// syscall program and run with BPF_PROG_TEST_RUN (see
/// [`crate::napt::MAP_EXPIRE`]).
pub const PROG_EXPIRE: &str = "xnat_expire";
/// TC ingress on inside interfaces (hairpinning).
pub const PROG_INSIDE_TC: &str = "xnat_inside_tc";
/// XDP on inside interfaces (`--inside-hook`): the outbound fast path.
pub const PROG_INSIDE_XDP: &str = "xnat_inside_xdp";
/// NAT64, IPv6 -> IPv4: tail-called by `xnat_inside_tc` for IPv6 frames
/// (slot [`crate::nat64::NAT64_SLOT_OUT`] of `NAT64_TC_PROGS`).
pub const PROG_NAT64_OUT_TC: &str = "xnat_nat64_out_tc";
/// NAT64, IPv6 -> IPv4 for ICMPv6 errors: tail-called by
/// `xnat_nat64_out_tc` (slot `NAT64_SLOT_OUT_ERROR`).
pub const PROG_NAT64_OUT_ERROR_TC: &str = "xnat_nat64_out_error_tc";
/// NAT64 hairpinning's inbound step: tail-called by
/// `xnat_nat64_out_nat44_tc` (slot `NAT64_SLOT_HAIRPIN`).
pub const PROG_NAT64_HAIRPIN_TC: &str = "xnat_nat64_hairpin_tc";
/// NAT64, IPv6 -> IPv4, its NAT44 step: tail-called by `xnat_nat64_out_tc`
/// (slot `NAT64_SLOT_OUT_NAT44`).
pub const PROG_NAT64_OUT_NAT44_TC: &str = "xnat_nat64_out_nat44_tc";
/// NAT64, IPv4 -> IPv6: tail-called by `xnat_ingress_tc` once NAT44 turned
/// the destination into a stand-in (slot `NAT64_SLOT_IN`).
pub const PROG_NAT64_IN_TC: &str = "xnat_nat64_in_tc";
/// The same for `xnat_ingress_xdp` (slot `NAT64_SLOT_IN` of
/// `NAT64_XDP_PROGS`).
pub const PROG_NAT64_IN_XDP: &str = "xnat_nat64_in_xdp";
/// IPv6 -> IPv4 of established flows in XDP, tail-called by
/// `xnat_inside_xdp` (slot `NAT64_SLOT_OUT` of `NAT64_XDP_PROGS`).
pub const PROG_NAT64_OUT_XDP: &str = "xnat_nat64_out_xdp";
