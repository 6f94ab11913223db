//! IPv4 -> IPv6 (RFC 7915 section 4), on the external ingress hooks (TC
//! and XDP), once NAT44 inbound (static 1:1 or NAPT) has translated the
//! destination to a stand-in:
//!
//! * too big for the inside link once translated: answered with
//!   Fragmentation Needed (DF set) or dropped, see [`too_big`]; without
//!   DF on TC split into IPv6 fragments that fit (RFC 7915 4.1), see
//!   [`splits`];
//! * dropped: NAT64 off, or the stand-in names no host (`NAT64_IDS`); an
//!   IPv4 header (without options) whose checksum is wrong; a
//!   non-global IPv4 source under the well-known prefix; IPv4 options and
//!   total length 0; a cut transport header; fragmented ICMP, and a
//!   fragmented UDP datagram without checksum (IPv6 needs one: it would
//!   have to be computed over the whole datagram); protocols other than
//!   TCP, UDP and ICMP, ICMP other than echo and the errors RFC 7915
//!   translates;
//! * translated: an IPv6 header (traffic class the TOS, flow label 0, hop
//!   limit the TTL) from the source embedded under the prefix to the host,
//!   the transport checksum moved with its pseudo-header (ICMP echo gains
//!   one and changes type; an unfragmented UDP datagram without one gets
//!   it computed), the packet 20 bytes longer at the front, to the stack;
//!   a fragment gets a fragment header (8 bytes more; a later fragment's
//!   transport is not looked at);
//! * ICMP errors (destination unreachable, time exceeded) about a NAT64
//!   flow, whose quote NAT44 turned into one from the stand-in (RFC 7915
//!   4.2): type and code mapped (Fragmentation Needed to Packet Too Big 20
//!   bytes larger, at least 1280), the quoted IPv4 header an IPv6 one from
//!   the host to the quoted destination under the prefix (its transport
//!   checksum moved, echo becoming ICMPv6 echo), 40 bytes longer.

use nat_common::Counter;
use nat_common::nat64::is_non_global;

use super::super::Rule;
use super::super::parse::{self, ICMP, Ip, TCP, UDP};
use super::super::{Ctx, Verdict};
use super::{
    FRAGMENT, ICMPV6, IPV6_MIN_MTU, embed, get16, header6, moved, moved_udp, on, proto_4_to_6,
    pseudo4, pseudo6, put16, sum_without, well_known,
};

/// Where the IPv4 packet NAT64 translates to IPv6 came from.
pub enum Origin {
    /// In on the external interface (the frame run, `ctx.source`).
    Outside,
    /// Hairpinned from an IPv6 host: this IPv4 packet, as NAT64 and NAT44
    /// made it out of the IPv6 one. It goes to the stack as IPv6, which
    /// answers a packet too big for its link itself (Packet Too Big to
    /// the IPv6 sender): no Fragmentation Needed here.
    Hairpin(Vec<u8>),
}

