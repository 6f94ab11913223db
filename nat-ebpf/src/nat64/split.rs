//! IPv4 packets without DF too big for the inside link once translated
//! (TC only): RFC 7915 4.1 has the translator split them into IPv6
//! fragments that fit. The packet is translated as a fragment first (a
//! fragment header with the IPv4 identification; an unfragmented
//! datagram's transport checksum translated as usual, since it covers the
//! whole datagram), then split in place: the payload past the first piece
//! is copied into a per-CPU scratch value, the skb is cut to the first
//! piece and a clone of it re-enters the external interface's ingress as
//! IPv6 (which the ingress program passes untouched, like any IPv6
//! packet); then the skb is rewritten into each next piece from the
//! scratch, and the last one goes on like any translated packet. Every
//! piece keeps the packet's offset plus its position (the original
//! fragment's offset for an IPv4 fragment), and all but the last carry M
//! (the last the original's M); all but the last are multiples of 8 bytes.
//!
//! XDP cannot send several packets: there such packets stay dropped
//! (`nat64_drop_too_big`).
use aya_ebpf::{
    bindings::{BPF_F_INGRESS, BPF_F_RECOMPUTE_CSUM},
    helpers::generated::{
        bpf_clone_redirect, bpf_csum_update, bpf_l4_csum_replace, bpf_skb_change_tail,
        bpf_skb_load_bytes, bpf_skb_store_bytes,
    },
    programs::TcContext,
};
use nat_common::{
    Counter,
    nat64::{NAT64_SPLIT_MAX, NAT64_SPLIT_MIN_MTU, Nat64Config},
};

use crate::{
    counters,
    maps::NAT64_SPLIT,
    packet::Packet,
    parse::ipv4::{ETH_HLEN, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4},
};

/// IPv6 header and fragment header.
const HEADERS: u32 = 48;
/// Where a piece's payload starts, its IPv6 payload length field, its
/// fragment offset and M flag.
const DATA: u32 = ETH_HLEN + HEADERS;
const PAYLOAD_LEN_OFF: u32 = ETH_HLEN + 4;
const FRAG_OFF_OFF: u32 = ETH_HLEN + 42;
/// Pieces at most: 1 + NAT64_SPLIT_MAX / the smallest piece (1232), up.
const MAX_PIECES: u32 = 8;

/// The payload a piece carries at most with the inside MTU `mtu`: what
/// fits after the IPv6 and fragment headers, a multiple of 8.
#[inline(always)]
pub fn piece_len(mtu: u32) -> u32 {
    (mtu - HEADERS) & !7
}

/// Whether the packet must be split and can be: too big for the inside
/// link once translated as a fragment, DF clear, the whole datagram in
/// the packet, an inside MTU IPv6 allows, no more payload past the first
/// piece than the scratch holds, offsets that stay within IPv6's 16 bits,
/// and TCP, UDP or an unfragmented ICMP echo (an ICMP error too big for
/// the inside link stays dropped). `skip`: a GSO or hairpinned packet, left to the stack.
#[inline(always)]
pub fn wanted<P: Packet>(p: &P, ip: &Ipv4, cfg: &Nat64Config, skip: bool) -> bool {
    let mtu = cfg.inside_mtu;
    let payload = ip.tot_len.wrapping_sub(ip.hlen);
    // A whole datagram grows by the IPv6 header's 20 bytes only.
    let growth = if ip.later_fragment || ip.more_fragments {
        28
    } else {
        20
    };
    if skip || mtu < NAT64_SPLIT_MIN_MTU || ip.tot_len + growth <= mtu {
        return false;
    }
    if ip.hlen != 20 || ip.end != ip.off + ip.tot_len || payload <= piece_len(mtu) {
        return false;
    }
    let Some(flags) = p.load::<u16>(ip.off + 6) else {
        return false;
    };
    let flags = u16::from_be(flags);
    let offset = ((flags & 0x1fff) as u32) * 8;
    if flags & 0x4000 != 0
        || payload - piece_len(mtu) > NAT64_SPLIT_MAX
        || offset + payload > 0xffff
    {
        return false;
    }
    match ip.proto {
        IPPROTO_TCP | IPPROTO_UDP => true,
        IPPROTO_ICMP => {
            !ip.later_fragment
                && !ip.more_fragments
                && matches!(p.load::<u8>(ip.l4()), Some(0) | Some(8))
        }
        _ => false,
    }
}

