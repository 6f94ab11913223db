//! IPv4 -> IPv6 (the external interface's ingress, tail-called once NAT44
//! has turned the destination into a stand-in): the packet becomes IPv6
//! from the remote address under the NAT64 prefix to the host the stand-in
//! stands for (RFC 7915 section 4), and goes to the stack, which routes it
//! inside.
use aya_ebpf::{
    EbpfContext,
    bindings::{TC_ACT_OK, TC_ACT_SHOT, bpf_adj_room_mode::BPF_ADJ_ROOM_MAC, xdp_action},
    helpers::generated::{
        bpf_csum_update, bpf_redirect, bpf_skb_change_tail, bpf_xdp_adjust_head,
        bpf_xdp_adjust_meta, bpf_xdp_adjust_tail,
    },
    programs::{TcContext, XdpContext},
};
use nat_common::{
    Counter,
    csum::{add32, fold},
    nat64::{NAT64_WKP, Nat64Config, XDP_HANDOFF_SPLIT, is_non_global, is_stand_in},
};

use crate::{
    counters,
    forward::{
        fastpath,
        route::{self, Route},
    },
    maps::{NAT64_IDS, XDP_TARGETS},
    nat64::{
        config,
        header::{
            self, ICMP_ECHO, ICMP_ECHOREPLY, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, as_field,
            csum_swap, icmpv6_pseudo_rest, sum4, sum6,
        },
        icmp_error, split, too_big,
    },
    packet::{Packet, TcPacket, XdpPacket},
    parse::{
        ipv4::{self, ETH_HLEN, ETH_TYPE_OFF, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4},
        ipv6::{ETH_P_IPV6_WIRE, NEXTHDR_FRAGMENT, words_of},
    },
};

/// ETH_P_IPV6 for bpf_skb_change_proto (network order).
const ETH_P_IPV6_BE: u16 = 0x86ddu16.to_be();
/// How much longer a packet gets: its IPv6 header is 20 bytes longer; a
/// fragment's 8 more (its fragment header); an ICMP error's quoted header
/// 20 more.
const GROWTH: i32 = 20;
const GROWTH_FRAGMENT: i32 = 28;
const GROWTH_ERROR: i32 = 40;

/// What the grown packet gets written into it: its IPv6 header, and for
/// an ICMP error its ICMPv6 and quoted IPv6 headers too. (One struct, not
/// an enum of two sizes: LLVM copies an enum's unused bytes from whatever
/// register is at hand, and the verifier refuses a pointer stored there.)
struct Translated {
    /// For a fragment, `icmp6` holds its fragment header.
    headers: icmp_error::Headers,
    growth: i32,
    /// How the sum of the packet's bytes changed beyond the new headers
    /// (in-place rewrites, the bytes the headers replace), for skb->csum.
    csum_extra: u64,
}

impl Translated {
    /// A datagram, or a fragment with its fragment header.
    #[inline(always)]
    fn datagram(ip6: [u32; 10], frag: Option<[u32; 2]>, csum_extra: u64) -> Self {
        Translated {
            csum_extra,
            headers: icmp_error::Headers {
                ip6,
                icmp6: frag.unwrap_or([0; 2]),
                quote6: [0; 10],
                csum_extra: 0,
            },
            growth: if frag.is_some() {
                GROWTH_FRAGMENT
            } else {
                GROWTH
            },
        }
    }

    #[inline(always)]
    fn growth(&self) -> i32 {
        self.growth
    }
}