/// The frame NAT44 made (`ctx.out`), whose destination is a stand-in.
pub fn decide(ctx: &mut Ctx, origin: Origin) -> Verdict {
    let f = ctx.out.clone();
    let Some(ip) = parse::outer(&f) else {
        // NAT44 translated it, so it parses.
        ctx.violations
            .push("NAT44 translated a frame that does not parse".into());
        return Verdict::Translated;
    };
    let cfg = ctx.st.nat64;
    if !on(&cfg) {
        ctx.note(Rule::Nat64InOff);
        return ctx.drop(Counter::Nat64DropNoHost);
    }
    // The IPv4 header is replaced: a corrupt one (its checksum wrong, as
    // NAT44 keeps it) is dropped, not made a valid IPv6 header. Only a
    // header without options is checked (those are refused anyway).
    if ip.hlen == 20 && super::super::csum::sum(&f[ip.off..ip.off + 20]) != 0xffff {
        ctx.note(Rule::Nat64InBadHeaderChecksum);
        return ctx.drop(Counter::Nat64DropMalformed);
    }
    let sent = match origin {
        Origin::Outside => Some(ctx.source.clone()),
        Origin::Hairpin(_) => None,
    };
    // TTL 1 or 0: the hop to the host would take the last.
    if let Some(sent) = &sent
        && sent[ip.off + 8] <= 1
    {
        return time_exceeded(ctx, &ip, sent);
    }
    let split = match &sent {
        Some(sent) => splits(ctx, &ip, sent),
        None => None,
    };
    if split.is_some() && ctx.hook.is_xdp() {
        // XDP sends one packet at most: it passes the packet as NAT44 left
        // it, with a mark in its metadata (the 4 bytes before the frame,
        // returned with it), for the TC program behind it to split.
        ctx.note(Rule::Nat64InSplitHandedOff);
        let mut out = nat_common::nat64::XDP_HANDOFF_SPLIT.to_ne_bytes().to_vec();
        out.extend_from_slice(&ctx.out);
        ctx.out = out;
        return Verdict::Pass;
    }
    if split.is_none()
        && let Some(sent) = sent
        && let Some(v) = too_big(ctx, &ip, &sent)
    {
        return v;
    }
    let Some(host) = ctx.st.nat64_ids.get(&ip.dst).map(|h| h.addr) else {
        ctx.note(Rule::Nat64InNoHost);
        return ctx.drop(Counter::Nat64DropNoHost);
    };
    let src4 = ip.src.to_ne_bytes();
    if well_known(&cfg) && is_non_global(src4) {
        ctx.note(Rule::Nat64InNonGlobal);
        return ctx.drop(Counter::Nat64DropNonGlobal);
    }
    // Options would not translate; a datagram of its header alone (total
    // length 0 or 20) carries nothing to translate.
    if ip.hlen != 20 || ip.tot_len <= 20 {
        ctx.note(Rule::Nat64InHeader);
        return ctx.drop(Counter::Nat64DropUnsupported);
    }
    let src6 = embed(&cfg, src4);
    let l4 = ip.l4();
    let plen = ip.tot_len - 20;
    let mut seg = f[l4..].to_vec();
    let dst4 = ip.dst.to_ne_bytes();
    let fragment = ip.later_fragment || ip.more_fragments;
    if fragment && ip.proto == ICMP {
        // Its ICMPv6 checksum would need the whole message's length.
        ctx.note(Rule::Nat64InFragmentIcmp);
        return ctx.drop(Counter::Nat64DropUnsupported);
    }
    let cut = |ctx: &mut Ctx| {
        ctx.note(Rule::Nat64InTransportCut);
        ctx.drop(Counter::Nat64DropMalformed)
    };
    match ip.proto {
        // A later fragment carries no transport header: the first
        // fragment's checksum covers it.
        TCP | UDP if ip.later_fragment => ctx.note(Rule::Nat64InLaterFragment),
        TCP | UDP => {
            let (need, at) = if ip.proto == TCP { (20, 16) } else { (8, 6) };
            if !ip.has(l4, need) {
                return cut(ctx);
            }
            let old = get16(&f, l4 + at);
            if ip.proto == UDP && old == 0 {
                // IPv6 needs a UDP checksum (RFC 8200 section 8.1): computed
                // over the whole datagram, which a fragment is not (RFC 6146
                // section 3.4 lets a NAT64 drop those).
                if fragment {
                    ctx.note(Rule::Nat64InFragmentUdpNoChecksum);
                    return ctx.drop(Counter::Nat64DropUnsupported);
                }
                if ip.end - l4 > UDP_SUM_MAX {
                    ctx.note(Rule::Nat64InUdpTooLongToSum);
                    return ctx.drop(Counter::Nat64DropMalformed);
                }
                ctx.note(Rule::Nat64InUdpChecksumComputed);
                let sum = pseudo6(&src6, &host, plen, UDP) + sum_without(&f, l4, ip.end, l4 + 6);
                let c = match !super::super::csum::fold(sum) {
                    0 => 0xffff,
                    c => c,
                };
                put16(&mut seg, at, c);
            } else {
                let body = sum_without(&f, l4, ip.end, l4 + at);
                let before = pseudo4(src4, dst4, plen, ip.proto) + body;
                let after = pseudo6(&src6, &host, plen, ip.proto) + body;
                let new = if ip.proto == UDP {
                    moved_udp(old, before, after)
                } else {
                    moved(old, before, after)
                };
                put16(&mut seg, at, new);
            }
            ctx.note(if ip.proto == TCP {
                Rule::Nat64InTcp
            } else {
                Rule::Nat64InUdp
            });
        }
        ICMP => {
            if !ip.has(l4, 8) {
                return cut(ctx);
            }
            let t = match f[l4] {
                3 | 11 | 12 => return error(ctx, &f, &ip, &src6, &host),
                8 => 128,
                0 => 129,
                _ => {
                    ctx.note(Rule::Nat64InIcmpOther);
                    return ctx.drop(Counter::Nat64DropUnsupported);
                }
            };
            // ICMPv6's checksum covers a pseudo-header; the type changes.
            let before = sum_without(&f, l4, ip.end, l4 + 2);
            seg[0] = t;
            let after = pseudo6(&src6, &host, plen, ICMPV6) + sum_without(&seg, 0, ip.end - l4, 2);
            put16(&mut seg, 2, moved(get16(&f, l4 + 2), before, after));
            ctx.note(Rule::Nat64InEcho);
        }
        _ => {
            ctx.note(Rule::Nat64InProtocol);
            return ctx.drop(Counter::Nat64DropUnsupported);
        }
    }
    let (tos, ttl) = (f[ip.off + 1], f[ip.off + 8]);
    let next = proto_4_to_6(ip.proto);
    if let Some(size) = split {
        return split_out(
            ctx,
            &f,
            &ip,
            &headers_split(&f, &ip, &src6, &host),
            &seg,
            size,
        );
    }
    let headers = if fragment {
        // RFC 7915 section 4.1: a fragment header, the offset and
        // more-fragments as they were, the identification in its low 16
        // bits.
        ctx.note(Rule::Nat64InFragment);
        let offset = get16(&f, ip.off + 6) & 0x1fff;
        let mut h = header6(tos, plen + 8, FRAGMENT, ttl, &src6, &host).to_vec();
        h.extend_from_slice(&[next, 0]);
        h.extend_from_slice(&((offset << 3) | u16::from(ip.more_fragments)).to_be_bytes());
        h.extend_from_slice(&[0, 0, f[ip.off + 4], f[ip.off + 5]]);
        h
    } else {
        header6(tos, plen, next, ttl, &src6, &host).to_vec()
    };
    ctx.out = ipv6_frame(&f, &headers, &seg);
    ctx.bump(Counter::Nat64In);
    Verdict::Translated
}

