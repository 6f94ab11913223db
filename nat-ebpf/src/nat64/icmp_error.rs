//! ICMP errors about NAT64 flows, IPv4 -> IPv6 (RFC 7915 section 4.2):
//! NAT44 has already turned the error's destination and its quote's
//! source into the stand-in (napt/icmp_error.rs); here the type and code
//! become ICMPv6's, the quoted IPv4 header an IPv6 one (the quoted
//! transport checksum follows its pseudo-header), Fragmentation Needed a
//! Packet Too Big 20 bytes larger (never below 1280), and the ICMPv6
//! checksum is derived from the ICMP one: the bytes after the quoted
//! header are the same, so their sum is the ICMP sum less the headers.
use nat_common::{
    Counter,
    csum::{add32, fold},
    nat64::{IPV6_MIN_MTU, Nat64Config},
};

use crate::{
    nat64::header::{
        self, ICMP_ECHO, ICMP_ECHOREPLY, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, csum_swap,
        icmpv6_pseudo_rest, sum4, sum6,
    },
    packet::Packet,
    parse::{
        ipv4::{ETH_HLEN, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4, ipv4_at},
        ipv6::words_of,
    },
};

/// Offsets in the IPv4 error (no options, checked): its ICMP header, the
/// quoted header, what follows it.
const ICMP_OFF: u32 = ETH_HLEN + 20;
const QUOTE_OFF: u32 = ICMP_OFF + 8;
const QUOTE_L4: u32 = QUOTE_OFF + 20;

/// The translated error's new headers, written once the packet has grown
/// by 40 bytes (20 for each IPv6 header).
pub struct Headers {
    pub ip6: [u32; 10],
    pub icmp6: [u32; 2],
    pub quote6: [u32; 10],
    /// How the sum of the packet's bytes changed besides the new headers:
    /// the quoted transport header's rewrite, less the ICMP header and
    /// the quoted IPv4 header they replace (for skb->csum).
    pub csum_extra: u64,
}

/// ICMPv6 type and code for an ICMP error's, and its 4-byte field after
/// the checksum; `None`: not translated (RFC 7915 4.2 drops it).
#[inline(always)]
fn map_type(ty: u8, code: u8, rest: [u8; 4]) -> Option<(u8, u8, [u8; 4])> {
    match (ty, code) {
        // Time Exceeded.
        (11, _) => Some((3, code, [0; 4])),
        // Fragmentation Needed: Packet Too Big, MTU + 20, at least 1280.
        (3, 4) => {
            let mtu = u16::from_be_bytes([rest[2], rest[3]]) as u32 + 20;
            let mtu = if mtu < IPV6_MIN_MTU {
                IPV6_MIN_MTU
            } else {
                mtu
            };
            Some((2, 0, mtu.to_be_bytes()))
        }
        // Port unreachable.
        (3, 3) => Some((1, 4, [0; 4])),
        // Protocol unreachable: Parameter Problem at the next header.
        (3, 2) => Some((4, 1, 6u32.to_be_bytes())),
        // Administratively prohibited.
        (3, 9) | (3, 10) | (3, 13) | (3, 15) => Some((1, 1, [0; 4])),
        // Net, host, source route, unknown or isolated: no route.
        (3, 0..=12) => Some((1, 0, [0; 4])),
        // Parameter Problem, pointer or bad length: erroneous header
        // field, the pointer moved to the IPv6 header's field (RFC 7915
        // figure 3); a field IPv6 has not: dropped.
        (12, 0) | (12, 2) => {
            let at: u32 = match rest[0] {
                0 => 0,
                1 => 1,
                2 | 3 => 4,
                8 => 7,
                9 => 6,
                12..=15 => 8,
                16..=19 => 24,
                _ => return None,
            };
            Some((4, 0, at.to_be_bytes()))
        }
        _ => None,
    }
}

/// Whether an ICMP type is an error NAT64 translates.
#[inline(always)]
pub fn is_error(ty: u8) -> bool {
    ty == 3 || ty == 11 || ty == 12
}