#[inline(always)]
pub fn process_tc(ctx: &TcContext) -> i32 {
    let mut p = TcPacket { ctx };
    // SAFETY: reading the program's own context.
    let (gso, ifindex) = unsafe { ((*ctx.skb.skb).gso_size != 0, (*ctx.skb.skb).ifindex) };
    // Only a packet from outside is answered: a hairpinned one (marked
    // by the hairpin step) goes to the stack, which forwards it or answers
    // Packet Too Big.
    let hairpinned = crate::forward::fastpath::translated_here(ctx);
    let (ip, cfg) = match target(&p) {
        Ok(Some(t)) => t,
        Ok(None) => return TC_ACT_OK,
        Err(reason) => return counters::drop_tc(reason),
    };
    // Without DF: split into IPv6 fragments that fit (translated first).
    let split = split::wanted(&p, &ip, cfg, gso || hairpinned);
    let answer_with = if hairpinned || ttl(&p, &ip) > 1 {
        too_big::check(&p, &ip, cfg, gso || hairpinned || split)
    } else {
        too_big::time_exceeded(&p, &ip).map(Some)
    };
    match answer_with {
        Ok(None) => {}
        Ok(Some(a)) => {
            // The answer in place of the packet, back out where it came in.
            let len = ETH_HLEN + too_big::ANSWER_LEN;
            // SAFETY: helper on our own skb.
            let cut = unsafe { bpf_skb_change_tail(ctx.skb.skb, len, 0) } == 0;
            if !cut || answer(&mut p, &a).is_none() {
                return counters::drop_tc(Counter::Nat64DropMalformed);
            }
            counters::bump(sent_counter(&a));
            // SAFETY: helper call.
            return unsafe { bpf_redirect(ifindex, 0) } as i32;
        }
        Err(reason) => return counters::drop_tc(reason),
    }
    if split {
        let whole = !ip.later_fragment && !ip.more_fragments;
        let check_off = split::check_off(ip.proto, whole);
        match split::partial(ctx, check_off) {
            _ if check_off == 0 => {}
            Some(false) => {}
            Some(true) => return counters::drop_tc(Counter::Nat64DropTooBig),
            None => return counters::drop_tc(Counter::Nat64DropMalformed),
        }
    }
    let mut t = match prepare(&mut p, &ip, cfg, split) {
        Ok(t) => t,
        Err(reason) => return counters::drop_tc(reason),
    };
    // The fast path, for a packet from outside: asked while the IPv4
    // header still names the flow (the route cache's key).
    // (Pieces of a split packet go to the stack, as its clones do.)
    let route = if hairpinned || split {
        Route::Stack
    } else {
        fast_route(ctx, &ip, &mut t, ifindex, gso, false)
    };
    // 20 bytes more header room after the MAC header; skb->protocol and
    // GSO follow. An error needs 20 more for its quote's header.
    let grown = ctx.change_proto(ETH_P_IPV6_BE, 0).is_ok()
        && (t.growth == GROWTH
            || ctx
                .adjust_room(t.growth - GROWTH, BPF_ADJ_ROOM_MAC, 0)
                .is_ok());
    if !grown || finish(&mut p, &t).is_none() {
        counters::bump(Counter::Nat64DropMalformed);
        return TC_ACT_SHOT;
    }
    // CHECKSUM_COMPLETE (an skb from a NIC): skb->csum must sum the bytes
    // now there. The room the helpers made was zeros and the IPv4 header
    // summed to zero, so the new headers' sum goes in, with the rest.
    // (A no-op in any other checksum state.)
    let h = &t.headers;
    let mut sum = sum_words(&h.ip6, t.csum_extra);
    if t.growth != GROWTH {
        sum = sum_words(&h.icmp6, sum);
    }
    if t.growth == GROWTH_ERROR {
        sum = sum_words(&h.quote6, sum);
    }
    // SAFETY: helper on our own skb.
    unsafe { bpf_csum_update(ctx.skb.skb, fold(sum) as u32) };
    if split {
        if split::send(ctx, ip.tot_len - ip.hlen, cfg.inside_mtu).is_none() {
            return counters::drop_tc(Counter::Nat64DropMalformed);
        }
        return TC_ACT_OK;
    }
    match route::redirect(&mut p, &route) {
        Some(v) => {
            counters::bump(Counter::Nat64FastPathIn);
            v as i32
        }
        None => TC_ACT_OK,
    }
}