/// Whether an IPv4 packet from outside is split into IPv6 fragments (RFC
/// 7915 4.1; `Some(piece size)`): too big for the inside link once
/// translated, DF clear, on TC (XDP sends one packet at most), the inside
/// MTU at least IPv6's 1280, the whole datagram in the frame, no options,
/// TCP, UDP or an unfragmented ICMP echo, no more than 8192 bytes past the
/// first piece (the data plane's scratch), and offsets within 16 bits.
/// Each piece carries (MTU - 48) rounded down to 8 bytes.
fn splits(ctx: &Ctx, ip: &Ip, sent: &[u8]) -> Option<usize> {
    let mtu = ctx.st.nat64.inside_mtu as usize;
    let fragment = ip.later_fragment || ip.more_fragments;
    let growth = if fragment { 28 } else { 20 };
    if mtu < IPV6_MIN_MTU as usize || ip.tot_len + growth <= mtu {
        return None;
    }
    let flags = get16(sent, ip.off + 6);
    let payload = ip.tot_len.checked_sub(ip.hlen)?;
    let size = (mtu - 48) & !7;
    let offset = usize::from(flags & 0x1fff) * 8;
    let kind_ok = match ip.proto {
        TCP | UDP => true,
        ICMP => !fragment && ip.has(ip.l4(), 1) && matches!(sent[ip.l4()], 0 | 8),
        _ => false,
    };
    (flags & 0x4000 == 0
        && ip.hlen == 20
        && ip.end == ip.off + ip.tot_len
        && payload > size
        && payload - size <= 8192
        && offset + payload <= 0xffff
        && kind_ok)
        .then_some(size)
}

/// The IPv6 header and fragment header of a packet to be split (the
/// payload length and fragment offset rewritten per piece).
fn headers_split(f: &[u8], ip: &Ip, src6: &[u8; 16], host: &[u8; 16]) -> Vec<u8> {
    let (tos, ttl) = (f[ip.off + 1], f[ip.off + 8]);
    let mut h = header6(tos, 0, FRAGMENT, ttl, src6, host).to_vec();
    h.extend_from_slice(&[proto_4_to_6(ip.proto), 0, 0, 0]);
    h.extend_from_slice(&[0, 0, f[ip.off + 4], f[ip.off + 5]]);
    h
}