/// Splits the translated packet in the skb (IPv6 and fragment headers,
/// then `payload` bytes) into pieces that fit `mtu`: sends all but the
/// last, and leaves the last in the skb for the caller to pass on. `None`:
/// a helper failed (the skb is then to be dropped).
#[inline(always)]
pub fn send(ctx: &TcContext, payload: u32, mtu: u32) -> Option<()> {
    let skb = ctx.skb.skb;
    // SAFETY: reading our own context.
    let ifindex = unsafe { (*skb).ifindex };
    let piece = piece_len(mtu);
    let rest = payload - piece;
    let scratch = NAT64_SPLIT.get_ptr_mut(0)?;
    let frag: u16 = u16::from_be(crate::packet::TcPacket { ctx }.load(FRAG_OFF_OFF)?);
    // The offset in bytes (a multiple of 8), and the original's M.
    let base = (frag & !7) as u32;
    let last_more = frag & 1;
    // SAFETY: per-CPU scratch value; the helpers read and write at most
    // the bounded lengths below inside it.
    unsafe {
        // The verifier must see the bound on the very register passed to
        // the helper; a volatile read keeps the compiler from folding the
        // mask and check into the earlier test.
        let n = core::ptr::read_volatile(&rest) & 0x3fff;
        if n == 0 || n > NAT64_SPLIT_MAX {
            return None;
        }
        if bpf_skb_load_bytes(skb.cast(), DATA + piece, (*scratch).as_mut_ptr().cast(), n) != 0 {
            return None;
        }
        if bpf_skb_change_tail(skb, DATA + piece, 0) != 0 {
            return None;
        }
    }
    set_piece(ctx, piece, base, 1)?;
    let mut pos = 0u32;
    let mut i = 1;
    while i < MAX_PIECES {
        // SAFETY: helper on our own skb; the clone goes to the stack.
        if unsafe { bpf_clone_redirect(skb, ifindex, BPF_F_INGRESS as u64) } == 0 {
            counters::bump(Counter::Nat64FragmentsSent);
        }
        let left = rest - pos;
        let len = if left < piece { left } else { piece };
        // SAFETY: as above; `at` and `len` are bounded so that the read
        // stays inside the value (twice NAT64_SPLIT_MAX long).
        unsafe {
            let at = core::ptr::read_volatile(&pos) & (NAT64_SPLIT_MAX - 1);
            let len = core::ptr::read_volatile(&len) & 0x3fff;
            if len == 0 || len > NAT64_SPLIT_MAX {
                return None;
            }
            if bpf_skb_change_tail(skb, DATA + len, 0) != 0
                || bpf_skb_store_bytes(
                    skb.cast(),
                    DATA,
                    (*scratch).as_ptr().add(at as usize).cast(),
                    len,
                    BPF_F_RECOMPUTE_CSUM as u64,
                ) != 0
            {
                return None;
            }
        }
        pos += len;
        let more = if pos >= rest { last_more } else { 1 };
        set_piece(ctx, len, base + piece * i, more)?;
        if pos >= rest {
            break;
        }
        i += 1;
    }
    counters::bump(Counter::Nat64FragmentsSent);
    counters::bump(Counter::Nat64Fragmented);
    Some(())
}

/// Writes a piece's IPv6 payload length (its fragment header and `len`
/// bytes) and its fragment offset (`offset` bytes) and M flag, keeping
/// skb->csum in step (CHECKSUM_COMPLETE).
#[inline(always)]
fn set_piece(ctx: &TcContext, len: u32, offset: u32, more: u16) -> Option<()> {
    let plen = ((len + 8) as u16).to_be_bytes();
    let frag = ((offset as u16) | more).to_be_bytes();
    // SAFETY: helpers on our own skb, from stack buffers of 2 bytes.
    let ok = unsafe {
        bpf_skb_store_bytes(
            ctx.skb.skb.cast(),
            PAYLOAD_LEN_OFF,
            plen.as_ptr().cast(),
            2,
            BPF_F_RECOMPUTE_CSUM as u64,
        ) == 0
            && bpf_skb_store_bytes(
                ctx.skb.skb.cast(),
                FRAG_OFF_OFF,
                frag.as_ptr().cast(),
                2,
                BPF_F_RECOMPUTE_CSUM as u64,
            ) == 0
    };
    ok.then_some(())
}

/// Whether the skb is CHECKSUM_PARTIAL (a local sender's, forwarded over
/// veths; real NICs give none), for a whole TCP or UDP datagram whose
/// checksum field lies at `check_off`. Such a field holds only the
/// pseudo-header's sum, for the device to complete over the bytes from
/// the transport header on — the first piece's alone once split — and
/// the later pieces would stay partial, to have two of their data bytes
/// overwritten: they are not split (dropped, counted too big). A program
/// cannot read the state, but `bpf_l4_csum_replace` treats the two apart:
/// with BPF_F_PSEUDO_HDR a partial field takes a difference in as a sum
/// and any other field as a change of the data; without it a partial
/// field stays put and any other takes the change. So adding 1 with the
/// flag and taking it away without changes a partial field only (any
/// other comes back the same, but 0xffff as 0: put back).
#[inline(always)]
pub fn partial(ctx: &TcContext, check_off: u32) -> Option<bool> {
    let mut p = crate::packet::TcPacket { ctx };
    let before: u16 = p.load(check_off)?;
    let skb = ctx.skb.skb;
    let pseudo = aya_ebpf::bindings::BPF_F_PSEUDO_HDR as u64;
    // SAFETY: helpers on our own skb, at the checksum field.
    let ok = unsafe {
        bpf_l4_csum_replace(skb, check_off, 0, 1u16.to_be() as u64, pseudo) == 0
            && bpf_l4_csum_replace(skb, check_off, 0, (!1u16.to_be()) as u64, 0) == 0
    };
    if !ok {
        return None;
    }
    // With CHECKSUM_COMPLETE the first call also took the 1 out of
    // skb->csum (as for an IPv4 pseudo-header change): put it back (a
    // no-op in any other state).
    // SAFETY: helper on our own skb.
    unsafe { bpf_csum_update(skb, 1u16.to_be() as u32) };
    let after: u16 = p.load(check_off)?;
    if after == before {
        return Some(false);
    }
    if before == 0xffff && after == 0 {
        p.store(check_off, &before)?;
        return Some(false);
    }
    Some(true)
}

/// Where the checksum field of a whole TCP or UDP datagram of protocol
/// `proto` lies in the IPv4 packet (0: none to see to).
#[inline(always)]
pub fn check_off(proto: u8, whole: bool) -> u32 {
    match proto {
        IPPROTO_TCP if whole => ETH_HLEN + 20 + 16,
        IPPROTO_UDP if whole => ETH_HLEN + 20 + 6,
        _ => 0,
    }
}
