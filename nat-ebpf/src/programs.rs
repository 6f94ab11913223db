//! Program entry points: wrap the context, run the core, map the verdict to
//! the hook's return code.
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, xdp_action},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

use crate::{
    forward,
    hairpin::{self, Hairpin},
    nat::{self, Direction, Verdict},
    packet::{TcPacket, XdpPacket},
};

#[xdp]
pub fn xnat_ingress_xdp(ctx: XdpContext) -> u32 {
    match nat::process(&mut XdpPacket { ctx: &ctx }, Direction::Ingress) {
        Verdict::Pass => xdp_action::XDP_PASS,
        Verdict::Drop => xdp_action::XDP_DROP,
    }
}

/// Passes everything: the baseline of `cargo xtask bench`, and what a veth
/// peer needs attached to receive frames the XDP fast path redirects.
#[xdp]
pub fn xnat_noop_xdp(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[classifier]
pub fn xnat_ingress_tc(ctx: TcContext) -> i32 {
    tc_verdict(nat::process(
        &mut TcPacket { ctx: &ctx },
        Direction::Ingress,
    ))
}

#[classifier]
pub fn xnat_egress_tc(ctx: TcContext) -> i32 {
    tc_verdict(nat::process(&mut TcPacket { ctx: &ctx }, Direction::Egress))
}

/// TC ingress on inside interfaces: hairpinning.
#[classifier]
pub fn xnat_inside_tc(ctx: TcContext) -> i32 {
    match hairpin::process(&mut TcPacket { ctx: &ctx }) {
        Hairpin::NotOurs => TC_ACT_OK as i32,
        Hairpin::Drop => TC_ACT_SHOT as i32,
        Hairpin::Forward(ip) => forward::redirect(&ctx, &ip),
    }
}

#[inline(always)]
fn tc_verdict(v: Verdict) -> i32 {
    match v {
        Verdict::Pass => TC_ACT_OK,
        Verdict::Drop => TC_ACT_SHOT,
    }
}
