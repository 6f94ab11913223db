//! IPv6 -> IPv4 (the inside interface's TC ingress, tail-called for every
//! IPv6 frame): a packet to the NAT64 prefix becomes an IPv4 packet from
//! its host's stand-in to the embedded address (RFC 7915 section 5), the
//! NAT44 core translates the stand-in like any inside source, and the
//! packet is forwarded here (FIB + redirect): the stack would drop a
//! packet whose source is one of the gateway's own addresses.
//!
//! Anything to the prefix that cannot be translated is dropped and
//! counted, never routed as IPv6; anything else is not NAT64's and passes.
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    bindings::{
        bpf_adj_room_mode::BPF_ADJ_ROOM_MAC, bpf_check_mtu_ret::BPF_MTU_CHK_RET_FRAG_NEEDED,
    },
    helpers::generated::{bpf_check_mtu, bpf_csum_update, bpf_get_prandom_u32},
    programs::TcContext,
};
use nat_common::{
    Counter,
    csum::{add32, fold},
    nat64::{
        NAT64_SLOT_HAIRPIN, NAT64_SLOT_OUT_ERROR, NAT64_SLOT_OUT_NAT44, NAT64_WKP, Nat64Config,
        is_non_global, is_stand_in,
    },
    trace::TRACE_NAT64_OUT_TC,
};

use crate::{
    clock, counters,
    forward::{fastpath, hairpin, route},
    maps::NAT64_TC_PROGS,
    nat64::{
        self, config,
        header::{
            self, ICMP_ECHO, ICMP_ECHOREPLY, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, as_field,
            csum_swap, icmpv6_pseudo_rest, sum4, sum6,
        },
        host, icmpv6_error,
    },
    packet::{Packet, TcPacket},
    parse::{
        ipv4::{
            self, ETH_HLEN, ETH_P_IP_WIRE, ETH_TYPE_OFF, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
        },
        ipv6::{self, IPPROTO_ICMPV6, Ipv6, NEXTHDR_FRAGMENT, bytes_of},
    },
    trace,
    translate::pipeline,
    verdict::{Direction, Verdict},
};

/// ETH_P_IP for bpf_skb_change_proto (network order).
const ETH_P_IP_BE: u16 = 0x0800u16.to_be();

#[inline(always)]
pub fn process(ctx: &TcContext) -> i32 {
    let Some(cfg) = config() else {
        return TC_ACT_OK;
    };
    let mut p = TcPacket { ctx };
    let Some(ip6) = ipv6::outer_ipv6(&p) else {
        // Not a header to translate (cut short, a payload length of 0 or
        // beyond the frame): if it is to the prefix it must not be routed
        // as IPv6 either.
        let dst: Option<[u8; 16]> = p.load(ETH_HLEN + 24);
        if dst.is_some_and(|d| cfg.extract(&d).is_some()) {
            // A payload length of 0 (a jumbogram, or nothing at all) is
            // valid IPv6 with no IPv4 twin; anything else is cut short.
            let len: Option<u16> = p.load(ETH_HLEN + 4);
            return counters::drop_tc(if len == Some(0) {
                Counter::Nat64DropUnsupported
            } else {
                Counter::Nat64DropMalformed
            });
        }
        return TC_ACT_OK;
    };
    let Some(v4_dst) = cfg.extract(&bytes_of(&ip6.dst)) else {
        // Not to the prefix: plain IPv6, routed as usual.
        return TC_ACT_OK;
    };
    // Ours from here on: translated, or dropped.
    match translate(ctx, &mut p, cfg, &ip6, v4_dst) {
        Ok(v) => v,
        Err(reason) => {
            counters::bump(reason);
            TC_ACT_SHOT
        }
    }
}

/// What the transport header needs.
enum L4 {
    /// TCP or UDP: the checksum at this offset covers the addresses.
    Ports { csum_off: u32, udp: bool },
    /// ICMPv6 echo: a new type, and the checksum loses its pseudo-header.
    Echo { ty: u8 },
    /// An ICMPv6 error: rebuilt with its quote (icmpv6_error.rs).
    Error,
    /// A later fragment: no transport header.
    Later,
}

/// An IPv6 fragment header's fields (RFC 8200 4.5), all zero when the
/// packet has none. (A struct with a flag, not an `Option`: LLVM fills a
/// `None`'s bytes from any register at hand, which the verifier refuses
/// to read.)
struct Fragment {
    /// Whether there is a fragment header.
    present: bool,
    /// What follows it.
    next: u8,
    /// The IPv4 flags-and-offset field: offset (8-byte units) and MF, DF
    /// clear; as it lies in memory.
    field: u16,
    /// The low 16 bits of the identification, as they lie in memory.
    id: u16,
    /// Offset 0 and no more fragments: an atomic fragment, translated as a
    /// whole datagram (RFC 8021).
    atomic: bool,
    /// The header as it lies in the packet (for skb->csum).
    raw: [u32; 2],
}