#[inline(always)]
pub fn process_xdp(ctx: &XdpContext) -> u32 {
    let mut p = XdpPacket::new(ctx);
    let (ip, cfg) = match target(&p) {
        Ok(Some(t)) => t,
        Ok(None) => return xdp_action::XDP_PASS,
        Err(reason) => {
            counters::bump(reason);
            return xdp_action::XDP_DROP;
        }
    };
    let ttl_left = ttl(&p, &ip) > 1;
    if ttl_left && split::wanted(&p, &ip, cfg, false) {
        // XDP sends one packet at most: the TC program behind it splits
        // (the packet as NAT44 left it, marked in the metadata).
        return hand_off(ctx);
    }
    let answer_with = if ttl_left {
        too_big::check(&p, &ip, cfg, false)
    } else {
        too_big::time_exceeded(&p, &ip).map(Some)
    };
    match answer_with {
        Ok(None) => {}
        // XDP_TX needs a device that takes XDP frames back (a veth only if
        // its peer runs XDP: `--xdp-redirect`); elsewhere the packet is
        // dropped unanswered.
        // SAFETY: reading our own context.
        Ok(Some(a))
            if XDP_TARGETS
                .get(unsafe { (*ctx.ctx).ingress_ifindex })
                .is_none() =>
        {
            counters::bump(if a.icmp_type() == 11 {
                Counter::Nat64DropTtlExpired
            } else {
                Counter::Nat64DropTooBig
            });
            return xdp_action::XDP_DROP;
        }
        Ok(Some(a)) => {
            let shrink = (ETH_HLEN + too_big::ANSWER_LEN) as i32 - p.len() as i32;
            // SAFETY: helper on our own frame; the old bounds are not used after.
            if unsafe { bpf_xdp_adjust_tail(ctx.ctx, shrink) } != 0
                || answer(&mut XdpPacket::new(ctx), &a).is_none()
            {
                counters::bump(Counter::Nat64DropMalformed);
                return xdp_action::XDP_DROP;
            }
            counters::bump(sent_counter(&a));
            return xdp_action::XDP_TX;
        }
        Err(reason) => {
            counters::bump(reason);
            return xdp_action::XDP_DROP;
        }
    }
    let mut t = match prepare(&mut p, &ip, cfg, false) {
        Ok(t) => t,
        Err(reason) => {
            counters::bump(reason);
            return xdp_action::XDP_DROP;
        }
    };
    // SAFETY: reading our own context.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    let route = fast_route(ctx, &ip, &mut t, ifindex, false, true);
    let growth = t.growth();
    // SAFETY: helper on our own frame; the old bounds are not used after.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -growth) } != 0 {
        counters::bump(Counter::Nat64DropMalformed);
        return xdp_action::XDP_DROP;
    }
    let mut p = XdpPacket::new(ctx);
    // The Ethernet header moves to the new front.
    let eth: Option<[u8; 14]> = p.load(growth as u32);
    if eth.and_then(|e| p.store(0, &e)).is_none() || finish(&mut p, &t).is_none() {
        counters::bump(Counter::Nat64DropMalformed);
        return xdp_action::XDP_DROP;
    }
    match route::redirect(&mut p, &route) {
        Some(v) => {
            counters::bump(Counter::Nat64FastPathIn);
            v as u32
        }
        None => xdp_action::XDP_PASS,
    }
}

/// The fast path's route for the translated packet (README "Fast path"):
/// a datagram only (fragments and ICMP errors take the stack, as NAT44's
/// fast path leaves them to it); along a route, `t`'s header gets one hop
/// less, as the stack would have taken. `gso`: a TC GSO packet, whose
/// segments the kernel checks against the MTU itself.
#[inline(always)]
fn fast_route<C: EbpfContext>(
    ctx: &C,
    ip: &Ipv4,
    t: &mut Translated,
    ifindex: u32,
    gso: bool,
    xdp: bool,
) -> Route {
    if t.growth != GROWTH {
        return Route::Stack;
    }
    // The IPv6 packet's whole length.
    let mtu_len = if gso { 0 } else { (ip.tot_len + 20) as u16 };
    let route = fastpath::inbound6_route(ctx, ip, &t.headers.ip6, ifindex, mtu_len, xdp);
    if !matches!(route, Route::Stack) {
        fastpath::decrement_hop_limit(&mut t.headers.ip6);
    }
    route
}

/// `acc` plus the sum of `words` (as they lie in memory).
#[inline(always)]
fn sum_words<const N: usize>(words: &[u32; N], acc: u64) -> u64 {
    let mut sum = acc;
    let mut i = 0;
    while i < N {
        sum = add32(sum, words[i]);
        i += 1;
    }
    sum
}

