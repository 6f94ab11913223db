//! IPv6 -> IPv4 (RFC 7915 section 5), on an inside interface's TC ingress
//! (`xnat_inside_tc` hands every IPv6 frame to NAT64):
//!
//! * not NAT64's, passed untouched: NAT64 off; a destination outside the
//!   prefix; hop limit ≤ 1 and an IPv4 twin (20 bytes shorter) beyond the
//!   external interface's MTU (the stack answers: Time Exceeded, Packet
//!   Too Big);
//! * dropped, to the prefix: a header that does not parse (version, a
//!   payload length of 0 or beyond the frame);
//! * dropped: a well-known-prefix destination embedding a non-global IPv4
//!   address (RFC 6052 section 3.1); an unspecified, multicast or
//!   link-local source; extension headers and other next headers; ICMPv6
//!   other than echo and the errors RFC 7915 translates; a cut transport
//!   header; an IPv6 UDP datagram without checksum (RFC 8200 forbids it);
//!   a new host when no stand-in is free;
//! * translated: the host's stand-in (found, or reserved: the first of the
//!   probes free in `NAT64_IDS`), an IPv4 header (RFC 7915 5.1: TOS the
//!   traffic class, TTL the hop limit, DF and identification 0 beyond 1260
//!   bytes, else a random identification), the transport checksum moved
//!   with its pseudo-header (ICMPv6 echo loses it and changes type); then
//!   NAT44 outbound as for an inside IPv4 host (static 1:1, else NAPT;
//!   neither: no route), then forwarded (FIB from the inside interface,
//!   TTL, MACs) or dropped;
//! * ICMPv6 errors from inside about a NAT64 flow (RFC 7915 5.2): type and
//!   code mapped (Packet Too Big to Fragmentation Needed 20 bytes
//!   smaller), the quoted IPv6 header an IPv4 one from the quoted source's
//!   IPv4 address to the quoted host's stand-in (its transport checksum
//!   moved, echo becoming ICMP echo), the error from that stand-in: NAT44's
//!   outbound error path then puts the binding's public endpoint in both.

use nat_common::Counter;
use nat_common::nat64::{Nat64Host, STAND_IN_PROBES, is_non_global, stand_in_probe};

use super::super::Rule;
use super::super::fib::Query;
use super::super::parse::{self, ETH_HLEN, ICMP, TCP, UDP};
use super::super::{Ctx, Dir, NOW, Verdict, forward, hairpin, napt, static_nat};
use super::{
    FRAGMENT, ICMPV6, IPV6_HLEN, Ip6, L4_6, extract, get16, header4, header4_fragment, header6_at,
    is_stand_in, moved, moved_udp, on, outer6, proto_6_to_4, pseudo4, pseudo6, put16, sum_without,
    well_known, words,
};

/// The transport of an IPv6 packet to translate.
#[derive(Clone, Copy)]
enum Kind {
    Tcp,
    Udp,
    /// ICMPv6 echo request or reply, and the ICMP type it becomes.
    Echo(u8),
    /// An ICMPv6 error with a whole quoted IPv6 header.
    Error,
    /// A later fragment (TCP or UDP): no transport header.
    Later(u8),
}

/// What follows the IPv6 header: the transport (protocol, offset, the
/// upper-layer length), behind a fragment header or not.
#[derive(Clone, Copy)]
struct Shape {
    next: u8,
    l4: usize,
    n: usize,
    /// A fragment header that makes the packet a fragment (not an atomic
    /// one, offset 0 and no more, which is a whole datagram: RFC 8021).
    frag: Option<Frag>,
    /// Whether a fragment header is there at all.
    header: bool,
}

/// An IPv6 fragment's fields (RFC 8200 section 4.5).
#[derive(Clone, Copy)]
struct Frag {
    /// In 8-byte units.
    offset: u16,
    more: bool,
    /// The identification's low 16 bits, as on the wire.
    id: [u8; 2],
}