/// The fragment header right after the IPv6 header, if there is one.
#[inline(always)]
fn fragment(p: &TcPacket, ip6: &Ipv6) -> Result<Fragment, Counter> {
    if ip6.next != NEXTHDR_FRAGMENT {
        return Ok(Fragment {
            present: false,
            next: 0,
            field: 0,
            id: 0,
            atomic: false,
            raw: [0; 2],
        });
    }
    if !ip6.has(Ipv6::L4, 8) {
        return Err(Counter::Nat64DropMalformed);
    }
    let raw: [u32; 2] = p.load(Ipv6::L4).ok_or(Counter::Nat64DropMalformed)?;
    let [next, _, o0, o1] = raw[0].to_ne_bytes();
    let [_, _, i0, i1] = raw[1].to_ne_bytes();
    let off_m = u16::from_be_bytes([o0, o1]);
    let (offset, more) = (off_m >> 3, off_m & 1);
    Ok(Fragment {
        present: true,
        next,
        field: ((more << 13) | offset).to_be(),
        id: u16::from_ne_bytes([i0, i1]),
        atomic: offset == 0 && more == 0,
        raw,
    })
}

#[inline(always)]
fn translate(
    ctx: &TcContext,
    p: &mut TcPacket,
    cfg: &Nat64Config,
    ip6: &Ipv6,
    v4_dst: [u8; 4],
) -> Result<i32, Counter> {
    if cfg.flags & NAT64_WKP != 0 && is_non_global(v4_dst) {
        return Err(Counter::Nat64DropNonGlobal);
    }
    if ip6.hop_limit <= 1 {
        // The stack answers with Time Exceeded (traceroute's first hop).
        return Ok(TC_ACT_OK);
    }
    if too_big(ctx, ip6.next == NEXTHDR_FRAGMENT) {
        // Its IPv4 twin would not fit the external link either: the stack
        // answers with Packet Too Big (with the link's MTU, 20 bytes on
        // the safe side) through its route to the prefix.
        return Ok(TC_ACT_OK);
    }
    if !unicast_source(&ip6.src) {
        return Err(Counter::Nat64DropUnsupported);
    }
    let frag = fragment(p, ip6)?;
    let (next, l4_off, frag_len) = if frag.present {
        (frag.next, Ipv6::L4 + 8, 8)
    } else {
        (ip6.next, Ipv6::L4, 0)
    };
    let later = frag.field & 0x1fffu16.to_be() != 0;
    let l4 = plan(p, ip6, next, l4_off, later)?;
    if let L4::Error = l4 {
        if frag.present {
            return Err(Counter::Nat64DropUnsupported);
        }
        // A program of its own: the error's headers and this path's would
        // not fit one BPF stack frame together.
        // SAFETY: a tail call with our own context; returns only on failure.
        unsafe { NAT64_TC_PROGS.tail_call(ctx, NAT64_SLOT_OUT_ERROR) };
        return Err(Counter::Nat64DropUnsupported);
    }
    if frag.present && !frag.atomic && matches!(l4, L4::Echo { .. }) {
        // Its checksum's pseudo-header has the whole message's length.
        return Err(Counter::Nat64DropUnsupported);
    }
    let src6 = bytes_of(&ip6.src);
    let stand_in =
        host::stand_in(&src6, &ip6.src, clock::now()).ok_or(Counter::Nat64DropHostsFull)?;
    let dst = u32::from_ne_bytes(v4_dst);

    // The transport checksum, while the IPv6 header is still there.
    let old = sum6(sum6(0, &ip6.src), &ip6.dst);
    // In-place changes beyond the pseudo-header ones the helpers account
    // for (skb->csum, below).
    let mut extra = 0u64;
    let proto = match l4 {
        L4::Ports { csum_off, udp } => {
            p.fix_l4_csum_for_addr(csum_off, as_field(old), as_field(sum4(stand_in, dst)), udp)
                .ok_or(Counter::Nat64DropMalformed)?;
            if udp { IPPROTO_UDP } else { IPPROTO_TCP }
        }
        L4::Error => return Err(Counter::Nat64DropUnsupported),
        L4::Later if next == IPPROTO_UDP => IPPROTO_UDP,
        L4::Later => IPPROTO_TCP,
        L4::Echo { ty } => {
            let [old_ty, code]: [u8; 2] = p.load(l4_off).ok_or(Counter::Nat64DropMalformed)?;
            let check: u16 = p.load(l4_off + 2).ok_or(Counter::Nat64DropMalformed)?;
            let pseudo = old + icmpv6_pseudo_rest(ip6.payload_len - frag_len);
            let old_word = u16::from_ne_bytes([old_ty, code]) as u64;
            let new_word = u16::from_ne_bytes([ty, code]) as u64;
            let fixed = csum_swap(check, pseudo + old_word, new_word);
            p.store(l4_off, &[ty, code])
                .ok_or(Counter::Nat64DropMalformed)?;
            p.store(l4_off + 2, &fixed)
                .ok_or(Counter::Nat64DropMalformed)?;
            extra = new_word + fixed as u64 + (!fold(old_word + check as u64)) as u64;
            IPPROTO_ICMP
        }
    };

    // SAFETY: helper without arguments.
    let id = unsafe { bpf_get_prandom_u32() } as u16;
    let tot_len = ip6.payload_len - frag_len + 20;
    let mut h = header::ipv4_header(ip6.tclass, tot_len, id, ip6.hop_limit, proto, stand_in, dst);
    if frag.present && !frag.atomic {
        // A fragment stays one (RFC 7915 5.1.1): its offset and MF, DF
        // clear, the identification's low 16 bits.
        h = header::ipv4_fragment_header(&h, frag.id, frag.field);
    }
    // 20 bytes of header room less; skb->protocol and GSO follow. A
    // fragment header goes too.
    ctx.change_proto(ETH_P_IP_BE, 0)
        .map_err(|_| Counter::Nat64DropMalformed)?;
    if frag.present {
        ctx.adjust_room(-8, BPF_ADJ_ROOM_MAC, 0)
            .map_err(|_| Counter::Nat64DropMalformed)?;
    }
    p.store(ETH_TYPE_OFF, &ETH_P_IP_WIRE)
        .ok_or(Counter::Nat64DropMalformed)?;
    p.store(ETH_HLEN, &h).ok_or(Counter::Nat64DropMalformed)?;
    // CHECKSUM_COMPLETE: the helpers took the removed bytes out of
    // skb->csum; the IPv4 header (summing to zero) replaced the last 20
    // bytes left of the IPv6 header (and of the fragment header): those
    // come out too. (A no-op in any other checksum state.)
    let replaced = if frag.present {
        let dst = add32(add32(add32(0, ip6.dst[1]), ip6.dst[2]), ip6.dst[3]);
        add32(add32(dst, frag.raw[0]), frag.raw[1])
    } else {
        sum6(add32(0, ip6.src[3]), &ip6.dst)
    };
    csum_update(ctx, extra + (!fold(replaced)) as u64);
    counters::bump(Counter::Nat64Out);
    // SAFETY: a tail call with our own context; returns only on failure.
    unsafe { NAT64_TC_PROGS.tail_call(ctx, NAT64_SLOT_OUT_NAT44) };
    Err(Counter::Nat64DropNoRoute)
}

