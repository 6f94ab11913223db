//! ICMPv6 errors from inside about NAT64 flows, IPv6 -> IPv4 (RFC 7915
//! section 5.2): a host (or a router inside) reports on a packet it got
//! through a binding — port unreachable, Packet Too Big, time exceeded.
//! The type and code become ICMP's, Packet Too Big a Fragmentation Needed
//! 20 bytes smaller, the quoted IPv6 header an IPv4 one from the remote
//! IPv4 address to the host's stand-in (its transport checksum follows the
//! pseudo-header), and the error's source the same stand-in: NAT44's
//! outbound error path then puts the binding's public endpoint in both.
//! The ICMP checksum is derived from the ICMPv6 one.
use nat_common::{
    Counter,
    csum::{add32, fold},
    nat64::Nat64Config,
};

use crate::{
    maps::NAT64_HOSTS,
    nat64::header::{
        self, ICMP_ECHO, ICMP_ECHOREPLY, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, csum_swap,
        icmpv6_pseudo_rest, sum4, sum6,
    },
    packet::Packet,
    parse::{
        ipv4::{ETH_HLEN, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP},
        ipv6::{IPPROTO_ICMPV6, Ipv6, bytes_of},
    },
};

/// Offsets in the IPv6 error: its ICMPv6 header, the quoted header, what
/// follows that.
const ICMP_OFF: u32 = ETH_HLEN + 40;
const QUOTE_OFF: u32 = ICMP_OFF + 8;
const QUOTE_L4: u32 = QUOTE_OFF + 40;

/// The translated error's headers, written once the packet has shrunk by
/// 40 bytes.
pub struct Headers {
    pub ip4: [u32; 5],
    pub icmp4: [u32; 2],
    pub quote4: [u32; 5],
    /// How the sum of the packet's bytes changes (for skb->csum): the new
    /// ICMP header in, the ICMPv6 header and quoted IPv6 header out (the
    /// IPv4 headers sum to zero), and the quoted transport's rewrite.
    pub csum_extra: u64,
}

/// Whether an ICMPv6 type is an error (RFC 4443: types below 128).
#[inline(always)]
pub fn is_error(ty: u8) -> bool {
    ty < 128
}

/// ICMP type and code for an ICMPv6 error's, and the 4 bytes after the
/// checksum; `None`: not translated (RFC 7915 5.2 drops it).
#[inline(always)]
fn map_type(ty: u8, code: u8, rest: [u8; 4]) -> Option<(u8, u8, [u8; 4])> {
    match (ty, code) {
        // Destination unreachable: no route, beyond scope, address.
        (1, 0) | (1, 2) | (1, 3) => Some((3, 1, [0; 4])),
        // Administratively prohibited.
        (1, 1) => Some((3, 10, [0; 4])),
        // Port unreachable.
        (1, 4) => Some((3, 3, [0; 4])),
        // Packet Too Big: Fragmentation Needed, MTU - 20.
        (2, 0) => {
            let mtu = u32::from_be_bytes(rest).saturating_sub(20);
            let mtu = if mtu > 0xffff { 0xffff } else { mtu } as u16;
            let [m0, m1] = mtu.to_be_bytes();
            Some((3, 4, [0, 0, m0, m1]))
        }
        // Time exceeded.
        (3, _) => Some((11, code, [0; 4])),
        // Unrecognised next header: protocol unreachable.
        (4, 1) => Some((3, 2, [0; 4])),
        // Erroneous header field: Parameter Problem, the pointer moved to
        // the IPv4 header's field (RFC 7915 figure 6); the flow label has
        // none: dropped.
        (4, 0) => {
            let at = u32::from_be_bytes(rest);
            let at: u8 = match at {
                0 => 0,
                1 => 1,
                4 | 5 => 2,
                6 => 9,
                7 => 8,
                8..=23 => 12,
                24..=39 => 16,
                _ => return None,
            };
            Some((12, 0, [at, 0, 0, 0]))
        }
        _ => None,
    }
}