pub fn decide(ctx: &mut Ctx, frame: &[u8]) -> Verdict {
    let cfg = ctx.st.nat64;
    if !on(&cfg) {
        ctx.note(Rule::Nat64Off);
        return Verdict::Pass;
    }
    let Some(ip6) = outer6(frame) else {
        // A header that does not parse (version, payload length): to the
        // prefix it is dropped, never routed as IPv6. A payload length of
        // 0 is valid IPv6 (a jumbogram) without an IPv4 twin; the rest is
        // malformed.
        if frame.len() >= L4_6 {
            let dst: [u8; 16] = frame[ETH_HLEN + 24..L4_6].try_into().expect("16 bytes");
            if extract(&cfg, &dst).is_some() {
                if get16(frame, ETH_HLEN + 4) == 0 {
                    ctx.note(Rule::Nat64OutJumbogram);
                    return ctx.drop(Counter::Nat64DropUnsupported);
                }
                ctx.note(Rule::Nat64OutUnparsed);
                return ctx.drop(Counter::Nat64DropMalformed);
            }
        }
        ctx.note(Rule::Nat64OutNotIpv6);
        return Verdict::Pass;
    };
    let Some(dst4) = extract(&cfg, &ip6.dst) else {
        ctx.note(Rule::Nat64OutNotPrefix);
        return Verdict::Pass;
    };
    // Ours from here: translated, dropped, or left to the stack to answer.
    if well_known(&cfg) && is_non_global(dst4) {
        ctx.note(Rule::Nat64OutNonGlobal);
        return ctx.drop(Counter::Nat64DropNonGlobal);
    }
    if ip6.hop_limit <= 1 {
        ctx.note(Rule::Nat64OutHopLimit);
        return Verdict::Pass;
    }
    if too_big(ctx, frame, &ip6) {
        ctx.note(Rule::Nat64OutTooBig);
        return Verdict::Pass;
    }
    if !unicast(&ip6.src) {
        ctx.note(Rule::Nat64OutSource);
        return ctx.drop(Counter::Nat64DropUnsupported);
    }
    let Some(shape) = shape(frame, &ip6) else {
        ctx.note(Rule::Nat64OutFragmentHeaderCut);
        return ctx.drop(Counter::Nat64DropMalformed);
    };
    if shape.header {
        ctx.note(match shape.frag {
            None => Rule::Nat64OutAtomicFragment,
            Some(_) => Rule::Nat64OutFragment,
        });
    }
    let known = ctx.known.nat64_atomic_error_dropped;
    let kind = match transport(frame, &ip6, &shape, known) {
        Ok(k) => k,
        Err((rule, reason)) => {
            ctx.note(rule);
            return ctx.drop(reason);
        }
    };
    match kind {
        Kind::Error => error(ctx, frame, &ip6, &shape),
        k => datagram(ctx, frame, &ip6, &shape, dst4, k),
    }
}

/// What follows the IPv6 header; `None`: a fragment header cut short.
fn shape(frame: &[u8], ip6: &Ip6) -> Option<Shape> {
    if ip6.next != FRAGMENT {
        return Some(Shape {
            next: ip6.next,
            l4: L4_6,
            n: ip6.payload_len,
            frag: None,
            header: false,
        });
    }
    if !ip6.has(L4_6, 8) {
        return None;
    }
    let h = &frame[L4_6..L4_6 + 8];
    let off_m = u16::from_be_bytes([h[2], h[3]]);
    let (offset, more) = (off_m >> 3, off_m & 1 != 0);
    Some(Shape {
        next: h[0],
        l4: L4_6 + 8,
        n: ip6.payload_len - 8,
        frag: (offset != 0 || more).then_some(Frag {
            offset,
            more,
            id: [h[6], h[7]],
        }),
        header: true,
    })
}

/// Whether the IPv4 twin of `frame` (20 bytes shorter, 28 without a
/// fragment header) is longer than the external interface allows
/// (`bpf_check_mtu` against the external ifindex of `FAST_PATH`, 0 being
/// the skb's own device: the frame's length less its Ethernet header
/// against the MTU). A device the kernel does not know checks nothing.
fn too_big(ctx: &Ctx, frame: &[u8], ip6: &Ip6) -> bool {
    let g = &ctx.st.gateway;
    let dev = match g.ext_ifindex {
        0 => g.fib.device(g.inside_ifindex),
        i => g.fib.device(i),
    };
    let fragment_header = if ip6.next == FRAGMENT { 8 } else { 0 };
    let twin = frame.len() - 20 - fragment_header;
    dev.is_some_and(|d| twin > d.mtu as usize + ETH_HLEN)
}