/// Adds `sum` to skb->csum (CHECKSUM_COMPLETE only).
#[inline(always)]
fn csum_update(ctx: &TcContext, sum: u64) {
    // SAFETY: helper on our own skb.
    unsafe { bpf_csum_update(ctx.skb.skb, fold(sum) as u32) };
}

/// The ICMPv6 error program (`xnat_nat64_out_error_tc`), tail-called by
/// [`process`] for an error it has checked (to the prefix, hop limit,
/// source, a quoted header present).
#[inline(always)]
pub fn process_error(ctx: &TcContext) -> i32 {
    let Some(cfg) = config() else {
        return counters::drop_tc(Counter::Nat64DropUnsupported);
    };
    let mut p = TcPacket { ctx };
    let Some(ip6) = ipv6::outer_ipv6(&p) else {
        return counters::drop_tc(Counter::Nat64DropMalformed);
    };
    match error(ctx, &mut p, cfg, &ip6) {
        Ok(v) => v,
        Err(reason) => counters::drop_tc(reason),
    }
}

/// An ICMPv6 error from inside: rebuilt as an ICMP error from the quoted
/// host's stand-in (the packet 40 bytes shorter), then the NAT44 step.
#[inline(always)]
fn error(ctx: &TcContext, p: &mut TcPacket, cfg: &Nat64Config, ip6: &Ipv6) -> Result<i32, Counter> {
    let h = icmpv6_error::prepare(p, ip6, cfg)?;
    // 20 bytes less after the MAC header for each IP header.
    ctx.change_proto(ETH_P_IP_BE, 0)
        .map_err(|_| Counter::Nat64DropMalformed)?;
    ctx.adjust_room(-20, BPF_ADJ_ROOM_MAC, 0)
        .map_err(|_| Counter::Nat64DropMalformed)?;
    p.store(ETH_TYPE_OFF, &ETH_P_IP_WIRE)
        .ok_or(Counter::Nat64DropMalformed)?;
    p.store(ETH_HLEN, &h.ip4)
        .ok_or(Counter::Nat64DropMalformed)?;
    p.store(ETH_HLEN + 20, &h.icmp4)
        .ok_or(Counter::Nat64DropMalformed)?;
    p.store(ETH_HLEN + 28, &h.quote4)
        .ok_or(Counter::Nat64DropMalformed)?;
    csum_update(ctx, h.csum_extra);
    counters::bump(Counter::Nat64Out);
    // SAFETY: a tail call with our own context; returns only on failure.
    unsafe { NAT64_TC_PROGS.tail_call(ctx, NAT64_SLOT_OUT_NAT44) };
    Err(Counter::Nat64DropNoRoute)
}

