//! NAT64 (RFC 6146): an IPv6 inside host's packet is translated to IPv4
//! with the host's stand-in (nat_common::nat64) as its source, then the
//! NAT44 core translates it like any inside host's; the way back, NAT44
//! turns the destination into the stand-in and this module turns the
//! packet into IPv6 for the host. Each direction is a program of its own,
//! tail-called, so the NAT44 programs' verifier budgets do not grow.

/// Checksum sums over IPv6 and IPv4 address pairs, header conversion.
pub mod header;
/// An IPv6 host's stand-in: found, or reserved on its first packet.
pub mod host;
/// ICMP errors about NAT64 flows, IPv4 -> IPv6.
pub mod icmp_error;
/// ICMPv6 errors from inside about NAT64 flows, IPv6 -> IPv4.
pub mod icmpv6_error;
/// IPv4 -> IPv6 (external ingress, after NAT44).
pub mod inbound;
/// IPv6 -> IPv4 (inside ingress, before NAT44).
pub mod outbound;
/// IPv6 -> IPv4 in XDP for established flows (the fast path).
pub mod outbound_xdp;
/// IPv4 packets without DF too big for the inside link: IPv6 fragments.
pub mod split;
/// IPv4 packets too big for the inside link: Fragmentation Needed.
pub mod too_big;

use aya_ebpf::programs::{TcContext, XdpContext};
use nat_common::nat64::{NAT64_SLOT_IN, NAT64_SLOT_OUT, Nat64Config, is_stand_in};

use crate::{
    maps::{NAT64, NAT64_TC_PROGS, NAT64_XDP_PROGS},
    packet::Packet,
    parse::{
        ipv4::{ETH_HLEN, ETH_TYPE_OFF, Ipv4},
        ipv6::ETH_P_IPV6_WIRE,
    },
};

/// The configuration, if NAT64 is on.
#[inline(always)]
pub fn config() -> Option<&'static Nat64Config> {
    NAT64.get(0).filter(|c| c.enabled != 0)
}

/// Whether the frame is IPv6 (the inside program hands those to NAT64).
#[inline(always)]
pub fn is_ipv6<P: Packet>(p: &P) -> bool {
    p.load::<u16>(ETH_TYPE_OFF) == Some(ETH_P_IPV6_WIRE)
}

/// Whether a packet NAT44 just translated inbound is for a stand-in, so
/// for an IPv6 host: one load and a compare on NAT44's inbound path.
#[inline(always)]
pub fn for_stand_in<P: Packet>(p: &P) -> bool {
    p.load::<u32>(ETH_HLEN + Ipv4::DST_OFF)
        .is_some_and(is_stand_in)
}

/// Hands an inside IPv6 frame to the IPv6 -> IPv4 program; returns only
/// if that is not loaded (NAT64 off): the caller passes the frame on.
#[inline(always)]
pub fn tail_call_out(ctx: &TcContext) {
    // SAFETY: a tail call with our own context; it returns only on failure.
    unsafe { NAT64_TC_PROGS.tail_call(ctx, NAT64_SLOT_OUT) };
}

/// Hands an inside IPv6 frame to the XDP IPv6 -> IPv4 program; returns
/// only if that is not loaded: the caller passes the frame on.
#[inline(always)]
pub fn tail_call_out_xdp(ctx: &XdpContext) {
    // SAFETY: a tail call with our own context; it returns only on failure.
    unsafe { NAT64_XDP_PROGS.tail_call(ctx, NAT64_SLOT_OUT) };
}

/// Hands a packet for a stand-in to the IPv4 -> IPv6 program (TC);
/// returns only if that is not loaded: the caller drops the packet.
#[inline(always)]
pub fn tail_call_in_tc(ctx: &TcContext) {
    // SAFETY: as above.
    unsafe { NAT64_TC_PROGS.tail_call(ctx, NAT64_SLOT_IN) };
}

/// The same from XDP.
#[inline(always)]
pub fn tail_call_in_xdp(ctx: &XdpContext) {
    // SAFETY: as above.
    unsafe { NAT64_XDP_PROGS.tail_call(ctx, NAT64_SLOT_IN) };
}
