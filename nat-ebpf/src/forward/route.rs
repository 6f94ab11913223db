//! Forwarding packets ourselves, like a router: look the destination up
//! in the kernel's FIB, decrement the TTL, set the MAC addresses and
//! redirect to the egress device — skipping the stack's routing and
//! forwarding. Used by hairpinning (whose translated packets the stack
//! would drop as martians) and by the fast path (`--fast-path`).
use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS, bpf_fib_lookup},
    helpers::generated::{
        bpf_fib_lookup as fib_lookup, bpf_jiffies64, bpf_redirect, bpf_redirect_neigh,
    },
};
use core::mem::offset_of;
use nat_common::{ROUTE_CACHE_SLOTS, RouteCacheEntry, csum};
use network_types::eth::EthHdr;

use crate::{
    maps::{FAST_PATH, ROUTE_CACHE},
    packet::Packet,
    parse::ipv4::Ipv4,
};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Whether `--fast-path` is on.
#[inline(always)]
pub fn fast_path_enabled() -> bool {
    FAST_PATH
        .get(nat_common::FAST_PATH_ON)
        .is_some_and(|v| *v != 0)
}

/// The external interface's ifindex (0 if unknown).
#[inline(always)]
pub fn external_ifindex() -> u32 {
    FAST_PATH
        .get(nat_common::FAST_PATH_EXT_IFINDEX)
        .copied()
        .unwrap_or(0)
}

/// The TTL of the packet's IPv4 header.
#[inline(always)]
pub fn ttl<P: Packet>(p: &P, ip: &Ipv4) -> Option<u8> {
    p.load(ip.off + Ipv4::TTL_OFF)
}

/// Decrements the TTL (the caller checked it is > 1) and fixes the header
/// checksum.
#[inline(always)]
fn decrement_ttl<P: Packet>(p: &mut P, ip: &Ipv4) -> Option<()> {
    let word: u16 = p.load(ip.off + Ipv4::TTL_OFF)?; // TTL and protocol
    let mut bytes = word.to_ne_bytes();
    bytes[0] = bytes[0].wrapping_sub(1);
    let new = u16::from_ne_bytes(bytes);
    let check = ip.check;
    p.store(ip.off + Ipv4::TTL_OFF, &new)?;
    p.store(ip.off + Ipv4::CHECK_OFF, &csum::replace2(check, word, new))
}

/// Where the FIB sends a packet.
pub enum Route {
    /// Next hop resolved: egress device and MACs.
    Resolved {
        ifindex: u32,
        smac: [u8; 6],
        dmac: [u8; 6],
    },
    /// Egress device known, neighbour not resolved yet (TC can let the
    /// kernel resolve it with bpf_redirect_neigh; XDP must fall back).
    NoNeigh { ifindex: u32 },
    /// Not forwardable here (local, unreachable, needs fragmenting, ...):
    /// the stack must handle it.
    Stack,
}

/// FIB lookup for `src` → `dst` as if the packet arrived on `ifindex`.
///
/// `mtu_len` is the length the egress MTU is checked against: the
/// packet's total length, or 0 for TC GSO super-packets so the kernel
/// checks the skb itself (a GRO-merged burst is forwardable though longer
/// than the MTU: it is segmented on the way out).
///
/// A resolved result is cached per CPU for the rest of the timer tick
/// (1-10 ms): `bpf_fib_lookup` costs ~200 ns here, more than the whole
/// translation, and a flow sends many packets per tick. A route or
/// neighbour change reaches the fast path at the next tick; packets in
/// flight during a change go either way on any router.
#[inline(always)]
pub fn lookup<C: EbpfContext>(
    ctx: &C,
    ip: &Ipv4,
    ifindex: u32,
    src: u32,
    dst: u32,
    mtu_len: u16,
) -> Route {
    cached(src, dst, ifindex, mtu_len, || {
        let mut params = query(ip.proto, ifindex, mtu_len);
        params.family = AF_INET;
        params.__bindgen_anon_3.ipv4_src = src;
        params.__bindgen_anon_4.ipv4_dst = dst;
        fib(ctx, params)
    })
}

/// The same for an IPv6 packet (NAT64's inbound fast path): `src6` →
/// `dst6`, `mtu_len` its whole length (40-byte header included). It is
/// cached under `key`, two IPv4 addresses that name the same pair for the
/// rest of the tick: NAT64's IPv4 source (the remote, embedded in `src6`
/// by the prefix) and the stand-in (`dst6`'s host, 1:1). A stand-in is
/// never the destination of an IPv4 lookup, so the keys never meet.
#[inline(always)]
pub fn lookup6<C: EbpfContext>(
    ctx: &C,
    proto: u8,
    ifindex: u32,
    src6: &[u32; 4],
    dst6: &[u32; 4],
    key: (u32, u32),
    mtu_len: u16,
) -> Route {
    cached(key.0, key.1, ifindex, mtu_len, || {
        let mut params = query(proto, ifindex, mtu_len);
        params.family = AF_INET6;
        params.__bindgen_anon_3.ipv6_src = *src6;
        params.__bindgen_anon_4.ipv6_dst = *dst6;
        fib(ctx, params)
    })
}