/// The NAT44 step (its own program, `xnat_nat64_out_nat44_tc`): the
/// stand-in's IPv4 packet through static NAT or NAPT, then forwarded.
/// Reported to `xnat trace` while one runs (as the host's IPv6 packet:
/// `trace::report` names the stand-in's host).
#[inline(always)]
pub fn nat44(ctx: &TcContext) -> i32 {
    let mut p = TcPacket { ctx };
    trace::arm_stashed(&p);
    nat44_traced(ctx, &mut p)
}

/// [`nat44`]'s work; every way out reports to a running trace.
#[inline(always)]
fn nat44_traced(ctx: &TcContext, p: &mut TcPacket) -> i32 {
    let done = |p: &TcPacket, rc: i32| {
        let v = if rc == TC_ACT_SHOT {
            Verdict::Drop
        } else {
            Verdict::Translated
        };
        trace::report_stashed(p, TRACE_NAT64_OUT_TC, v);
        rc
    };
    let v = match ipv4::outer_ipv4(p) {
        // Reached only by the tail call above, but checked all the same:
        // nothing else may be translated as an IPv6 host's.
        Some(ip) if is_stand_in(ip.src) => pipeline::nat64_egress(p, &ip),
        _ => return done(p, counters::drop_tc(Counter::Nat64DropMalformed)),
    };
    match v {
        Verdict::Translated => {}
        Verdict::Drop => return done(p, TC_ACT_SHOT),
        // NAPT off and no static mapping: nothing to translate the
        // stand-in to.
        Verdict::Pass => return done(p, counters::drop_tc(Counter::Nat64DropNoRoute)),
    }
    // The destination is as it was: still one of our public endpoints if
    // it was one. (Asked after NAT44, not before: the answer would double
    // the verifier's walk of NAT44.)
    let hairpin = ipv4::outer_ipv4(p).is_some_and(|ip| hairpin::targets_us(p, &ip));
    if hairpin {
        // To one of our public endpoints (RFC 6146 3.8): the inbound step
        // next, a program of its own.
        done(p, TC_ACT_OK);
        // SAFETY: a tail call with our own context; returns only on failure.
        unsafe { NAT64_TC_PROGS.tail_call(ctx, NAT64_SLOT_HAIRPIN) };
        return counters::drop_tc(Counter::Nat64DropNoRoute);
    }
    let rc = match forward(ctx, p) {
        Ok(v) => v,
        Err(reason) => counters::drop_tc(reason),
    };
    done(p, rc)
}

/// Hairpinning's inbound step (`xnat_nat64_hairpin_tc`): the packet NAT44
/// just translated out, to one of our public endpoints, translated in as
/// if it had come from outside (filtering applies); to another IPv6 host
/// it goes on as IPv6 (the IPv4 -> IPv6 program, then the stack), to an
/// IPv4 host by the FIB.
#[inline(always)]
pub fn hairpin_in(ctx: &TcContext) -> i32 {
    let mut p = TcPacket { ctx };
    if pipeline::process(&mut p, Direction::Ingress) != Verdict::Translated {
        // Dropped (filtered, ...), or nothing claimed it after all: a
        // packet from our own public address cannot go to the stack.
        return TC_ACT_SHOT;
    }
    counters::bump(Counter::HairpinTranslated);
    if nat64::for_stand_in(&p) {
        // Tells the IPv4 -> IPv6 program the packet is not from outside.
        fastpath::mark_translated(ctx);
        nat64::tail_call_in_tc(ctx);
        return counters::drop_tc(Counter::Nat64DropNoHost);
    }
    match forward(ctx, &mut p) {
        Ok(v) => v,
        Err(reason) => counters::drop_tc(reason),
    }
}

