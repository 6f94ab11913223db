//! The fast path (`--fast-path`): established flows are forwarded entirely
//! in BPF, translate → FIB lookup → redirect, skipping the kernel's
//! routing and forwarding. Anything it cannot handle — a new flow, an
//! unresolved neighbour in XDP, TTL ≤ 1, a packet for the gateway itself,
//! one that needs fragmenting — takes the normal path, which stays correct.
use aya_ebpf::{
    EbpfContext,
    bindings::{TC_ACT_OK, TC_ACT_SHOT, xdp_action},
    programs::{TcContext, XdpContext},
};
use nat_common::{Counter, nat64::is_stand_in};

use crate::{
    counters,
    forward::{
        hairpin,
        route::{self, Route},
    },
    maps::XDP_TARGETS,
    napt,
    packet::{Packet, TcPacket, XdpPacket},
    parse::ipv4::{self, Ipv4},
    translate::static_nat,
    verdict::{Direction, Verdict},
};

/// XDP ingress on the external interface, after `pipeline::process` translated
/// the packet: forward it to the inside host directly when the neighbour
/// is resolved, otherwise hand the (translated) packet to the stack.
#[inline(always)]
pub fn inbound_xdp(ctx: &XdpContext) -> u32 {
    let mut p = XdpPacket::new(ctx);
    let Some(ip) = ipv4::outer_ipv4(&p) else {
        return xdp_action::XDP_PASS;
    };
    if !matches!(route::ttl(&p, &ip), Some(t) if t > 1) {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: reading the program's own context.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    let route = route::lookup_packet(ctx, &p, &ip, ifindex, ip.tot_len as u16);
    // Only to devices known to take XDP frames: a redirect into a bridge,
    // or a veth whose peer has no XDP program, would be dropped silently.
    match route {
        Route::Resolved { ifindex, .. } if XDP_TARGETS.get(ifindex).is_some() => {}
        _ => return xdp_action::XDP_PASS,
    }
    match route::send(&mut p, &ip, &route) {
        Some(v) => {
            counters::bump(Counter::FastPathInbound);
            v as u32
        }
        None => xdp_action::XDP_PASS,
    }
}

/// TC ingress on the external interface, after translation.
#[inline(always)]
pub fn inbound_tc(ctx: &TcContext) -> i32 {
    let mut p = TcPacket { ctx };
    let Some(ip) = ipv4::outer_ipv4(&p) else {
        return TC_ACT_OK;
    };
    if !matches!(route::ttl(&p, &ip), Some(t) if t > 1) {
        return TC_ACT_OK;
    }
    // SAFETY: reading the program's own context.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let route = route::lookup_packet(ctx, &p, &ip, ifindex, mtu_len(ctx, &ip));
    match route::send(&mut p, &ip, &route) {
        Some(v) => {
            counters::bump(Counter::FastPathInbound);
            v as i32
        }
        None => TC_ACT_OK,
    }
}

/// NAT64's inbound fast path (`nat64::inbound`, which calls it once the
/// packet `ip` is known to become the IPv6 packet `ip6`, before it grows):
/// the route of that IPv6 packet as the stack would forward it, or
/// `Stack` — the fast path off, hop limit ≤ 1, no route, too big for it
/// (`mtu_len`, its IPv6 length; 0 for a TC GSO packet), and from XDP an
/// unresolved neighbour or a device not in `XDP_TARGETS`. The caller
/// writes the header with one hop less along any other route.
#[inline(always)]
pub fn inbound6_route<C: EbpfContext>(
    ctx: &C,
    ip: &Ipv4,
    ip6: &[u32; 10],
    ifindex: u32,
    mtu_len: u16,
    xdp: bool,
) -> Route {
    let [_, _, next, hop_limit] = ip6[1].to_ne_bytes();
    if hop_limit <= 1 || !route::fast_path_enabled() {
        return Route::Stack;
    }
    let (src6, dst6) = (
        [ip6[2], ip6[3], ip6[4], ip6[5]],
        [ip6[6], ip6[7], ip6[8], ip6[9]],
    );
    let route = route::lookup6(ctx, next, ifindex, &src6, &dst6, (ip.src, ip.dst), mtu_len);
    match route {
        Route::Resolved { ifindex, .. } if xdp && XDP_TARGETS.get(ifindex).is_none() => {
            Route::Stack
        }
        Route::NoNeigh { .. } if xdp => Route::Stack,
        r => r,
    }
}

/// One hop less in an IPv6 header about to be written (the forwarding's
/// hop: IPv6 has no header checksum to follow).
#[inline(always)]
pub fn decrement_hop_limit(ip6: &mut [u32; 10]) {
    let [a, b, next, hop_limit] = ip6[1].to_ne_bytes();
    ip6[1] = u32::from_ne_bytes([a, b, next, hop_limit.wrapping_sub(1)]);
}

/// The length the FIB checks against the route's MTU: the packet's own,
/// except for GSO super-packets (0 lets the kernel check the skb, which
/// knows they are segmented on the way out).
#[inline(always)]
fn mtu_len(ctx: &TcContext, ip: &Ipv4) -> u16 {
    // SAFETY: reading the program's own context.
    let gso = unsafe { (*ctx.skb.skb).gso_size };
    if gso == 0 { ip.tot_len as u16 } else { 0 }
}

/// What makes an outbound packet one of an established flow.
pub enum Flow {
    /// A static 1:1 mapping of its source, to this public address.
    Static(u32),
    /// A NAPT mapping with a session to this remote endpoint.
    Napt(napt::outbound::Established),
}

impl Flow {
    /// The packet moved `by` bytes towards the front since [`established`]
    /// looked at it (NAT64: 20 bytes of IPv6 header less): the offsets the
    /// flow holds follow.
    #[inline(always)]
    pub fn moved(&mut self, by: u32) {
        if let Flow::Napt(e) = self {
            e.moved(by);
        }
    }
}

/// The established flow of the (untranslated) packet `ip`, if any.
#[inline(always)]
pub fn established<P: Packet>(p: &P, ip: &Ipv4) -> Option<Flow> {
    if let Some(public) = static_nat::lookup_out(ip.src) {
        return Some(Flow::Static(public));
    }
    napt::outbound::established(p, ip).map(Flow::Napt)
}

/// Whether the fast path may send along `route`: out of the external
/// interface only (inside-to-inside traffic is routed untouched), and an
/// XDP frame (`xdp`) only to a resolved next hop on a device that takes
/// XDP redirects.
#[inline(always)]
pub fn sendable(route: &Route, xdp: bool) -> bool {
    let ext = route::external_ifindex();
    ext != 0
        && match *route {
            Route::Resolved { ifindex, .. } => {
                ifindex == ext && (!xdp || XDP_TARGETS.get(ext).is_some())
            }
            // Only TC can have the kernel resolve the neighbour.
            Route::NoNeigh { ifindex } => !xdp && ifindex == ext,
            Route::Stack => false,
        }
}

/// What the outbound fast path did with a packet.
pub enum Outbound {
    /// Not ours to forward: the hook passes it on, untouched.
    Pass,
    /// Translated but unsendable, or malformed: drop.
    Drop,
    /// Translated and redirected: the helper's verdict.
    Sent(i64),
}

/// Translates the packet `ip` of the established `flow` and sends it
/// along `route` (checked [`sendable`]), counted in `counter`.
#[inline(always)]
pub fn translate_and_send<P: Packet>(
    p: &mut P,
    ip: &Ipv4,
    flow: &Flow,
    route: &Route,
    counter: Counter,
) -> Outbound {
    let verdict = match flow {
        // Static 1:1 NAT alone, as the pipeline does it for this source:
        // the whole pipeline behind the route lookups (NAPT with block
        // allocation's probing loops too) is more than the verifier's
        // 1M-instruction budget for `xnat_inside_xdp` (kernel 6.18).
        Flow::Static(public) => static_nat::translate(p, ip, Direction::Egress, *public),
        // The mapping and session found above, not looked up again.
        Flow::Napt(e) => napt::outbound::egress_established(p, ip, e),
    };
    match verdict {
        Verdict::Translated => {}
        Verdict::Drop => return Outbound::Drop,
        Verdict::Pass => return Outbound::Pass,
    }
    let Some(ip) = ipv4::outer_ipv4(p) else {
        return Outbound::Drop;
    };
    match route::send(p, &ip, route) {
        Some(v) => {
            counters::bump(counter);
            Outbound::Sent(v)
        }
        // Translated but not sendable: dropping is the only safe choice.
        None => Outbound::Drop,
    }
}

/// The outbound fast path, shared by the TC and XDP inside programs: an
/// established flow's packet is translated and sent straight out of the
/// external interface. `xdp`: the packet is an XDP frame.
#[inline(always)]
fn outbound<C: EbpfContext, P: Packet>(
    ctx: &C,
    p: &mut P,
    ip: &Ipv4,
    ifindex: u32,
    mtu_len: u16,
    xdp: bool,
) -> Outbound {
    if !matches!(route::ttl(p, ip), Some(t) if t > 1) {
        return Outbound::Pass;
    }
    let Some(flow) = established(p, ip) else {
        return Outbound::Pass;
    };
    // Route first, with the inside addresses: if the FIB cannot forward it
    // here, the stack takes the packet untranslated, as without the fast
    // path (a translated packet would be a martian on this interface).
    let route = route::lookup(ctx, ip, ifindex, ip.src, ip.dst, mtu_len);
    if !sendable(&route, xdp) {
        return Outbound::Pass;
    }
    if is_stand_in(ip.src) {
        // Only NAT64 sends from a stand-in (as the pipeline's egress
        // says): an inside host must not borrow an IPv6 host's binding.
        counters::bump(Counter::EgressDroppedMalformed);
        return Outbound::Drop;
    }
    translate_and_send(p, ip, &flow, &route, Counter::FastPathOutbound)
}

/// TC ingress on an inside interface, for packets that are not
/// hairpinned.
#[inline(always)]
pub fn outbound_tc(ctx: &TcContext, ip: &Ipv4) -> i32 {
    let mut p = TcPacket { ctx };
    // SAFETY: reading the program's own context.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    match outbound(ctx, &mut p, ip, ifindex, mtu_len(ctx, ip), false) {
        Outbound::Pass => TC_ACT_OK,
        Outbound::Drop => TC_ACT_SHOT,
        Outbound::Sent(v) => {
            mark_translated(ctx);
            v as i32
        }
    }
}