/// Everything up to the shrinking: the quoted transport header fixed for
/// its IPv4 pseudo-header, the three IPv4 headers built. `ip6` is the
/// error's header.
#[inline(always)]
pub fn prepare<P: Packet>(p: &mut P, ip6: &Ipv6, cfg: &Nat64Config) -> Result<Headers, Counter> {
    let [ty, code]: [u8; 2] = p.load(ICMP_OFF).ok_or(Counter::Nat64DropMalformed)?;
    let check: u16 = p.load(ICMP_OFF + 2).ok_or(Counter::Nat64DropMalformed)?;
    let rest: [u8; 4] = p.load(ICMP_OFF + 4).ok_or(Counter::Nat64DropMalformed)?;
    let (ty4, code4, rest4) = map_type(ty, code, rest).ok_or(Counter::Nat64DropUnsupported)?;
    let q: [u32; 10] = p.load(QUOTE_OFF).ok_or(Counter::Nat64DropMalformed)?;
    let [v, tc1, ..] = q[0].to_ne_bytes();
    let [l0, l1, q_next, q_hop] = q[1].to_ne_bytes();
    let q_src = [q[2], q[3], q[4], q[5]];
    let q_dst = [q[6], q[7], q[8], q[9]];
    if v >> 4 != 6 {
        return Err(Counter::Nat64DropMalformed);
    }
    // The quoted packet came in through a binding: from an address under
    // the prefix to a host with a stand-in.
    let q_src4 = cfg
        .extract(&bytes_of(&q_src))
        .ok_or(Counter::Nat64DropUnsupported)?;
    let q_src4 = u32::from_ne_bytes(q_src4);
    // SAFETY: plain copy out of the map.
    let stand_in = unsafe { NAT64_HOSTS.get(&bytes_of(&q_dst)) }
        .copied()
        .ok_or(Counter::DropIcmpErrorNoMapping)?;
    let q_proto = match q_next {
        IPPROTO_TCP | IPPROTO_UDP => q_next,
        IPPROTO_ICMPV6 => IPPROTO_ICMP,
        _ => return Err(Counter::Nat64DropUnsupported),
    };
    let q_payload = u16::from_be_bytes([l0, l1]) as u32;

    // The quoted datagram's bytes end at its own length or the error's.
    let q_end = QUOTE_L4 + q_payload;
    let q_end = if q_end < ip6.end { q_end } else { ip6.end };
    let delta = quoted_l4(
        p,
        q_next,
        (&q_src, &q_dst),
        (q_src4, stand_in),
        q_payload,
        q_end,
    )?;

    // The sum of the bytes after the quoted header, from the ICMPv6 checksum.
    let mut known = sum6(sum6(0, &ip6.src), &ip6.dst) + icmpv6_pseudo_rest(ip6.payload_len);
    known = add32(known, u16::from_ne_bytes([ty, code]) as u32);
    known = add32(known, u32::from_ne_bytes(rest));
    let mut i = 0;
    while i < 10 {
        known = add32(known, q[i]);
        i += 1;
    }
    let rest_sum = (!check) as u64 + (!fold(known)) as u64 + delta;

    let q_tclass = (v << 4) | (tc1 >> 4);
    let quote4 = header::ipv4_header(
        q_tclass,
        q_payload + 20,
        0,
        q_hop,
        q_proto,
        q_src4,
        stand_in,
    );
    let ip4 = header::ipv4_header(
        ip6.tclass,
        ip6.payload_len,
        0,
        ip6.hop_limit,
        IPPROTO_ICMP,
        stand_in,
        q_src4,
    );
    let mut sum = add32(0, u16::from_ne_bytes([ty4, code4]) as u32);
    sum = add32(sum, u32::from_ne_bytes(rest4));
    let mut j = 0;
    while j < 5 {
        sum = add32(sum, quote4[j]);
        j += 1;
    }
    sum += fold(rest_sum) as u64;
    let [c0, c1] = (!fold(sum)).to_ne_bytes();
    let icmp4 = [
        u32::from_ne_bytes([ty4, code4, c0, c1]),
        u32::from_ne_bytes(rest4),
    ];
    let mut replaced = add32(0, u16::from_ne_bytes([ty, code]) as u32) + check as u64;
    replaced = add32(replaced, u32::from_ne_bytes(rest));
    let mut k = 0;
    while k < 10 {
        replaced = add32(replaced, q[k]);
        k += 1;
    }
    let csum_extra = delta + add32(add32(0, icmp4[0]), icmp4[1]) + (!fold(replaced)) as u64;
    Ok(Headers {
        ip4,
        icmp4,
        quote4,
        csum_extra,
    })
}

/// Fixes the quoted transport header for its IPv4 pseudo-header (TCP, UDP,
/// ICMPv6 echo becoming ICMP echo) where the quote holds its checksum;
/// returns how much the sum of the quoted bytes changed.
#[inline(always)]
fn quoted_l4<P: Packet>(
    p: &mut P,
    next: u8,
    (src6, dst6): (&[u32; 4], &[u32; 4]),
    (src4, dst4): (u32, u32),
    q_payload: u32,
    q_end: u32,
) -> Result<u64, Counter> {
    let old = sum6(sum6(0, src6), dst6);
    let new = sum4(src4, dst4);
    let (csum_off, old_word, new_word, removed) = match next {
        IPPROTO_TCP => (QUOTE_L4 + 16, 0, 0, old),
        IPPROTO_UDP => (QUOTE_L4 + 6, 0, 0, old),
        IPPROTO_ICMPV6 => {
            if QUOTE_L4 + 2 > q_end {
                return Ok(0);
            }
            let [ty, code]: [u8; 2] = match p.load(QUOTE_L4) {
                Some(b) => b,
                None => return Ok(0),
            };
            let ty4 = match ty {
                ICMPV6_ECHO_REQUEST => ICMP_ECHO,
                ICMPV6_ECHO_REPLY => ICMP_ECHOREPLY,
                _ => return Ok(0),
            };
            let ow = u16::from_ne_bytes([ty, code]) as u64;
            let nw = u16::from_ne_bytes([ty4, code]) as u64;
            p.store(QUOTE_L4, &[ty4, code])
                .ok_or(Counter::Nat64DropMalformed)?;
            (
                QUOTE_L4 + 2,
                ow,
                nw,
                old + icmpv6_pseudo_rest(q_payload) + ow,
            )
        }
        _ => return Ok(0),
    };
    // Within the quoted datagram as present (never Ethernet padding).
    let check = if csum_off + 2 <= q_end {
        p.load::<u16>(csum_off)
    } else {
        None
    };
    let Some(check) = check else {
        return Ok(new_word + (!fold(old_word)) as u64);
    };
    if next == IPPROTO_UDP && check == 0 {
        // No checksum: nothing to carry over (as NAT44 leaves it).
        return Ok(0);
    }
    let added = if next == IPPROTO_ICMPV6 {
        new_word
    } else {
        new
    };
    let fixed = csum_swap(check, removed, added);
    p.store(csum_off, &fixed)
        .ok_or(Counter::Nat64DropMalformed)?;
    Ok(new_word + (!fold(old_word)) as u64 + fixed as u64 + (!check) as u64)
}
