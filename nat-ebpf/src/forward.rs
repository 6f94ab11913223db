//! Forwarding a translated packet ourselves: decrement the TTL like a
//! router, look the destination up in the kernel's FIB and redirect to the
//! egress device, with the neighbour resolved by the kernel when needed.
//!
//! Hairpinned packets need this: after translation their source is one of
//! the gateway's own (public) addresses, which the stack would reject as a
//! martian if they went up through routing on the inside interface.
use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS, TC_ACT_SHOT, bpf_fib_lookup},
    helpers::generated::{bpf_fib_lookup as fib_lookup, bpf_redirect, bpf_redirect_neigh},
    programs::TcContext,
};
use nat_common::csum;

use crate::{
    packet::{Packet, TcPacket},
    parse::Ipv4,
};

const AF_INET: u8 = 2;
const TTL_OFF: u32 = 8;

/// The TTL of the packet's IPv4 header.
#[inline(always)]
pub fn ttl<P: Packet>(p: &P, ip: &Ipv4) -> Option<u8> {
    p.load(ip.off + TTL_OFF)
}

/// Decrements the TTL (the caller checked it is > 1) and fixes the header
/// checksum.
#[inline(always)]
fn decrement_ttl<P: Packet>(p: &mut P, ip: &Ipv4) -> Option<()> {
    let word: u16 = p.load(ip.off + TTL_OFF)?; // TTL and protocol
    let mut bytes = word.to_ne_bytes();
    bytes[0] = bytes[0].wrapping_sub(1);
    let new = u16::from_ne_bytes(bytes);
    let check: u16 = p.load(ip.off + Ipv4::CHECK_OFF)?;
    p.store(ip.off + TTL_OFF, &new)?;
    p.store(ip.off + Ipv4::CHECK_OFF, &csum::replace2(check, word, new))
}

/// Routes the packet (already translated) out of the device the FIB
/// picks. Returns the TC verdict.
#[inline(always)]
pub fn redirect(ctx: &TcContext, ip: &Ipv4) -> i32 {
    let mut p = TcPacket { ctx };
    if decrement_ttl(&mut p, ip).is_none() {
        return TC_ACT_SHOT as i32;
    }
    let Some(src) = p.load::<u32>(ip.off + Ipv4::SRC_OFF) else {
        return TC_ACT_SHOT as i32;
    };
    let Some(dst) = p.load::<u32>(ip.off + Ipv4::DST_OFF) else {
        return TC_ACT_SHOT as i32;
    };
    // SAFETY: zeroed plain-data struct.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    params.family = AF_INET;
    params.l4_protocol = ip.proto;
    params.__bindgen_anon_1.tot_len = ip.tot_len as u16;
    // SAFETY: reading the skb's ifindex from the program's own context.
    params.ifindex = unsafe { (*ctx.skb.skb).ifindex };
    params.__bindgen_anon_3.ipv4_src = src;
    params.__bindgen_anon_4.ipv4_dst = dst;
    // SAFETY: helper call with a stack struct of the size we pass.
    let rc = unsafe {
        fib_lookup(
            ctx.as_ptr(),
            &mut params,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    match rc as u32 {
        BPF_FIB_LKUP_RET_SUCCESS => {
            if p.store(0, &params.dmac).is_none() || p.store(6, &params.smac).is_none() {
                return TC_ACT_SHOT as i32;
            }
            // SAFETY: helper call.
            unsafe { bpf_redirect(params.ifindex, 0) as i32 }
        }
        // The kernel resolves the neighbour and fills in the MACs.
        // SAFETY: helper call without neighbour parameters.
        BPF_FIB_LKUP_RET_NO_NEIGH => unsafe {
            bpf_redirect_neigh(params.ifindex, core::ptr::null_mut(), 0, 0) as i32
        },
        _ => TC_ACT_SHOT as i32,
    }
}