/// The pieces of the translated transport bytes `seg` (the datagram's
/// part this packet carries): all but the last are sent (not seen by a
/// test run), the last is what the program passes on: its offset the
/// packet's plus its position, M the packet's own.
fn split_out(ctx: &mut Ctx, f: &[u8], ip: &Ip, headers: &[u8], seg: &[u8], size: usize) -> Verdict {
    ctx.note(Rule::Nat64InSplit);
    let payload = &seg[..ip.tot_len - ip.hlen];
    let n = payload.len().div_ceil(size);
    let last = &payload[(n - 1) * size..];
    let offset = usize::from(get16(f, ip.off + 6) & 0x1fff) * 8 + (n - 1) * size;
    let mut h = headers.to_vec();
    put16(&mut h, 4, (last.len() + 8) as u16);
    put16(&mut h, 42, offset as u16 | u16::from(ip.more_fragments));
    ctx.out = ipv6_frame(f, &h, last);
    ctx.bump(Counter::Nat64In);
    ctx.bump(Counter::Nat64Fragmented);
    ctx.add(Counter::Nat64FragmentsSent, n as u64);
    Verdict::Translated
}

/// An IPv4 packet that would not fit the inside link once translated (20
/// bytes longer, a fragment 28; the smallest MTU of the inside interfaces,
/// 0: unknown, nothing checked): with DF it is answered as a router on its
/// path would answer, with Fragmentation Needed for that MTU less 20 from
/// the public address it was sent to, quoting its header and 8 bytes as
/// sent, in place, back out of the device it came in on (TC redirects
/// there; XDP transmits it back, where the device takes XDP frames, and
/// drops it elsewhere); without DF, where [`splits`] does not split it, it
/// is dropped. No answer to a later fragment, to a packet with options
/// (NAT64 would not translate it) or to an ICMP error (RFC 1122 3.2.2),
/// nor for other protocols (untranslatable): dropped. `None`: it fits.
fn too_big(ctx: &mut Ctx, ip: &Ip, sent: &[u8]) -> Option<Verdict> {
    let mtu = ctx.st.nat64.inside_mtu as usize;
    let fragment = ip.later_fragment || ip.more_fragments;
    let growth = if fragment { 28 } else { 20 };
    if mtu == 0 || ip.tot_len + growth <= mtu {
        return None;
    }
    let l4 = ip.l4();
    let df = get16(sent, ip.off + 6) & 0x4000 != 0;
    if !df || ip.later_fragment || ip.hlen != 20 {
        ctx.note(Rule::Nat64InTooBigDropped);
        return Some(ctx.drop(Counter::Nat64DropTooBig));
    }
    // The answer quotes 8 bytes of its transport: a packet without them
    // is too short to answer.
    if !ip.has(l4, 8) {
        ctx.note(Rule::Nat64InTooBigCut);
        return Some(ctx.drop(Counter::Nat64DropMalformed));
    }
    let answerable = match ip.proto {
        TCP | UDP => true,
        ICMP => matches!(sent[l4], 0 | 8),
        _ => false,
    };
    if !answerable {
        ctx.note(Rule::Nat64InTooBigDropped);
        return Some(ctx.drop(Counter::Nat64DropTooBig));
    }
    let g = &ctx.st.gateway;
    if ctx.hook.is_xdp() && !g.xdp_targets.contains(&g.ingress_ifindex) {
        ctx.note(Rule::Nat64InTooBigNoTx);
        return Some(ctx.drop(Counter::Nat64DropTooBig));
    }
    ctx.note(Rule::Nat64InTooBigAnswered);
    let [m0, m1] = ((mtu - 20) as u16).to_be_bytes();
    Some(answer(
        ctx,
        ip,
        sent,
        [3, 4, 0, 0, 0, 0, m0, m1],
        Counter::Nat64FragNeededSent,
    ))
}

