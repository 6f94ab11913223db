//! Out-of-order fragments (RFC 4787 REQ-14): a later fragment that arrives
//! before its first fragment cannot be translated yet. On TC (where an skb
//! can be cloned) it is copied into a bounded LRU map and dropped; when the
//! first fragment comes, it is sent, then every held fragment of the same
//! datagram is rebuilt in the same skb, translated and sent, in order.
//! XDP cannot clone packets, so there unknown fragments are not held.
//!
//! Through NAT64 the released fragments cannot simply be sent on: the
//! program is not where they leave (outbound it runs on the inside
//! interface before the route is known; inbound each must still become
//! IPv6). They are re-injected where the first fragment came in, marked
//! ([`RELEASED_MARK`] in skb->mark, which nothing on a wire can set), and
//! the program there sends them on: outbound by the FIB, inbound to the
//! IPv4 -> IPv6 program ([`take_released`]).
//!
//! Memory is bounded by FRAG_HOLD_MAX entries per direction (LRU eviction
//! under a flood, within the flood's own direction)
//! and a held fragment older than FRAG_TIMEOUT_NS is never released.
use aya_ebpf::{
    bindings::{BPF_F_INGRESS, BPF_F_RECOMPUTE_CSUM},
    helpers::generated::{
        bpf_clone_redirect, bpf_skb_change_tail, bpf_skb_load_bytes, bpf_skb_store_bytes,
    },
    maps::LruHashMap,
    programs::TcContext,
};
use nat_common::{
    Counter, FRAG_HOLD_BYTES, FRAG_HOLD_SLOTS, FRAG_TIMEOUT_NS, FragKey, HeldFragment, HoldKey,
};

use crate::{
    clock, counters,
    maps::{FRAG_HOLD_IN, FRAG_HOLD_OUT, FRAG_SCRATCH},
    packet::TcPacket,
    parse::ipv4::{self, ETH_HLEN, Ipv4},
    rewrite::outer,
    verdict::Direction,
};

const BPF_NOEXIST: u64 = 1;

/// skb->mark of a fragment released for NAT64 and re-injected (any value
/// the stack itself would not set; cleared again when taken).
pub const RELEASED_MARK: u32 = 0x786e_3634;

/// Whether this packet is a fragment [`release`] re-injected for NAT64
/// (and if so, clears the mark): one read of skb->mark.
#[inline(always)]
pub fn take_released(ctx: &TcContext) -> bool {
    // SAFETY: TC programs may read and write their skb's mark.
    unsafe {
        if (*ctx.skb.skb).mark != RELEASED_MARK {
            return false;
        }
        (*ctx.skb.skb).mark = 0;
    }
    true
}

/// The hold table of fragments going this way (one per direction, so the
/// outside's stray fragments never evict the inside's).
#[inline(always)]
fn holds(inbound: bool) -> &'static LruHashMap<HoldKey, HeldFragment> {
    if inbound {
        &FRAG_HOLD_IN
    } else {
        &FRAG_HOLD_OUT
    }
}

/// Holds the later fragment in `ctx`; false if it cannot be held (too big,
/// all slots of its datagram in use).
#[inline(always)]
pub fn hold(ctx: &TcContext, ip: &Ipv4, key: &FragKey) -> bool {
    let len = ip.end - ip.off;
    if len as usize > FRAG_HOLD_BYTES || len < 20 {
        return false;
    }
    let Some(scratch) = FRAG_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU scratch value; the helper writes `len` (bounded by
    // the value's size) bytes into it.
    unsafe {
        // The verifier must see the bound on the very register passed to
        // the helper; a volatile read keeps the compiler from folding the
        // mask and check into the earlier test.
        let bounded = core::ptr::read_volatile(&len) & 0x7ff;
        if bounded as usize > FRAG_HOLD_BYTES || bounded < 20 {
            return false;
        }
        if bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            ip.off,
            (*scratch).data.as_mut_ptr().cast(),
            bounded,
        ) != 0
        {
            return false;
        }
        (*scratch).len = bounded;
        (*scratch).seen = clock::now();
    }
    let mut slot = 0;
    while slot < FRAG_HOLD_SLOTS {
        let k = HoldKey { frag: *key, slot };
        // SAFETY: inserting from the scratch map value. By reference: a
        // copy of the 1.5 KB value would not fit the 512-byte BPF stack.
        #[allow(clippy::needless_borrows_for_generic_args)]
        let inserted = holds(key.inbound != 0).insert(k, unsafe { &*scratch }, BPF_NOEXIST);
        if inserted.is_ok() {
            counters::bump(Counter::FragmentsHeld);
            return true;
        }
        slot += 1;
    }
    false
}