/// `fib()`'s answer, from the per-CPU cache when a lookup with the same
/// key and no shorter length was made this tick.
#[inline(always)]
fn cached(src: u32, dst: u32, ifindex: u32, mtu_len: u16, fib: impl FnOnce() -> Route) -> Route {
    // GSO packets (mtu_len 0) need the kernel's own check of the skb:
    // never cached.
    if mtu_len == 0 {
        return fib();
    }
    // SAFETY: helper without arguments (inlined by the verifier).
    let now = unsafe { bpf_jiffies64() };
    let slot = cache_slot(src, dst, ifindex);
    let entry = ROUTE_CACHE.get_ptr_mut(slot);
    if let Some(e) = entry {
        // SAFETY: per-CPU slot, only this CPU touches it while we run.
        let e = unsafe { &*e };
        if e.jiffies == now
            && e.src == src
            && e.dst == dst
            && e.iif == ifindex
            && mtu_len as u32 <= e.max_len
        {
            return Route::Resolved {
                ifindex: e.ifindex,
                smac: e.smac,
                dmac: e.dmac,
            };
        }
    }
    let route = fib();
    if let (
        Some(e),
        Route::Resolved {
            ifindex: out,
            smac,
            dmac,
        },
    ) = (entry, &route)
    {
        // SAFETY: as above.
        unsafe {
            *e = RouteCacheEntry {
                jiffies: now,
                src,
                dst,
                iif: ifindex,
                max_len: mtu_len as u32,
                ifindex: *out,
                smac: *smac,
                dmac: *dmac,
            };
        }
    }
    route
}

/// The cache slot of a lookup (multiply-shift hash of its inputs).
#[inline(always)]
fn cache_slot(src: u32, dst: u32, ifindex: u32) -> u32 {
    let h = (src ^ dst.rotate_left(16) ^ ifindex).wrapping_mul(0x9e37_79b9);
    h >> (32 - ROUTE_CACHE_SLOTS.trailing_zeros())
}

/// A lookup's parameters but for the family and addresses.
#[inline(always)]
fn query(proto: u8, ifindex: u32, mtu_len: u16) -> bpf_fib_lookup {
    // SAFETY: zeroed plain-data struct.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    params.l4_protocol = proto;
    params.__bindgen_anon_1.tot_len = mtu_len;
    params.ifindex = ifindex;
    params
}

/// The kernel's FIB lookup (`bpf_fib_lookup`), uncached.
#[inline(always)]
fn fib<C: EbpfContext>(ctx: &C, mut params: bpf_fib_lookup) -> Route {
    // SAFETY: helper call with a stack struct of the size we pass.
    let rc = unsafe {
        fib_lookup(
            ctx.as_ptr(),
            &mut params,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    match rc as u32 {
        BPF_FIB_LKUP_RET_SUCCESS => Route::Resolved {
            ifindex: params.ifindex,
            smac: params.smac,
            dmac: params.dmac,
        },
        BPF_FIB_LKUP_RET_NO_NEIGH => Route::NoNeigh {
            ifindex: params.ifindex,
        },
        _ => Route::Stack,
    }
}

/// FIB lookup with the addresses now in the packet.
#[inline(always)]
pub fn lookup_packet<C: EbpfContext, P: Packet>(
    ctx: &C,
    p: &P,
    ip: &Ipv4,
    ifindex: u32,
    mtu_len: u16,
) -> Route {
    match (
        p.load::<u32>(ip.off + Ipv4::SRC_OFF),
        p.load::<u32>(ip.off + Ipv4::DST_OFF),
    ) {
        (Some(src), Some(dst)) => lookup(ctx, ip, ifindex, src, dst, mtu_len),
        _ => Route::Stack,
    }
}

/// Sends the packet along `route` (not `Stack`): TTL, MACs, redirect.
/// Returns the helper's verdict (TC_ACT_REDIRECT / XDP_REDIRECT), or
/// `None` if the packet could not be prepared.
#[inline(always)]
pub fn send<P: Packet>(p: &mut P, ip: &Ipv4, route: &Route) -> Option<i64> {
    if let Route::Stack = route {
        return None;
    }
    decrement_ttl(p, ip)?;
    redirect(p, route)
}

/// [`send`] for a packet whose hop count the caller already took care
/// of (NAT64 writes its IPv6 header with the hop limit less one): MACs
/// and redirect.
#[inline(always)]
pub fn redirect<P: Packet>(p: &mut P, route: &Route) -> Option<i64> {
    match route {
        Route::Resolved {
            ifindex,
            smac,
            dmac,
        } => {
            p.store(offset_of!(EthHdr, dst_addr) as u32, dmac)?;
            p.store(offset_of!(EthHdr, src_addr) as u32, smac)?;
            // SAFETY: helper call.
            Some(unsafe { bpf_redirect(*ifindex, 0) })
        }
        // The kernel resolves the neighbour and fills in the MACs (TC
        // only; XDP callers never pass NoNeigh here).
        // SAFETY: helper call without neighbour parameters.
        Route::NoNeigh { ifindex } => {
            Some(unsafe { bpf_redirect_neigh(*ifindex, core::ptr::null_mut(), 0, 0) })
        }
        Route::Stack => None,
    }
}