/// A packet whose TTL ran out at the gateway (RFC 7915 section 4: the
/// translator, a router, decrements it before translating): answered with
/// ICMP Time Exceeded in transit as [`too_big`] answers, under the same
/// conditions (never about an error, a later fragment or a header with
/// options, TCP, UDP and echo only; XDP only where the device takes its
/// frames back); otherwise dropped.
fn time_exceeded(ctx: &mut Ctx, ip: &Ip, sent: &[u8]) -> Verdict {
    let l4 = ip.l4();
    if ip.later_fragment || ip.hlen != 20 {
        ctx.note(Rule::Nat64InTtlDropped);
        return ctx.drop(Counter::Nat64DropTtlExpired);
    }
    if !ip.has(l4, 8) {
        ctx.note(Rule::Nat64InTtlCut);
        return ctx.drop(Counter::Nat64DropMalformed);
    }
    let answerable = match ip.proto {
        TCP | UDP => true,
        ICMP => matches!(sent[l4], 0 | 8),
        _ => false,
    };
    if !answerable {
        ctx.note(Rule::Nat64InTtlDropped);
        return ctx.drop(Counter::Nat64DropTtlExpired);
    }
    let g = &ctx.st.gateway;
    if ctx.hook.is_xdp() && !g.xdp_targets.contains(&g.ingress_ifindex) {
        ctx.note(Rule::Nat64InTtlNoTx);
        return ctx.drop(Counter::Nat64DropTtlExpired);
    }
    ctx.note(Rule::Nat64InTtlAnswered);
    answer(
        ctx,
        ip,
        sent,
        [11, 0, 0, 0, 0, 0, 0, 0],
        Counter::Nat64TimeExceededSent,
    )
}

/// The ICMP error starting with `head` (type, code, checksum, 4 more
/// bytes) from the public address `sent` went to, quoting its header and 8
/// transport bytes as sent, in place of the packet, back where it came.
fn answer(ctx: &mut Ctx, ip: &Ip, sent: &[u8], head: [u8; 8], counter: Counter) -> Verdict {
    let l4 = ip.l4();
    let mut msg = head.to_vec();
    msg.extend_from_slice(&sent[ip.off..l4 + 8]);
    let c = super::super::csum::full(&msg);
    put16(&mut msg, 2, c);
    let from = sent[ip.off + 16..ip.off + 20].try_into().expect("4 bytes");
    let to = sent[ip.off + 12..ip.off + 16].try_into().expect("4 bytes");
    let h = super::header4(0, 20 + msg.len(), [0, 0], 64, ICMP, from, to);
    let mut out = sent[6..12].to_vec();
    out.extend_from_slice(&sent[0..6]);
    out.extend_from_slice(&parse::ETH_P_IP.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&msg);
    ctx.out = out;
    ctx.bump(counter);
    Verdict::Returned
}

/// Longest UDP datagram (header and data) without a checksum whose
/// checksum NAT64 computes (one that fits an Ethernet frame and more).
pub const UDP_SUM_MAX: usize = 1600;

/// `frame`'s Ethernet header, typed IPv6, then `headers` and `rest`.
fn ipv6_frame(frame: &[u8], headers: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut out = frame[..12].to_vec();
    out.extend_from_slice(&parse::ETH_P_IPV6.to_be_bytes());
    out.extend_from_slice(headers);
    out.extend_from_slice(rest);
    out
}

/// ICMP error type and code -> ICMPv6's, with the 4 bytes after the
/// checksum (RFC 7915 section 4.2); `None`: not translated.
fn map_type(t: u8, c: u8, rest: [u8; 4]) -> Option<(u8, u8, [u8; 4], Rule)> {
    Some(match (t, c) {
        (11, c) => (3, c, [0; 4], Rule::Nat64InErrorTimeExceeded),
        (3, 4) => {
            let mtu = (u32::from(u16::from_be_bytes([rest[2], rest[3]])) + 20).max(IPV6_MIN_MTU);
            (2, 0, mtu.to_be_bytes(), Rule::Nat64InErrorTooBig)
        }
        (3, 3) => (1, 4, [0; 4], Rule::Nat64InErrorPortUnreachable),
        // Protocol unreachable: parameter problem, pointing at the next
        // header field.
        (3, 2) => (4, 1, [0, 0, 0, 6], Rule::Nat64InErrorProtocol),
        (3, 9 | 10 | 13 | 15) => (1, 1, [0; 4], Rule::Nat64InErrorProhibited),
        (3, 0..=12) => (1, 0, [0; 4], Rule::Nat64InErrorUnreachable),
        // Parameter Problem (pointer, bad length): RFC 7915 figure 3 moves
        // the pointer onto the IPv6 header; the fields IPv6 lacks (and
        // anything past the header) are not translated.
        (12, 0 | 2) => {
            let to = match rest[0] {
                0 | 1 => u32::from(rest[0]),
                2 | 3 => 4,
                8 => 7,
                9 => 6,
                12..=15 => 8,
                16..=19 => 24,
                _ => return None,
            };
            (4, 0, to.to_be_bytes(), Rule::Nat64InErrorParameter)
        }
        _ => return None,
    })
}

