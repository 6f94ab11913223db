//! Program entry points: wrap the context, run the core, map the verdict to
//! the hook's return code.
//!
//! Each is `#[inline(always)]`: aya's macros wrap the function in the
//! section's entry point, and without it the body stays a BPF-to-BPF call
//! of its own on every packet (a JIT prologue and epilogue; ~2 % of an
//! established translation, measured with `xnat-bench --established-only`).
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, xdp_action},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use nat_common::{
    Counter,
    nat64::is_stand_in,
    trace::{TRACE_EGRESS_TC, TRACE_INGRESS_TC, TRACE_INGRESS_XDP},
};

use crate::{
    counters,
    forward::{
        fastpath,
        hairpin::{self, Hairpin},
        route,
    },
    frag, nat64,
    packet::{Packet, TcPacket, XdpPacket},
    parse::ipv4,
    trace,
    translate::pipeline,
    verdict::{Direction, Verdict},
};

#[xdp]
#[inline(always)]
pub fn xnat_ingress_xdp(ctx: XdpContext) -> u32 {
    let mut p = XdpPacket::new(&ctx);
    match traced(&mut p, Direction::Ingress, TRACE_INGRESS_XDP) {
        Verdict::Pass => xdp_action::XDP_PASS,
        Verdict::Drop => xdp_action::XDP_DROP,
        Verdict::Translated if nat64::for_stand_in(&p) => {
            nat64::tail_call_in_xdp(&ctx);
            counters::drop(Counter::Nat64DropNoHost);
            xdp_action::XDP_DROP
        }
        Verdict::Translated if route::fast_path_enabled() => fastpath::inbound_xdp(&ctx),
        Verdict::Translated => xdp_action::XDP_PASS,
    }
}

/// NAT64, IPv4 -> IPv6: tail-called by `xnat_ingress_xdp` for a packet
/// NAT44 translated to a stand-in.
#[xdp]
#[inline(always)]
pub fn xnat_nat64_in_xdp(ctx: XdpContext) -> u32 {
    nat64::inbound::process_xdp(&ctx)
}

/// The same, tail-called by `xnat_ingress_tc`.
#[classifier]
#[inline(always)]
pub fn xnat_nat64_in_tc(ctx: TcContext) -> i32 {
    nat64::inbound::process_tc(&ctx)
}

/// NAT64, IPv6 -> IPv4 for established flows in XDP: tail-called by
/// `xnat_inside_xdp` for IPv6 frames.
#[xdp]
#[inline(always)]
pub fn xnat_nat64_out_xdp(ctx: XdpContext) -> u32 {
    nat64::outbound_xdp::process(&ctx)
}

/// NAT64, IPv6 -> IPv4: tail-called by `xnat_inside_tc` for IPv6 frames.
#[classifier]
#[inline(always)]
pub fn xnat_nat64_out_tc(ctx: TcContext) -> i32 {
    nat64::outbound::process(&ctx)
}

/// Its ICMPv6 errors, tail-called by `xnat_nat64_out_tc`.
#[classifier]
#[inline(always)]
pub fn xnat_nat64_out_error_tc(ctx: TcContext) -> i32 {
    nat64::outbound::process_error(&ctx)
}

/// NAT64 hairpinning's inbound step, tail-called by its NAT44 step.
#[classifier]
#[inline(always)]
pub fn xnat_nat64_hairpin_tc(ctx: TcContext) -> i32 {
    nat64::outbound::hairpin_in(&ctx)
}

/// Its NAT44 step, tail-called by `xnat_nat64_out_tc`.
#[classifier]
#[inline(always)]
pub fn xnat_nat64_out_nat44_tc(ctx: TcContext) -> i32 {
    nat64::outbound::nat44(&ctx)
}

/// The expiry walk over the mappings (expire.rs): never attached, run by
/// the agent with BPF_PROG_TEST_RUN. Declared as a classifier only so that
/// aya's object parser takes it (it knows no `syscall` section): the agent
/// loads it as a syscall program (nat-userspace loader/syscall_prog.rs), so
/// it never reads its context and its return value means nothing.
#[classifier]
pub fn xnat_expire(_ctx: TcContext) -> i32 {
    crate::expire::run();
    TC_ACT_OK
}