/// The first fragment of datagram `key` has just been translated (its
/// later fragments' translated address becomes `new_addr`): sends it,
/// then each held fragment, translated; the skb ends up holding the last
/// one, which the caller passes on like the first. With `nat64` they are
/// re-injected, marked, where the skb came in (see the module's comment).
#[inline(always)]
pub fn release(ctx: &TcContext, key: &FragKey, inbound: bool, new_addr: u32, nat64: bool) {
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let flags = if inbound || nat64 {
        BPF_F_INGRESS as u64
    } else {
        0
    };
    let now = clock::now();
    let mut slot = 0;
    while slot < FRAG_HOLD_SLOTS {
        let k = HoldKey { frag: *key, slot };
        slot += 1;
        let Some(held) = holds(inbound).get_ptr(k) else {
            continue;
        };
        // SAFETY: map value pointer; fields copied or passed to helpers
        // with bounded lengths.
        unsafe {
            let len = core::ptr::read_volatile(&(*held).len) & 0x7ff;
            let fresh = now.saturating_sub((*held).seen) <= FRAG_TIMEOUT_NS;
            if fresh && len >= 20 && len as usize <= FRAG_HOLD_BYTES {
                // Send what the skb holds now (the first fragment, or the
                // previous held one), then turn the skb into this one.
                if nat64 {
                    // The clone takes the mark; the skb goes on without.
                    let mark = (*ctx.skb.skb).mark;
                    (*ctx.skb.skb).mark = RELEASED_MARK;
                    bpf_clone_redirect(ctx.skb.skb, ifindex, flags);
                    (*ctx.skb.skb).mark = mark;
                } else {
                    bpf_clone_redirect(ctx.skb.skb, ifindex, flags);
                }
                if bpf_skb_change_tail(ctx.skb.skb, ETH_HLEN + len, 0) == 0
                    // BPF_F_RECOMPUTE_CSUM: with CHECKSUM_COMPLETE,
                    // skb->csum must sum the held fragment's bytes now,
                    // not the first fragment's (change_tail kept it right
                    // for the new length).
                    && bpf_skb_store_bytes(
                        ctx.skb.skb.cast(),
                        ETH_HLEN,
                        (*held).data.as_ptr().cast(),
                        len,
                        BPF_F_RECOMPUTE_CSUM as u64,
                    ) == 0
                {
                    rewrite_held(ctx, inbound, new_addr);
                    counters::bump(Counter::FragmentsReleased);
                }
            }
        }
        let _ = holds(inbound).remove(k);
    }
}

/// Applies the datagram's address translation to the fragment now in the
/// skb.
#[inline(always)]
fn rewrite_held(ctx: &TcContext, inbound: bool, new_addr: u32) {
    let mut p = TcPacket { ctx };
    let Some(ip) = ipv4::ipv4_at(&p, ETH_HLEN, ETH_HLEN + FRAG_HOLD_BYTES as u32) else {
        return;
    };
    let dir = if inbound {
        Direction::Ingress
    } else {
        Direction::Egress
    };
    let _ = outer::addr(&mut p, &ip, dir, new_addr);
}