/// Sends the translated packet on with the FIB's route.
#[inline(always)]
fn forward(ctx: &TcContext, p: &mut TcPacket) -> Result<i32, Counter> {
    let ip = ipv4::outer_ipv4(p).ok_or(Counter::Nat64DropMalformed)?;
    // SAFETY: reading the program's own context.
    let (ifindex, gso) = unsafe { ((*ctx.skb.skb).ifindex, (*ctx.skb.skb).gso_size) };
    let mtu_len = if gso == 0 { ip.tot_len as u16 } else { 0 };
    let route = route::lookup_packet(ctx, p, &ip, ifindex, mtu_len);
    match route::send(p, &ip, &route) {
        Some(v) => {
            fastpath::mark_translated(ctx);
            Ok(v as i32)
        }
        None => Err(Counter::Nat64DropNoRoute),
    }
}

/// Which transport NAT64 translates, and what its header needs; refuses
/// extension headers, fragments (for now), other protocols, ICMPv6 other
/// than echo, and transport headers cut short.
#[inline(always)]
fn plan(p: &TcPacket, ip6: &Ipv6, next: u8, l4: u32, later: bool) -> Result<L4, Counter> {
    if later {
        return match next {
            IPPROTO_TCP | IPPROTO_UDP => Ok(L4::Later),
            _ => Err(Counter::Nat64DropUnsupported),
        };
    }
    match next {
        IPPROTO_TCP => {
            if !ip6.has(l4, 20) {
                return Err(Counter::Nat64DropMalformed);
            }
            Ok(L4::Ports {
                csum_off: l4 + 16,
                udp: false,
            })
        }
        IPPROTO_UDP => {
            if !ip6.has(l4, 8) {
                return Err(Counter::Nat64DropMalformed);
            }
            // IPv6 UDP always has a checksum (RFC 8200 section 8.1).
            let check: u16 = p.load(l4 + 6).ok_or(Counter::Nat64DropMalformed)?;
            if check == 0 {
                return Err(Counter::Nat64DropMalformed);
            }
            Ok(L4::Ports {
                csum_off: l4 + 6,
                udp: true,
            })
        }
        IPPROTO_ICMPV6 => {
            if !ip6.has(l4, 8) {
                return Err(Counter::Nat64DropMalformed);
            }
            let ty: u8 = p.load(l4).ok_or(Counter::Nat64DropMalformed)?;
            match ty {
                ICMPV6_ECHO_REQUEST => Ok(L4::Echo { ty: ICMP_ECHO }),
                ICMPV6_ECHO_REPLY => Ok(L4::Echo { ty: ICMP_ECHOREPLY }),
                // An error quotes at least an IPv6 header.
                t if icmpv6_error::is_error(t) && ip6.has(l4 + 8, 40) => Ok(L4::Error),
                _ => Err(Counter::Nat64DropUnsupported),
            }
        }
        _ => Err(Counter::Nat64DropUnsupported),
    }
}

/// Whether the packet, 20 bytes shorter as IPv4 (28 without its fragment
/// header), is still longer than the external interface's MTU (GSO
/// packets: their segments).
#[inline(always)]
fn too_big(ctx: &TcContext, fragment: bool) -> bool {
    let ext = route::external_ifindex();
    let mut mtu_len = 0u32;
    // A fragment header goes too.
    let shorter = if fragment { -28 } else { -20 };
    // SAFETY: helper on our own skb with a stack slot for the MTU.
    let rc = unsafe { bpf_check_mtu(ctx.skb.skb.cast(), ext, &mut mtu_len, shorter, 0) };
    rc == BPF_MTU_CHK_RET_FRAG_NEEDED as i64
}

/// A source NAT64 may give a stand-in: not unspecified, multicast or
/// link-local (those never leave their link).
#[inline(always)]
fn unicast_source(src: &[u32; 4]) -> bool {
    let [a, b, ..] = src[0].to_ne_bytes();
    let unspecified = src[0] == 0 && src[1] == 0 && src[2] == 0 && src[3] == 0;
    !(unspecified || a == 0xff || (a == 0xfe && b & 0xc0 == 0x80))
}