/// A source NAT64 gives a stand-in: not unspecified (::), multicast
/// (ff00::/8) or link-local (fe80::/10), which never leave their link.
fn unicast(src: &[u8; 16]) -> bool {
    let unspecified = src.iter().all(|b| *b == 0);
    let multicast = src[0] == 0xff;
    let link_local = src[0] == 0xfe && src[1] & 0xc0 == 0x80;
    !(unspecified || multicast || link_local)
}

/// What the transport needs, or why the packet is dropped.
fn transport(
    frame: &[u8],
    ip6: &Ip6,
    sh: &Shape,
    known_atomic_error: bool,
) -> Result<Kind, (Rule, Counter)> {
    let l4 = sh.l4;
    if let Some(f) = sh.frag
        && f.offset != 0
    {
        // A later fragment: its first fragment's checksum covers it.
        return match sh.next {
            TCP | UDP => Ok(Kind::Later(sh.next)),
            _ => Err((
                Rule::Nat64OutLaterFragmentOther,
                Counter::Nat64DropUnsupported,
            )),
        };
    }
    let cut = (Rule::Nat64OutTransportCut, Counter::Nat64DropMalformed);
    match sh.next {
        TCP if ip6.has(l4, 20) => Ok(Kind::Tcp),
        UDP if ip6.has(l4, 8) => {
            if get16(frame, l4 + 6) == 0 {
                return Err((Rule::Nat64OutUdpNoChecksum, Counter::Nat64DropMalformed));
            }
            Ok(Kind::Udp)
        }
        // ICMP's checksum would need the whole message's length (no
        // pseudo-header to move): fragmented ICMPv6 is not translated.
        ICMPV6 if ip6.has(l4, 8) && sh.frag.is_some() => {
            Err((Rule::Nat64OutFragmentIcmp, Counter::Nat64DropUnsupported))
        }
        ICMPV6 if ip6.has(l4, 8) => match frame[l4] {
            128 => Ok(Kind::Echo(8)),
            129 => Ok(Kind::Echo(0)),
            // (The known defect: none behind a fragment header.)
            t if t < 128 && ip6.has(l4 + 8, IPV6_HLEN) && sh.header && known_atomic_error => {
                Err((Rule::Nat64OutFragmentIcmp, Counter::Nat64DropUnsupported))
            }
            t if t < 128 && ip6.has(l4 + 8, IPV6_HLEN) => Ok(Kind::Error),
            _ => Err((Rule::Nat64OutIcmpOther, Counter::Nat64DropUnsupported)),
        },
        TCP | UDP | ICMPV6 => Err(cut),
        _ => Err((Rule::Nat64OutNextHeader, Counter::Nat64DropUnsupported)),
    }
}

/// The counter of the port cap of the NAT64 host with stand-in `s`, on a
/// new mapping with a cap set: with hosts counted per /LEN, the stand-in
/// of its prefix's address (reserved now like a host's if it has none:
/// `None` if none is free); `s` itself when each address counts alone or
/// `s` names no host.
pub fn cap_key(ctx: &mut Ctx, s: u32) -> Option<u32> {
    let Some(len) = super::host_prefix(&ctx.st.nat64) else {
        return Some(s);
    };
    let Some(host) = ctx.st.nat64_ids.get(&s).map(|h| h.addr) else {
        return Some(s);
    };
    ctx.note(Rule::HostPortCapPrefix);
    stand_in(ctx, &super::prefix_of(&host, len))
}

/// The stand-in of the IPv6 host `host`: its own, or the first of its
/// probes free in `NAT64_IDS`, reserved now (both tables); `None` when no
/// probe is free or a table is full.
fn stand_in(ctx: &mut Ctx, host: &[u8; 16]) -> Option<u32> {
    if let Some(&s) = ctx.st.nat64_hosts.get(host) {
        ctx.note(Rule::Nat64StandInKnown);
        return Some(s);
    }
    let cap = ctx.st.capacity.nat64;
    if ctx.st.nat64_hosts.len() >= cap || ctx.st.nat64_ids.len() >= cap {
        ctx.note(Rule::Nat64StandInTableFull);
        return None;
    }
    let w = words(host);
    for i in 0..STAND_IN_PROBES {
        let s = stand_in_probe(&w, i);
        if !is_stand_in(s) {
            ctx.violations
                .push(format!("stand-in probe {i} is {s:#010x}, not in 0.0.0.0/8"));
        }
        if ctx.st.nat64_ids.contains_key(&s) {
            continue;
        }
        ctx.st.nat64_ids.insert(
            s,
            Nat64Host {
                addr: *host,
                created: NOW,
            },
        );
        ctx.st.nat64_hosts.insert(*host, s);
        ctx.note(if i == 0 {
            Rule::Nat64StandInNew
        } else {
            Rule::Nat64StandInProbed
        });
        return Some(s);
    }
    ctx.note(Rule::Nat64StandInNone);
    None
}