/// The packet's IPv4 header and NAT64's configuration, parsed once for
/// both steps (the too-big check and the translation); `Ok(None)`: not
/// for a stand-in after all (passed); a header whose checksum is wrong:
/// dropped, malformed.
#[inline(always)]
fn target<P: Packet>(p: &P) -> Result<Option<(Ipv4, &'static Nat64Config)>, Counter> {
    let Some(ip) = ipv4::outer_ipv4(p) else {
        return Ok(None);
    };
    if !is_stand_in(ip.dst) {
        return Ok(None);
    }
    let cfg = config().ok_or(Counter::Nat64DropNoHost)?;
    // The header is replaced: one that arrived corrupt (NAT44 keeps a
    // wrong checksum exactly as wrong) must not become a valid IPv6 one.
    // (With options, refused later anyway, only the fixed part is known.)
    if ip.hlen == 20 {
        let h: [u32; 5] = p.load(ip.off).ok_or(Counter::Nat64DropMalformed)?;
        if fold(sum_words(&h, 0)) != 0xffff {
            return Err(Counter::Nat64DropMalformed);
        }
    }
    Ok(Some((ip, cfg)))
}

/// Passes the frame to the stack with [`XDP_HANDOFF_SPLIT`] in its
/// metadata, for `xnat_ingress_handoff_tc`; a driver without XDP metadata
/// cannot: dropped, counted as too big.
#[inline(always)]
fn hand_off(ctx: &XdpContext) -> u32 {
    // SAFETY: helper on our own frame; the bounds are read after it.
    if unsafe { bpf_xdp_adjust_meta(ctx.ctx, -4) } != 0 {
        counters::bump(Counter::Nat64DropTooBig);
        return xdp_action::XDP_DROP;
    }
    // SAFETY: reading our own context; the store is bounds-checked
    // against the frame's start, as the verifier requires.
    unsafe {
        let meta = (*ctx.ctx).data_meta as usize;
        let data = (*ctx.ctx).data as usize;
        if meta + 4 > data {
            counters::bump(Counter::Nat64DropTooBig);
            return xdp_action::XDP_DROP;
        }
        *(meta as *mut u32) = XDP_HANDOFF_SPLIT;
    }
    xdp_action::XDP_PASS
}

/// Whether the XDP program handed this packet over ([`hand_off`]): its
/// metadata holds [`XDP_HANDOFF_SPLIT`].
#[inline(always)]
pub fn handed_off(ctx: &TcContext) -> bool {
    // SAFETY: reading our own skb's metadata, bounds-checked.
    unsafe {
        let meta = (*ctx.skb.skb).data_meta as usize;
        let data = (*ctx.skb.skb).data as usize;
        meta + 4 <= data && *(meta as *const u32) == XDP_HANDOFF_SPLIT
    }
}

/// The packet's TTL as it arrived (0 if it cannot be read: the header
/// parsed, so it can).
#[inline(always)]
fn ttl<P: Packet>(p: &P, ip: &Ipv4) -> u8 {
    p.load::<u8>(ip.off + Ipv4::TTL_OFF).unwrap_or(0)
}

/// What sending the answer `a` counts as.
#[inline(always)]
fn sent_counter(a: &too_big::Answer) -> Counter {
    if a.icmp_type() == 11 {
        Counter::Nat64TimeExceededSent
    } else {
        Counter::Nat64FragNeededSent
    }
}

/// Writes the answer (Fragmentation Needed, Time Exceeded) over the (cut) packet: MACs
/// swapped, then its 56 bytes.
#[inline(always)]
fn answer<P: Packet>(p: &mut P, a: &too_big::Answer) -> Option<()> {
    let [dst, src]: [[u8; 6]; 2] = p.load(0)?;
    p.store(0, &[src, dst])?;
    p.store(ETH_HLEN, &a.ip)?;
    p.store(ETH_HLEN + 20, &a.icmp)?;
    p.store(ETH_HLEN + 28, &a.quote)?;
    p.store(ETH_HLEN + 48, &a.quote_l4)
}

/// Writes the Ethernet type and the new headers into the grown packet.
#[inline(always)]
fn finish<P: Packet>(p: &mut P, t: &Translated) -> Option<()> {
    p.store(ETH_TYPE_OFF, &ETH_P_IPV6_WIRE)?;
    let h = &t.headers;
    p.store(ETH_HLEN, &h.ip6)?;
    if t.growth != GROWTH {
        // The fragment header, or the ICMPv6 header.
        p.store(ETH_HLEN + 40, &h.icmp6)?;
    }
    if t.growth == GROWTH_ERROR {
        // (Counted in icmp_errors_translated by NAT44 already.)
        p.store(ETH_HLEN + 48, &h.quote6)?;
    }
    counters::bump(Counter::Nat64In);
    Some(())
}