/// Passes everything: the baseline of `cargo xtask bench`, and what a veth
/// peer needs attached to receive frames the XDP fast path redirects.
#[xdp]
#[inline(always)]
pub fn xnat_noop_xdp(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[classifier]
#[inline(always)]
pub fn xnat_ingress_tc(ctx: TcContext) -> i32 {
    if frag::hold::take_released(&ctx) {
        // A held fragment of a datagram to an IPv6 host, released when its
        // first fragment came (already translated to the stand-in).
        nat64::tail_call_in_tc(&ctx);
        counters::drop(Counter::Nat64DropNoHost);
        return TC_ACT_SHOT;
    }
    let mut p = TcPacket { ctx: &ctx };
    match traced(&mut p, Direction::Ingress, TRACE_INGRESS_TC) {
        Verdict::Translated if nat64::for_stand_in(&p) => {
            nat64::tail_call_in_tc(&ctx);
            counters::drop(Counter::Nat64DropNoHost);
            TC_ACT_SHOT
        }
        Verdict::Translated if route::fast_path_enabled() => fastpath::inbound_tc(&ctx),
        v => tc_verdict(v),
    }
}

/// TC ingress behind `xnat_ingress_xdp` (XDP mode, with NAT64): a packet
/// the XDP program handed over in its metadata goes to the IPv4 -> IPv6
/// program, which splits it into IPv6 fragments; anything else passes.
#[classifier]
#[inline(always)]
pub fn xnat_ingress_handoff_tc(ctx: TcContext) -> i32 {
    if !nat64::inbound::handed_off(&ctx) {
        return TC_ACT_OK;
    }
    nat64::tail_call_in_tc(&ctx);
    counters::drop(Counter::Nat64DropNoHost);
    TC_ACT_SHOT
}

#[classifier]
#[inline(always)]
pub fn xnat_egress_tc(ctx: TcContext) -> i32 {
    if fastpath::translated_here(&ctx) {
        return TC_ACT_OK;
    }
    tc_verdict(traced(
        &mut TcPacket { ctx: &ctx },
        Direction::Egress,
        TRACE_EGRESS_TC,
    ))
}

/// TC ingress on inside interfaces: hairpinning, and the outbound fast
/// path.
#[classifier]
#[inline(always)]
pub fn xnat_inside_tc(ctx: TcContext) -> i32 {
    let mut p = TcPacket { ctx: &ctx };
    if nat64::is_ipv6(&p) {
        // Returns only when NAT64 is off: IPv6 is not ours then.
        nat64::tail_call_out(&ctx);
        return TC_ACT_OK;
    }
    let h = if frag::hold::take_released(&ctx) {
        // A held fragment from an IPv6 host, released (translated) when
        // its first fragment came: sent on by the FIB.
        match ipv4::outer_ipv4(&p) {
            Some(ip) => Hairpin::Forward(ip),
            None => Hairpin::Drop,
        }
    } else {
        hairpin::process(&mut p)
    };
    match h {
        Hairpin::NotOurs(Some(ip)) if route::fast_path_enabled() => {
            fastpath::outbound_tc(&ctx, &ip)
        }
        Hairpin::NotOurs(_) => TC_ACT_OK,
        Hairpin::Drop => TC_ACT_SHOT,
        Hairpin::Forward(ip) if is_stand_in(ip.dst) => {
            // From an IPv4 host to an IPv6 host's public endpoint (RFC 6146
            // 3.8): on as IPv6 through the IPv4 -> IPv6 program, marked as
            // not from outside (the stack answers a packet too big for
            // the IPv6 host's link, not xnat).
            fastpath::mark_translated(&ctx);
            nat64::tail_call_in_tc(&ctx);
            counters::drop(Counter::Nat64DropNoHost);
            TC_ACT_SHOT
        }
        Hairpin::Forward(ip) => {
            // SAFETY: reading the program's own context.
            let ifindex = unsafe { (*ctx.skb.skb).ifindex };
            let route = route::lookup_packet(&ctx, &p, &ip, ifindex, 0);
            // A translated hairpin packet cannot go to the stack (its
            // source is one of our own addresses): forward it or drop it.
            match route::send(&mut p, &ip, &route) {
                Some(v) => v as i32,
                None => TC_ACT_SHOT,
            }
        }
    }
}

/// XDP on inside interfaces whose packets come off a wire
/// (`--inside-hook`, with `--fast-path`): the outbound fast path only,
/// NAT64's in a program of its own; everything else passes to
/// `xnat_inside_tc` and the stack.
#[xdp]
#[inline(always)]
pub fn xnat_inside_xdp(ctx: XdpContext) -> u32 {
    if !route::fast_path_enabled() {
        return xdp_action::XDP_PASS;
    }
    if nat64::is_ipv6(&XdpPacket::new(&ctx)) {
        // Returns only when NAT64 is off: TC passes IPv6 on then.
        nat64::tail_call_out_xdp(&ctx);
        return xdp_action::XDP_PASS;
    }
    fastpath::outbound_xdp(&ctx)
}

/// The translation core, reported to `xnat trace` while one runs.
#[inline(always)]
fn traced<P: Packet>(p: &mut P, dir: Direction, program: u8) -> Verdict {
    let armed = trace::arm(p);
    let v = pipeline::process(p, dir);
    if let Some(a) = &armed {
        trace::report(p, a, program, v);
    }
    v
}

#[inline(always)]
fn tc_verdict(v: Verdict) -> i32 {
    match v {
        Verdict::Pass | Verdict::Translated => TC_ACT_OK,
        Verdict::Drop => TC_ACT_SHOT,
    }
}