/// A TCP, UDP or ICMPv6 echo packet (or a fragment) to the prefix.
fn datagram(
    ctx: &mut Ctx,
    frame: &[u8],
    ip6: &Ip6,
    sh: &Shape,
    dst4: [u8; 4],
    kind: Kind,
) -> Verdict {
    let Some(s) = stand_in(ctx, &ip6.src) else {
        return ctx.drop(Counter::Nat64DropHostsFull);
    };
    let v4 = to_ipv4(ctx, frame, ip6, sh, dst4, kind, s);
    ctx.bump(Counter::Nat64Out);
    nat44(ctx, v4)
}

/// The IPv4 twin of the datagram (or fragment) from the stand-in `s`.
fn to_ipv4(
    ctx: &mut Ctx,
    frame: &[u8],
    ip6: &Ip6,
    sh: &Shape,
    dst4: [u8; 4],
    kind: Kind,
    s: u32,
) -> Vec<u8> {
    let src4 = s.to_ne_bytes();
    let (l4, end, n) = (sh.l4, ip6.end, sh.n);
    // The transport header and what follows (to the frame's end: padding
    // stays where it is).
    let mut seg = frame[l4..].to_vec();
    let proto = match kind {
        Kind::Tcp | Kind::Udp => {
            let (proto, at) = match kind {
                Kind::Tcp => (TCP, 16),
                _ => (UDP, 6),
            };
            let body = sum_without(frame, l4, end, l4 + at);
            let before = pseudo6(&ip6.src, &ip6.dst, n, proto) + body;
            let after = pseudo4(src4, dst4, n, proto) + body;
            let old = get16(frame, l4 + at);
            let new = if proto == UDP {
                moved_udp(old, before, after)
            } else {
                moved(old, before, after)
            };
            put16(&mut seg, at, new);
            ctx.note(if proto == TCP {
                Rule::Nat64OutTcp
            } else {
                Rule::Nat64OutUdp
            });
            proto
        }
        Kind::Echo(t) => {
            // ICMP has no pseudo-header; the type changes.
            let before =
                pseudo6(&ip6.src, &ip6.dst, n, ICMPV6) + sum_without(frame, l4, end, l4 + 2);
            seg[0] = t;
            let after = sum_without(&seg, 0, n, 2);
            put16(&mut seg, 2, moved(get16(frame, l4 + 2), before, after));
            ctx.note(Rule::Nat64OutEcho);
            ICMP
        }
        Kind::Later(proto) => {
            ctx.note(Rule::Nat64OutLaterFragment);
            proto
        }
        Kind::Error => unreachable!("errors go to error()"),
    };
    let tot = n + 20;
    let h = match sh.frag {
        // A fragment stays one (RFC 7915 section 5.1.1): its offset and
        // more-fragments, DF clear, the identification's low 16 bits.
        Some(f) => {
            let field = (u16::from(f.more) << 13) | f.offset;
            header4_fragment(
                ip6.tclass,
                tot,
                f.id,
                field,
                ip6.hop_limit,
                proto,
                src4,
                dst4,
            )
        }
        None => {
            if tot > super::DF_ABOVE {
                ctx.note(Rule::Nat64OutDontFragment);
            }
            header4(
                ip6.tclass,
                tot,
                ctx.oracle.nat64_id(),
                ip6.hop_limit,
                proto,
                src4,
                dst4,
            )
        }
    };
    ipv4_frame(frame, &h, &seg)
}