/// Everything up to the header's growth: the transport checksum fixed for
/// the IPv6 pseudo-header, the new header built. `split`: the packet will
/// be split into fragments (a fragment header even if it is whole).
#[inline(always)]
fn prepare<P: Packet>(
    p: &mut P,
    ip: &Ipv4,
    cfg: &Nat64Config,
    split: bool,
) -> Result<Translated, Counter> {
    // SAFETY: plain copy out of the map.
    let host = unsafe { NAT64_IDS.get(&ip.dst) }.ok_or(Counter::Nat64DropNoHost)?;
    let dst6 = words_of(&host.addr);
    let v4_src = ip.src.to_ne_bytes();
    if cfg.flags & NAT64_WKP != 0 && is_non_global(v4_src) {
        return Err(Counter::Nat64DropNonGlobal);
    }
    // Options would change the header's growth.
    if ip.hlen != 20 || ip.tot_len <= ip.hlen {
        return Err(Counter::Nat64DropUnsupported);
    }
    let src6 = words_of(&cfg.embed(v4_src));
    let l4 = ip.l4();
    let payload_len = ip.tot_len - ip.hlen;
    let fragment = ip.later_fragment || ip.more_fragments;
    if fragment {
        // ICMP's checksum would need the whole message's length in its new
        // pseudo-header; a UDP datagram without checksum one computed over
        // all of it (RFC 6146 3.4 lets a NAT64 drop those).
        let zero_udp = ip.proto == IPPROTO_UDP
            && !ip.later_fragment
            && p.load::<u16>(l4 + 6).is_none_or(|c| c == 0);
        if ip.proto == IPPROTO_ICMP || zero_udp {
            return Err(Counter::Nat64DropUnsupported);
        }
    }
    if ip.later_fragment {
        // No transport header: the first fragment's checksum covers it.
        if !matches!(ip.proto, IPPROTO_TCP | IPPROTO_UDP) {
            return Err(Counter::Nat64DropUnsupported);
        }
        return finish_header(p, ip, payload_len, &src6, &dst6, true, 0);
    }
    // In-place changes beyond the pseudo-header ones the helpers account
    // for (skb->csum, see `process_tc`).
    let mut extra = 0u64;
    let new = sum6(sum6(0, &src6), &dst6);
    let old = sum4(ip.src, ip.dst);
    match ip.proto {
        IPPROTO_TCP => {
            need(ip, l4, 20)?;
            p.fix_l4_csum_for_addr(l4 + 16, as_field(old), as_field(new), false)
                .ok_or(Counter::Nat64DropMalformed)?;
        }
        IPPROTO_UDP => {
            need(ip, l4, 8)?;
            let check: u16 = p.load(l4 + 6).ok_or(Counter::Nat64DropMalformed)?;
            if check == 0 {
                // IPv6 requires a UDP checksum: computed over the whole
                // datagram, which an unfragmented one is (RFC 6146 3.4).
                if let Some(skb) = p.skb() {
                    // The whole datagram in the linear part, for `udp_sum`.
                    let _ = skb.pull_data(0);
                }
                let sum = udp_sum(p, l4, ip.end).ok_or(Counter::Nat64DropMalformed)?;
                let pseudo = new + add32(add32(0, payload_len.to_be()), 17u32.to_be());
                let c = !fold(sum + pseudo);
                let c = if c == 0 { 0xffff } else { c };
                p.store(l4 + 6, &c).ok_or(Counter::Nat64DropMalformed)?;
                extra = c as u64;
            } else {
                p.fix_l4_csum_for_addr(l4 + 6, as_field(old), as_field(new), true)
                    .ok_or(Counter::Nat64DropMalformed)?;
            }
        }
        IPPROTO_ICMP => {
            need(ip, l4, 8)?;
            let [ty, code]: [u8; 2] = p.load(l4).ok_or(Counter::Nat64DropMalformed)?;
            if icmp_error::is_error(ty) {
                let h = icmp_error::prepare(p, ip, cfg, &src6, &dst6)?;
                let csum_extra = h.csum_extra;
                return Ok(Translated {
                    headers: h,
                    growth: GROWTH_ERROR,
                    csum_extra,
                });
            }
            let new_ty = match ty {
                ICMP_ECHO => ICMPV6_ECHO_REQUEST,
                ICMP_ECHOREPLY => ICMPV6_ECHO_REPLY,
                _ => return Err(Counter::Nat64DropUnsupported),
            };
            let check: u16 = p.load(l4 + 2).ok_or(Counter::Nat64DropMalformed)?;
            let old_word = u16::from_ne_bytes([ty, code]) as u64;
            let new_word = u16::from_ne_bytes([new_ty, code]) as u64;
            let pseudo = new + icmpv6_pseudo_rest(payload_len);
            let fixed = csum_swap(check, old_word, pseudo + new_word);
            p.store(l4, &[new_ty, code])
                .ok_or(Counter::Nat64DropMalformed)?;
            p.store(l4 + 2, &fixed).ok_or(Counter::Nat64DropMalformed)?;
            extra = new_word + fixed as u64 + (!fold(old_word + check as u64)) as u64;
        }
        _ => return Err(Counter::Nat64DropUnsupported),
    }
    finish_header(p, ip, payload_len, &src6, &dst6, fragment || split, extra)
}