/// XDP on an inside interface whose packets come off a wire
/// (`--inside-hook`): the outbound fast path before the kernel even
/// builds an skb. Everything else passes to the inside interface's TC
/// program and the stack: hairpinned packets (whose translation may need
/// `bpf_redirect_neigh`), fragments, and flows the XDP redirect cannot
/// take.
#[inline(always)]
pub fn outbound_xdp(ctx: &XdpContext) -> u32 {
    let mut p = XdpPacket::new(ctx);
    let Some(ip) = ipv4::outer_ipv4(&p) else {
        return xdp_action::XDP_PASS;
    };
    if ip.later_fragment || ip.more_fragments || hairpin::targets_us(&p, &ip) {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: reading the program's own context.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    match outbound(ctx, &mut p, &ip, ifindex, ip.tot_len as u16, true) {
        Outbound::Pass => xdp_action::XDP_PASS,
        Outbound::Drop => xdp_action::XDP_DROP,
        Outbound::Sent(v) => v as u32,
    }
}

/// Marks a packet the outbound fast path translated and redirected to the
/// external interface, whose egress program would otherwise parse it and
/// look it up again only to pass it (its source is public now): a
/// quarter of the fast path's cost. The mark lives in the skb's control
/// block (`__sk_buff.cb`), which the redirect carries to the egress hook
/// and the IP stack overwrites for anything it handles itself. Losing it
/// only costs that second look; a false match would need a 64-bit value
/// the kernel has no reason to write.
const MARK: [u32; 2] = [0x786e_6174, 0xfa57_0a7e];

#[inline(always)]
pub fn mark_translated(ctx: &TcContext) {
    // SAFETY: TC programs may write their skb's cb words.
    unsafe {
        (*ctx.skb.skb).cb[0] = MARK[0];
        (*ctx.skb.skb).cb[1] = MARK[1];
    }
}

/// Whether the outbound fast path already translated this packet.
#[inline(always)]
pub fn translated_here(ctx: &TcContext) -> bool {
    // SAFETY: TC programs may read their skb's cb words.
    unsafe { (*ctx.skb.skb).cb[0] == MARK[0] && (*ctx.skb.skb).cb[1] == MARK[1] }
}