/// Everything up to the growth: the quoted transport checksum fixed, the
/// three headers built. `dst6` is the host the stand-in stands for (the
/// error's destination and the quote's source).
#[inline(always)]
pub fn prepare<P: Packet>(
    p: &mut P,
    ip: &Ipv4,
    cfg: &Nat64Config,
    src6: &[u32; 4],
    dst6: &[u32; 4],
) -> Result<Headers, Counter> {
    let [ty, code]: [u8; 2] = p.load(ICMP_OFF).ok_or(Counter::Nat64DropMalformed)?;
    let check: u16 = p.load(ICMP_OFF + 2).ok_or(Counter::Nat64DropMalformed)?;
    let rest: [u8; 4] = p.load(ICMP_OFF + 4).ok_or(Counter::Nat64DropMalformed)?;
    let (ty6, code6, rest6) = map_type(ty, code, rest).ok_or(Counter::Nat64DropUnsupported)?;
    let q = ipv4_at(p, QUOTE_OFF, ip.end).ok_or(Counter::Nat64DropMalformed)?;
    // The quote went out translated from the stand-in: anything else is
    // not about this host's flow.
    if q.hlen != 20 || q.src != ip.dst {
        return Err(Counter::Nat64DropUnsupported);
    }
    let qwords: [u32; 5] = p.load(QUOTE_OFF).ok_or(Counter::Nat64DropMalformed)?;
    let q_dst6 = words_of(&cfg.embed(q.dst.to_ne_bytes()));
    let q_payload = q.tot_len.saturating_sub(20);

    // The quoted transport checksum, where the quote holds it (a later
    // fragment has no transport header).
    let delta = if q.later_fragment {
        0
    } else {
        quoted_l4(p, &q, dst6, &q_dst6, q_payload)?
    };

    // The sum of the bytes after the quoted header, from the ICMP checksum.
    let mut hdr4 = add32(0, u16::from_ne_bytes([ty, code]) as u32);
    hdr4 = add32(hdr4, u32::from_ne_bytes(rest));
    let mut qsum4 = 0;
    let mut i = 0;
    while i < 5 {
        qsum4 = add32(qsum4, qwords[i]);
        i += 1;
    }
    let rest_sum = (!check) as u64 + (!fold(hdr4 + qsum4)) as u64 + delta;

    let [_, tos, _, _] = qwords[0].to_ne_bytes();
    let [ttl, qproto, _, _] = qwords[2].to_ne_bytes();
    let quote6 = header::ipv6_header(tos, q_payload, qproto, ttl, dst6, &q_dst6);
    let ip6_len = ip.tot_len;
    let out_tos: u8 = p.load(ip.off + 1).ok_or(Counter::Nat64DropMalformed)?;
    let out_ttl: u8 = p
        .load(ip.off + Ipv4::TTL_OFF)
        .ok_or(Counter::Nat64DropMalformed)?;
    let ip6 = header::ipv6_header(out_tos, ip6_len, IPPROTO_ICMP, out_ttl, src6, dst6);

    let mut sum = sum6(sum6(0, src6), dst6) + icmpv6_pseudo_rest(ip6_len);
    sum = add32(sum, u16::from_ne_bytes([ty6, code6]) as u32);
    sum = add32(sum, u32::from_ne_bytes(rest6));
    let mut j = 0;
    while j < 10 {
        sum = add32(sum, quote6[j]);
        j += 1;
    }
    sum += fold(rest_sum) as u64;
    let check6 = !fold(sum);
    let [c0, c1] = check6.to_ne_bytes();
    Ok(Headers {
        ip6,
        icmp6: [
            u32::from_ne_bytes([ty6, code6, c0, c1]),
            u32::from_ne_bytes(rest6),
        ],
        quote6,
        csum_extra: delta + (!fold(hdr4 + check as u64 + qsum4)) as u64,
    })
}

/// Fixes the quoted transport header for its IPv6 pseudo-header (TCP, UDP
/// with a checksum, ICMP echo becoming ICMPv6 echo) where the quote holds
/// its checksum; returns how much the sum of the quoted bytes changed.
#[inline(always)]
fn quoted_l4<P: Packet>(
    p: &mut P,
    q: &Ipv4,
    src6: &[u32; 4],
    dst6: &[u32; 4],
    q_payload: u32,
) -> Result<u64, Counter> {
    let new = sum6(sum6(0, src6), dst6);
    let old = sum4(q.src, q.dst);
    let (csum_off, old_word, new_word, add) = match q.proto {
        IPPROTO_TCP => (QUOTE_L4 + 16, 0, 0, new),
        IPPROTO_UDP => (QUOTE_L4 + 6, 0, 0, new),
        IPPROTO_ICMP => {
            if !q.has(QUOTE_L4, 2) {
                return Ok(0);
            }
            let [ty, code]: [u8; 2] = match p.load(QUOTE_L4) {
                Some(b) => b,
                None => return Ok(0),
            };
            let ty6 = match ty {
                ICMP_ECHO => ICMPV6_ECHO_REQUEST,
                ICMP_ECHOREPLY => ICMPV6_ECHO_REPLY,
                _ => return Ok(0),
            };
            let ow = u16::from_ne_bytes([ty, code]) as u64;
            let nw = u16::from_ne_bytes([ty6, code]) as u64;
            p.store(QUOTE_L4, &[ty6, code])
                .ok_or(Counter::Nat64DropMalformed)?;
            (QUOTE_L4 + 2, ow, nw, new + icmpv6_pseudo_rest(q_payload))
        }
        _ => return Ok(0),
    };
    // Within the quoted datagram as present (never Ethernet padding).
    let check = if q.has(csum_off, 2) {
        p.load::<u16>(csum_off)
    } else {
        None
    };
    let Some(check) = check else {
        // Cut before the checksum: the type alone changed.
        return Ok(new_word + (!fold(old_word)) as u64);
    };
    if q.proto == IPPROTO_UDP && check == 0 {
        return Ok(0);
    }
    let removed = if q.proto == IPPROTO_ICMP {
        old_word
    } else {
        old
    };
    let fixed = csum_swap(check, removed, add + new_word);
    p.store(csum_off, &fixed)
        .ok_or(Counter::Nat64DropMalformed)?;
    // The sum of the quote changed by the type word and the checksum field.
    Ok(new_word + (!fold(old_word)) as u64 + fixed as u64 + (!check) as u64)
}