/// The inside interface's XDP program with the fast path on (README "Fast
/// path", NAT64): the packets of established flows only — TCP or UDP
/// right behind the IPv6 header (a whole transport header, UDP with a
/// checksum), to the prefix, hop limit > 1, not non-global under the
/// well-known prefix, from a host that has a stand-in whose NAPT binding
/// has a session with the remote endpoint (or a static one), the route
/// (looked up with the stand-in and the IPv4 destination, its MTU against
/// the IPv4 length) out of the external interface to a resolved next hop
/// that takes XDP frames — are translated as in TC, through NAT44 and sent
/// (nat64_fast_path_out). Anything else passes untouched to the TC
/// program, which the fuzzer runs separately.
pub fn xdp(ctx: &mut Ctx, frame: &[u8]) -> Verdict {
    let cfg = ctx.st.nat64;
    let taken = on(&cfg)
        .then(|| outer6(frame))
        .flatten()
        .and_then(|ip6| Some((extract(&cfg, &ip6.dst)?, ip6)))
        .filter(|(dst4, ip6)| ip6.hop_limit > 1 && !(well_known(&cfg) && is_non_global(*dst4)))
        .and_then(|(dst4, ip6)| {
            let kind = match ip6.next {
                TCP if ip6.has(L4_6, 20) => Kind::Tcp,
                UDP if ip6.has(L4_6, 8) && get16(frame, L4_6 + 6) != 0 => Kind::Udp,
                _ => return None,
            };
            let s = *ctx.st.nat64_hosts.get(&ip6.src)?;
            Some((dst4, ip6, kind, s))
        });
    let Some((dst4, ip6, kind, s)) = taken else {
        ctx.note(Rule::Nat64XdpToTc);
        return Verdict::Pass;
    };
    let sh = Shape {
        next: ip6.next,
        l4: L4_6,
        n: ip6.payload_len,
        frag: None,
        header: false,
    };
    // The IPv4 packet it would be (transport bytes as they are), for the
    // flow's lookup: its ports are where they are.
    let tot = ip6.payload_len + 20;
    let probe = ipv4_frame(
        frame,
        &header4(
            ip6.tclass,
            tot,
            [0; 2],
            ip6.hop_limit,
            ip6.next,
            s.to_ne_bytes(),
            dst4,
        ),
        &frame[L4_6..],
    );
    let ip4 = parse::outer(&probe).expect("a whole IPv4 header was built");
    let established = ctx.st.static_out.contains_key(&s)
        || super::super::fastpath::napt_established(&ctx.st, &probe, &ip4);
    if !established {
        ctx.note(Rule::Nat64XdpNotEstablished);
        return Verdict::Pass;
    }
    let route = ctx.st.gateway.fib.lookup(&Query {
        src: s,
        dst: u32::from_ne_bytes(dst4),
        iif: ctx.st.gateway.inside_ifindex,
        tot_len: tot as u16,
        skb_len: None,
    });
    if !super::super::fastpath::sendable(ctx, route) {
        ctx.note(Rule::Nat64XdpNotSendable);
        return Verdict::Pass;
    }
    ctx.note(Rule::Nat64XdpFastPath);
    let v4 = to_ipv4(ctx, frame, &ip6, &sh, dst4, kind, s);
    ctx.bump(Counter::Nat64Out);
    let v = nat44_step(ctx, v4).expect("an established NAPT flow");
    if v != Verdict::Translated {
        return v;
    }
    let out = parse::outer(&ctx.out).expect("NAT44 keeps the header whole");
    match forward::send(ctx, &out, route) {
        Some(v) => {
            ctx.bump(Counter::Nat64FastPathOut);
            v
        }
        None => Verdict::Drop,
    }
}

