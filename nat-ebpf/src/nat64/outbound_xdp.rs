//! IPv6 -> IPv4 in XDP (`xnat_nat64_out_xdp`, tail-called by
//! `xnat_inside_xdp` for IPv6 frames, with `--fast-path` and
//! `--inside-hook xdp`): the established flows' packets only, translated
//! (RFC 7915, as outbound.rs does it in TC), through NAT44 and out of the
//! external interface by the fast path's own steps, before the kernel
//! builds an skb.
//!
//! Everything is decided before the packet changes: a packet this program
//! does not take — to another destination, a new host or flow, ICMPv6,
//! fragments and other extension headers, hop limit ≤ 1, non-global under
//! the well-known prefix, too big for the route, a next hop XDP cannot
//! reach — passes untouched to `xnat_inside_tc` and its NAT64 program,
//! which translate it, answer it or drop and count it as without XDP.
use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_get_prandom_u32, bpf_xdp_adjust_head},
    programs::XdpContext,
};
use nat_common::{
    Counter,
    nat64::{NAT64_WKP, is_non_global},
    trace::TRACE_NAT64_OUT_XDP,
};

use crate::{
    counters,
    forward::{
        fastpath::{self, Outbound},
        route,
    },
    maps::NAT64_HOSTS,
    nat64::{
        config,
        header::{self, as_field, sum4, sum6},
    },
    packet::{Packet, XdpPacket},
    parse::{
        ipv4::{self, ETH_HLEN, ETH_P_IP_WIRE, ETH_TYPE_OFF, IPPROTO_TCP, IPPROTO_UDP, Ipv4},
        ipv6::{self, Ipv6, bytes_of},
    },
    trace,
    verdict::Verdict,
};

#[inline(always)]
pub fn process(ctx: &XdpContext) -> u32 {
    let Some(cfg) = config() else {
        return xdp_action::XDP_PASS;
    };
    let mut p = XdpPacket::new(ctx);
    let Some(ip6) = ipv6::outer_ipv6(&p) else {
        return xdp_action::XDP_PASS;
    };
    let Some(v4_dst) = cfg.extract(&bytes_of(&ip6.dst)) else {
        return xdp_action::XDP_PASS;
    };
    if ip6.hop_limit <= 1 || (cfg.flags & NAT64_WKP != 0 && is_non_global(v4_dst)) {
        return xdp_action::XDP_PASS;
    }
    // TCP or UDP right behind the header, the whole transport header
    // there, a UDP checksum (IPv6 requires one; TC drops those without).
    let (udp, l4_len, csum_off) = match ip6.next {
        IPPROTO_TCP => (false, 20, Ipv6::L4 + 16),
        IPPROTO_UDP => (true, 8, Ipv6::L4 + 6),
        _ => return xdp_action::XDP_PASS,
    };
    if !ip6.has(Ipv6::L4, l4_len) || (udp && p.load::<u16>(Ipv6::L4 + 6).is_none_or(|c| c == 0)) {
        return xdp_action::XDP_PASS;
    }
    // A host that has a stand-in already (a new one is TC's to reserve).
    // SAFETY: plain copy out of the map.
    let Some(stand_in) = unsafe { NAT64_HOSTS.get(&bytes_of(&ip6.src)) }.copied() else {
        return xdp_action::XDP_PASS;
    };
    let dst = u32::from_ne_bytes(v4_dst);
    let tot_len = ip6.payload_len + 20;
    // The IPv4 packet to be, where it will lie: its header over the last
    // 20 bytes of the IPv6 header, the transport header where it is.
    let view = Ipv4 {
        off: ETH_HLEN + 20,
        hlen: 20,
        end: ip6.end,
        tot_len,
        proto: ip6.next,
        src: stand_in,
        dst,
        later_fragment: false,
        more_fragments: false,
        id: 0,
        check: 0,
    };
    // SAFETY: reading our own context.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    let Some(mut flow) = fastpath::established(&p, &view) else {
        return xdp_action::XDP_PASS;
    };
    // The route as the fast path's IPv4 packets look it up (with the
    // untranslated addresses: the stand-in's); its MTU checked against
    // the IPv4 length.
    let route = route::lookup(ctx, &view, ifindex, stand_in, dst, tot_len as u16);
    if !fastpath::sendable(&route, true) {
        return xdp_action::XDP_PASS;
    }

    // Ours from here on: translated and sent, or dropped.
    let old = sum6(sum6(0, &ip6.src), &ip6.dst);
    let macs: Option<[u8; 12]> = p.load(0);
    let (Some(macs), Some(())) = (
        macs,
        p.fix_l4_csum_for_addr(csum_off, as_field(old), as_field(sum4(stand_in, dst)), udp),
    ) else {
        return drop(Counter::Nat64DropMalformed);
    };
    // SAFETY: helper without arguments.
    let id = unsafe { bpf_get_prandom_u32() } as u16;
    let h = header::ipv4_header(
        ip6.tclass,
        tot_len,
        id,
        ip6.hop_limit,
        ip6.next,
        stand_in,
        dst,
    );
    // SAFETY: helper on our own frame; the old bounds are not used after.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, 20) } != 0 {
        return drop(Counter::Nat64DropMalformed);
    }
    let mut p = XdpPacket::new(ctx);
    let written = p.store(0, &macs).is_some()
        && p.store(ETH_TYPE_OFF, &ETH_P_IP_WIRE).is_some()
        && p.store(ETH_HLEN, &h).is_some();
    let Some(ip) = ipv4::outer_ipv4(&p).filter(|_| written) else {
        return drop(Counter::Nat64DropMalformed);
    };
    // Reported to a running trace from here (the stand-in's packet: the
    // report names its host).
    let armed = trace::arm(&p);
    counters::bump(Counter::Nat64Out);
    flow.moved(20);
    let rc =
        match fastpath::translate_and_send(&mut p, &ip, &flow, &route, Counter::Nat64FastPathOut) {
            Outbound::Sent(v) => v as u32,
            // Translated already: nothing else may have it (NAT44 counted its
            // drops).
            Outbound::Drop => xdp_action::XDP_DROP,
            Outbound::Pass => drop(Counter::Nat64DropNoRoute),
        };
    if let Some(a) = &armed {
        let v = if rc == xdp_action::XDP_DROP {
            Verdict::Drop
        } else {
            Verdict::Translated
        };
        trace::report(&p, a, TRACE_NAT64_OUT_XDP, v);
    }
    rc
}

#[inline(always)]
fn drop(reason: Counter) -> u32 {
    counters::bump(reason);
    xdp_action::XDP_DROP
}