/// An ICMP error about a datagram the host sent (its quote is from the
/// stand-in: NAT44 put it there), to the host.
fn error(ctx: &mut Ctx, f: &[u8], ip: &Ip, src6: &[u8; 16], host: &[u8; 16]) -> Verdict {
    let cfg = ctx.st.nat64;
    let l4 = ip.l4();
    let rest4: [u8; 4] = f[l4 + 4..l4 + 8].try_into().expect("4 bytes");
    let Some((t6, c6, rest6, rule)) = map_type(f[l4], f[l4 + 1], rest4) else {
        ctx.note(Rule::Nat64InErrorType);
        return ctx.drop(Counter::Nat64DropUnsupported);
    };
    let Some(q) = parse::ipv4_at(f, l4 + 8, ip.end) else {
        ctx.note(Rule::Nat64InErrorQuoteCut);
        return ctx.drop(Counter::Nat64DropMalformed);
    };
    if q.hlen != 20 || q.src != ip.dst {
        // Options in the quote, or a datagram another host sent.
        ctx.note(Rule::Nat64InErrorQuoteOther);
        return ctx.drop(Counter::Nat64DropUnsupported);
    }
    ctx.note(rule);
    let qplen = q.tot_len.saturating_sub(20);
    let qdst6 = embed(&cfg, q.dst.to_ne_bytes());
    let ql4 = q.l4();
    let mut rest = f[ql4..].to_vec();
    let addrs4 = pseudo4(q.src.to_ne_bytes(), q.dst.to_ne_bytes(), 0, 0);
    let addrs6 = pseudo6(host, &qdst6, 0, 0);
    // Present in the quoted datagram (never Ethernet padding).
    let has = |at: usize| q.has(at, 2);
    // A quoted later fragment has no transport header to translate.
    match q.proto {
        _ if q.later_fragment => {}
        TCP if has(ql4 + 16) => {
            put16(&mut rest, 16, moved(get16(f, ql4 + 16), addrs4, addrs6));
        }
        UDP if has(ql4 + 6) => {
            put16(&mut rest, 6, moved_udp(get16(f, ql4 + 6), addrs4, addrs6));
        }
        ICMP if has(ql4) && (f[ql4] == 8 || f[ql4] == 0) => {
            ctx.note(Rule::Nat64InErrorQuotedEcho);
            let old_word = u64::from(get16(f, ql4));
            rest[0] = if f[ql4] == 8 { 128 } else { 129 };
            let new_word = u64::from(get16(&rest, 0));
            if has(ql4 + 2) {
                let after = pseudo6(host, &qdst6, qplen, ICMPV6) + new_word;
                put16(&mut rest, 2, moved(get16(f, ql4 + 2), old_word, after));
            }
        }
        _ => {}
    }
    let quote6 = header6(
        f[q.off + 1],
        qplen,
        proto_4_to_6(q.proto),
        f[q.off + 8],
        host,
        &qdst6,
    );
    let mut msg = vec![t6, c6, 0, 0];
    msg.extend_from_slice(&rest6);
    msg.extend_from_slice(&quote6);
    msg.extend_from_slice(&rest);
    // The payload: the ICMP message, its quoted header 20 bytes longer.
    let plen = ip.tot_len;
    let (end, n) = (ip.end, ip.end - l4 + 20);
    let before = sum_without(f, l4, end, l4 + 2);
    let after = pseudo6(src6, host, plen, ICMPV6) + sum_without(&msg, 0, n, 2);
    put16(&mut msg, 2, moved(get16(f, l4 + 2), before, after));
    let h = header6(f[ip.off + 1], plen, ICMPV6, f[ip.off + 8], src6, host);
    ctx.out = ipv6_frame(f, &h, &msg);
    ctx.bump(Counter::Nat64In);
    Verdict::Translated
}