/// `frame`'s Ethernet header, typed IPv4, then `header` and `rest`.
fn ipv4_frame(frame: &[u8], header: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut out = frame[..12].to_vec();
    out.extend_from_slice(&parse::ETH_P_IP.to_be_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(rest);
    out
}

/// The IPv4 packet of a stand-in through NAT44 outbound (static 1:1, else
/// NAPT with the stand-in as the inside host), then forwarded as a router
/// would from the inside interface; NAT44 having nothing for it, or the
/// FIB no route, it is dropped (it cannot go back to the stack as IPv6).
fn nat44(ctx: &mut Ctx, v4: Vec<u8>) -> Verdict {
    let Some(v) = nat44_step(ctx, v4) else {
        ctx.note(Rule::Nat64OutNoNat44);
        return ctx.drop(Counter::Nat64DropNoRoute);
    };
    if v != Verdict::Translated {
        return v;
    }
    let out = parse::outer(&ctx.out).expect("NAT44 keeps the header whole");
    if hairpin::targets_us(&ctx.st, &ctx.out, &out) {
        return hairpin(ctx);
    }
    forward(ctx)
}

/// NAT44 outbound on the stand-in's IPv4 packet `v4` (static 1:1, else
/// NAPT with the stand-in as the inside host), into `ctx.out`; `None`:
/// neither owns it.
fn nat44_step(ctx: &mut Ctx, v4: Vec<u8>) -> Option<Verdict> {
    let ip = parse::outer(&v4).expect("a whole IPv4 header was built");
    ctx.out = v4.clone();
    ctx.dir = Dir::Out;
    match ctx.st.static_out.get(&ip.src).copied() {
        Some(public) => {
            ctx.note(Rule::Static);
            Some(static_nat::translate(ctx, &v4, &ip, public))
        }
        None => napt::egress_stand_in(ctx, &v4, &ip),
    }
}

/// Forwards `ctx.out` (IPv4) as a router would from the inside interface
/// (FIB, TTL, MACs, redirect), or drops it: it cannot go back to the stack
/// as the IPv6 packet it was.
fn forward(ctx: &mut Ctx) -> Verdict {
    let out = parse::outer(&ctx.out).expect("a whole IPv4 header");
    let route = ctx.st.gateway.fib.lookup(&Query {
        src: out.src,
        dst: out.dst,
        iif: ctx.st.gateway.inside_ifindex,
        tot_len: out.tot_len as u16,
        skb_len: Some(ctx.out.len()),
    });
    forward::send(ctx, &out, route).unwrap_or_else(|| {
        ctx.note(Rule::Nat64OutNoRoute);
        ctx.drop(Counter::Nat64DropNoRoute)
    })
}

/// Hairpinning (RFC 6146 section 3.8): the packet NAT44 just translated
/// out is to one of our public endpoints; it is translated in as if it
/// had come from outside (filtering applies), then goes on to its inside
/// host: an IPv6 one as IPv6 (to the stack, which routes it), an IPv4 one
/// forwarded. Not translated in, it is dropped (its source is one of the
/// gateway's own addresses now).
fn hairpin(ctx: &mut Ctx) -> Verdict {
    ctx.note(Rule::Nat64Hairpin);
    let half = ctx.out.clone();
    ctx.dir = Dir::In;
    if super::super::decide(ctx, &half) != Verdict::Translated {
        ctx.note(Rule::Nat64HairpinNotIn);
        return Verdict::Drop;
    }
    ctx.bump(Counter::HairpinTranslated);
    if super::super::to_stand_in(&ctx.out) {
        ctx.note(Rule::Nat64HairpinToIpv6);
        return super::inbound::decide(ctx, super::inbound::Origin::Hairpin(half));
    }
    forward(ctx)
}

/// ICMPv6 error type and code -> ICMP's, with the 4 bytes after the
/// checksum (RFC 7915 section 5.2); `None`: not translated.
fn map_type(t: u8, c: u8, rest: [u8; 4]) -> Option<(u8, u8, [u8; 4], Rule)> {
    Some(match (t, c) {
        // No route, beyond the scope of the source, address unreachable:
        // host unreachable.
        (1, 0 | 2 | 3) => (3, 1, [0; 4], Rule::Nat64OutErrorUnreachable),
        (1, 1) => (3, 10, [0; 4], Rule::Nat64OutErrorProhibited),
        (1, 4) => (3, 3, [0; 4], Rule::Nat64OutErrorPortUnreachable),
        (2, 0) => {
            let mtu = u32::from_be_bytes(rest).saturating_sub(20).min(0xffff) as u16;
            let [a, b] = mtu.to_be_bytes();
            (3, 4, [0, 0, a, b], Rule::Nat64OutErrorTooBig)
        }
        (3, c) => (11, c, [0; 4], Rule::Nat64OutErrorTimeExceeded),
        // Unrecognised next header: protocol unreachable.
        (4, 1) => (3, 2, [0; 4], Rule::Nat64OutErrorNextHeader),
        // Erroneous header field: RFC 7915 figure 6 moves the pointer onto
        // the IPv4 header (the flow label, or past the header: dropped).
        (4, 0) => {
            let to: u8 = match u32::from_be_bytes(rest) {
                p @ (0 | 1) => p as u8,
                4 | 5 => 2,
                6 => 9,
                7 => 8,
                8..=23 => 12,
                24..=39 => 16,
                _ => return None,
            };
            (12, 0, [to, 0, 0, 0], Rule::Nat64OutErrorParameter)
        }
        _ => return None,
    })
}

/// An ICMPv6 error from inside about a packet that came through a NAT64
/// binding: from an address under the prefix to a host with a stand-in.
fn error(ctx: &mut Ctx, frame: &[u8], ip6: &Ip6, sh: &Shape) -> Verdict {
    let cfg = ctx.st.nat64;
    let l4 = sh.l4;
    let rest6: [u8; 4] = frame[l4 + 4..l4 + 8].try_into().expect("4 bytes");
    let Some((t4, c4, rest4, rule)) = map_type(frame[l4], frame[l4 + 1], rest6) else {
        ctx.note(Rule::Nat64OutErrorType);
        return ctx.drop(Counter::Nat64DropUnsupported);
    };
    let q = l4 + 8;
    let (version, qtclass, qplen, qnext, qhop, qsrc, qdst) = header6_at(frame, q);
    if version != 6 {
        // Not an IPv6 header: nothing to translate it to.
        ctx.note(Rule::Nat64OutErrorQuoteNotIpv6);
        return ctx.drop(Counter::Nat64DropMalformed);
    }
    let Some(qsrc4) = extract(&cfg, &qsrc) else {
        ctx.note(Rule::Nat64OutErrorQuoteOutside);
        return ctx.drop(Counter::Nat64DropUnsupported);
    };
    let Some(&s) = ctx.st.nat64_hosts.get(&qdst) else {
        ctx.note(Rule::Nat64OutErrorNoStandIn);
        return ctx.drop(Counter::DropIcmpErrorNoMapping);
    };
    if !matches!(qnext, TCP | UDP | ICMPV6) {
        // An extension header in the quote: no IPv4 twin.
        ctx.note(Rule::Nat64OutErrorQuotedNextHeader);
        return ctx.drop(Counter::Nat64DropUnsupported);
    }
    ctx.note(rule);
    let s4 = s.to_ne_bytes();
    // The quoted transport: present where it lies in both the quoted
    // datagram (its payload length) and the error.
    let ql4 = q + IPV6_HLEN;
    let qend = (ql4 + qplen).min(ip6.end);
    let present = |at: usize| at + 2 <= qend;
    let mut rest = frame[ql4..].to_vec();
    let addrs6 = pseudo6(&qsrc, &qdst, 0, 0);
    let addrs4 = pseudo4(qsrc4, s4, 0, 0);
    match qnext {
        TCP if present(ql4 + 16) => {
            put16(&mut rest, 16, moved(get16(frame, ql4 + 16), addrs6, addrs4));
        }
        UDP if present(ql4 + 6) => {
            let old = get16(frame, ql4 + 6);
            put16(&mut rest, 6, moved_udp(old, addrs6, addrs4));
        }
        ICMPV6 if present(ql4) && matches!(frame[ql4], 128 | 129) => {
            ctx.note(Rule::Nat64OutErrorQuotedEcho);
            let old_word = u64::from(get16(frame, ql4));
            rest[0] = if frame[ql4] == 128 { 8 } else { 0 };
            let new_word = u64::from(get16(&rest, 0));
            if present(ql4 + 2) {
                let before = pseudo6(&qsrc, &qdst, qplen, ICMPV6) + old_word;
                put16(&mut rest, 2, moved(get16(frame, ql4 + 2), before, new_word));
            }
        }
        _ => {}
    }
    let quote4 = header4(
        qtclass,
        qplen + 20,
        [0, 0],
        qhop,
        proto_6_to_4(qnext),
        qsrc4,
        s4,
    );
    // 40 bytes shorter (an atomic fragment's header goes too): 8 (ICMP) +
    // 20 (quote) + the rest, after a 20-byte header.
    let tot = sh.n;
    let mut msg = vec![t4, c4, 0, 0];
    msg.extend_from_slice(&rest4);
    msg.extend_from_slice(&quote4);
    msg.extend_from_slice(&rest);
    let (end, n) = (ip6.end, tot - 20);
    let before = pseudo6(&ip6.src, &ip6.dst, sh.n, ICMPV6) + sum_without(frame, l4, end, l4 + 2);
    let after = sum_without(&msg, 0, n, 2);
    put16(&mut msg, 2, moved(get16(frame, l4 + 2), before, after));
    let outer = header4(
        ip6.tclass,
        tot,
        ctx.oracle.nat64_id(),
        ip6.hop_limit,
        ICMP,
        s4,
        qsrc4,
    );
    ctx.bump(Counter::Nat64Out);
    nat44(ctx, ipv4_frame(frame, &outer, &msg))
}