/// The IPv6 header (and a fragment's fragment header, RFC 7915 4.1: the
/// identification extended to 32 bits, offset and more-fragments as they
/// were).
#[inline(always)]
fn finish_header<P: Packet>(
    p: &P,
    ip: &Ipv4,
    payload_len: u32,
    src6: &[u32; 4],
    dst6: &[u32; 4],
    fragment: bool,
    csum_extra: u64,
) -> Result<Translated, Counter> {
    let [tos, ttl]: [u8; 2] = [
        p.load(ip.off + 1).ok_or(Counter::Nat64DropMalformed)?,
        p.load(ip.off + Ipv4::TTL_OFF)
            .ok_or(Counter::Nat64DropMalformed)?,
    ];
    if !fragment {
        let h = header::ipv6_header(tos, payload_len, ip.proto, ttl, src6, dst6);
        return Ok(Translated::datagram(h, None, csum_extra));
    }
    let h = header::ipv6_header(tos, payload_len + 8, NEXTHDR_FRAGMENT, ttl, src6, dst6);
    let flags: u16 = p.load(ip.off + 6).ok_or(Counter::Nat64DropMalformed)?;
    let offset = u16::from_be(flags) & 0x1fff;
    let more = u16::from(ip.more_fragments);
    let [o0, o1] = ((offset << 3) | more).to_be_bytes();
    let [i0, i1] = ip.id.to_ne_bytes();
    // (Only a split packet's fragments can be ICMP: ICMPv6 then.)
    let next = if ip.proto == IPPROTO_ICMP {
        58
    } else {
        ip.proto
    };
    let frag = [
        u32::from_ne_bytes([next, 0, o0, o1]),
        u32::from_ne_bytes([0, 0, i0, i1]),
    ];
    Ok(Translated::datagram(h, Some(frag), csum_extra))
}

/// Longest UDP datagram whose checksum is computed (an unfragmented one
/// fits an Ethernet frame).
const UDP_SUM_MAX: u32 = 1600;

/// The one's complement sum of the bytes in `[start, end)` (a UDP
/// datagram whose checksum field is 0), or `None` if longer than
/// [`UDP_SUM_MAX`].
#[inline(always)]
fn udp_sum<P: Packet>(p: &P, start: u32, end: u32) -> Option<u64> {
    if end < start + 8 || end - start > UDP_SUM_MAX {
        return None;
    }
    let mut sum = 0u64;
    let mut off = start;
    let mut i = 0;
    while i < UDP_SUM_MAX / 4 {
        if off + 4 > end {
            break;
        }
        sum = add32(sum, p.load_linear::<u32>(off)?);
        off += 4;
        i += 1;
    }
    // The last 1 to 3 bytes, from the word that ends the datagram (one
    // load at a bound the verifier sees), padded to 16-bit words.
    let [_, b1, b2, b3] = p.load::<u32>(end - 4)?.to_ne_bytes();
    sum += match end - off {
        1 => u16::from_ne_bytes([b3, 0]) as u64,
        2 => u16::from_ne_bytes([b2, b3]) as u64,
        3 => u16::from_ne_bytes([b1, b2]) as u64 + u16::from_ne_bytes([b3, 0]) as u64,
        _ => 0,
    };
    Some(sum)
}

#[inline(always)]
fn need(ip: &Ipv4, off: u32, n: u32) -> Result<(), Counter> {
    if ip.has(off, n) {
        Ok(())
    } else {
        Err(Counter::Nat64DropMalformed)
    }
}
