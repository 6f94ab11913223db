//! What changes between an IPv6 and an IPv4 header (RFC 7915), and the
//! checksum sums that change with them. Sums are of 16-bit words as they
//! lie in memory (nat_common::csum), so nothing is byte-swapped.
use nat_common::csum::{add32, fold};

use crate::parse::ipv4::IPPROTO_ICMP;

/// ICMP and ICMPv6 echo types.
pub const ICMP_ECHO: u8 = 8;
pub const ICMP_ECHOREPLY: u8 = 0;
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
pub const ICMPV6_ECHO_REPLY: u8 = 129;

/// IPv4 "don't fragment", as the flags-and-offset field lies in memory.
const DF: u16 = 0x4000u16.to_be();

/// Sum of an IPv6 address's words.
#[inline(always)]
pub fn sum6(acc: u64, a: &[u32; 4]) -> u64 {
    add32(add32(add32(add32(acc, a[0]), a[1]), a[2]), a[3])
}

/// Sum of an IPv4 address pair.
#[inline(always)]
pub fn sum4(src: u32, dst: u32) -> u64 {
    add32(add32(0, src), dst)
}

/// The 16-bit value of a sum, as an `old`/`new` argument of the packet's
/// checksum fixers (upper half zero: adds nothing).
#[inline(always)]
pub fn as_field(sum: u64) -> u32 {
    fold(sum) as u32
}

/// The pseudo-header words an ICMPv6 checksum covers beyond the
/// addresses: the upper-layer length and the next header (58), as a sum.
#[inline(always)]
pub fn icmpv6_pseudo_rest(len: u32) -> u64 {
    add32(add32(0, len.to_be()), (58u32).to_be())
}

/// Checksum `check` after removing `old` and adding `new` (sums).
#[inline(always)]
pub fn csum_swap(check: u16, old: u64, new: u64) -> u16 {
    let sum = (!check) as u64 + (!fold(old)) as u64 + fold(new) as u64;
    !fold(sum)
}

/// An IPv4 header for a translated IPv6 packet (RFC 7915 section 5.1):
/// `ttl` as given (the caller's forwarding decrements it), DF set for a
/// packet longer than 1260 bytes (beyond that an IPv6 host expects a Packet
/// Too Big, never fragmentation), otherwise clear with an identification
/// of `id`; the header checksum computed.
#[inline(always)]
pub fn ipv4_header(
    tos: u8,
    tot_len: u32,
    id: u16,
    ttl: u8,
    proto: u8,
    src: u32,
    dst: u32,
) -> [u32; 5] {
    let len = (tot_len as u16).to_be();
    let (frag, id) = if tot_len > 1260 { (DF, 0) } else { (0, id) };
    let w0 = u32::from_ne_bytes([0x45, tos, len.to_ne_bytes()[0], len.to_ne_bytes()[1]]);
    let [i0, i1] = id.to_ne_bytes();
    let [f0, f1] = frag.to_ne_bytes();
    let w1 = u32::from_ne_bytes([i0, i1, f0, f1]);
    let w2 = u32::from_ne_bytes([ttl, proto, 0, 0]);
    let sum = add32(add32(add32(add32(add32(0, w0), w1), w2), src), dst);
    let check = !fold(sum);
    let [c0, c1] = check.to_ne_bytes();
    let w2 = u32::from_ne_bytes([ttl, proto, c0, c1]);
    [w0, w1, w2, src, dst]
}

/// `h` (from [`ipv4_header`]) as a fragment: identification `id` and
/// flags-and-offset `field` (both as they lie in memory), the header
/// checksum recomputed.
#[inline(always)]
pub fn ipv4_fragment_header(h: &[u32; 5], id: u16, field: u16) -> [u32; 5] {
    let [i0, i1] = id.to_ne_bytes();
    let [f0, f1] = field.to_ne_bytes();
    let w1 = u32::from_ne_bytes([i0, i1, f0, f1]);
    let [ttl, proto, _, _] = h[2].to_ne_bytes();
    let w2 = u32::from_ne_bytes([ttl, proto, 0, 0]);
    let sum = add32(add32(add32(add32(add32(0, h[0]), w1), w2), h[3]), h[4]);
    let [c0, c1] = (!fold(sum)).to_ne_bytes();
    [
        h[0],
        w1,
        u32::from_ne_bytes([ttl, proto, c0, c1]),
        h[3],
        h[4],
    ]
}

/// An IPv6 header for a translated IPv4 packet (RFC 7915 section 4.1):
/// traffic class from the TOS, flow label 0, hop limit from the TTL (the
/// stack decrements it when it forwards), ICMP becomes ICMPv6.
#[inline(always)]
pub fn ipv6_header(
    tos: u8,
    payload_len: u32,
    proto: u8,
    hop_limit: u8,
    src: &[u32; 4],
    dst: &[u32; 4],
) -> [u32; 10] {
    let next = if proto == IPPROTO_ICMP { 58 } else { proto };
    let w0 = u32::from_ne_bytes([0x60 | (tos >> 4), tos << 4, 0, 0]);
    let [l0, l1] = (payload_len as u16).to_be_bytes();
    let w1 = u32::from_ne_bytes([l0, l1, next, hop_limit]);
    [
        w0, w1, src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2], dst[3],
    ]
}
