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
        bpf_clone_redirect, bpf_l4_csum_replace, bpf_skb_change_tail, bpf_skb_load_bytes,
        bpf_skb_store_bytes,
    },
    programs::TcContext,
};
use nat_common::{
    Counter,
    csum::{add32, fold},
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
/// last, and leaves the last in the skb for the caller to pass on.
/// `check_off`: where a whole TCP or UDP datagram's checksum lies (0:
/// none, see [`partial_rest`]). `None`: a helper failed (the skb is then
/// to be dropped).
#[inline(always)]
pub fn send(ctx: &TcContext, payload: u32, mtu: u32, check_off: u32) -> Option<()> {
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
    if check_off != 0 {
        partial_rest(ctx, scratch, rest, check_off)?;
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

/// A CHECKSUM_PARTIAL skb (a local sender's, forwarded over veths: real
/// NICs give none) holds in its checksum field only the pseudo-header's
/// sum, for whoever sends it to complete over the bytes from the
/// transport header on, which would then be the first piece's alone.
/// There the field must also sum the bytes past the first piece (`rest`
/// of them, in the scratch at `scratch`); any other skb's field is final.
/// A program cannot read the state, but `bpf_l4_csum_replace` treats the
/// two apart: with BPF_F_PSEUDO_HDR a partial field takes the difference
/// in as a sum and any other field as a change of the data; without it a
/// partial field stays put and any other takes the change. So adding the
/// rest's sum with the flag, then taking it away without, leaves a
/// partial field with it added and any other as it was (0xffff coming
/// back as 0 for a UDP field, where 0 would mean no checksum: put back).
#[inline(always)]
fn partial_rest(
    ctx: &TcContext,
    scratch: *mut [u8; nat_common::nat64::NAT64_SPLIT_VALUE],
    rest: u32,
    check_off: u32,
) -> Option<()> {
    let mut sum = 0u64;
    let mut i = 0u32;
    let words = rest / 4;
    while i < NAT64_SPLIT_MAX / 4 {
        if i >= words {
            break;
        }
        // SAFETY: i < NAT64_SPLIT_MAX / 4: inside the scratch value.
        let w = unsafe {
            core::ptr::read_unaligned((*scratch).as_ptr().add(i as usize * 4).cast::<u32>())
        };
        sum = add32(sum, w);
        i += 1;
    }
    // The last 1 to 3 bytes, padded to 16-bit words.
    let tail = (words * 4) & (NAT64_SPLIT_MAX - 1);
    // SAFETY: tail < NAT64_SPLIT_MAX: inside the scratch value (twice that).
    let [b0, b1, b2, _] = unsafe {
        core::ptr::read_unaligned((*scratch).as_ptr().add(tail as usize).cast::<[u8; 4]>())
    };
    sum += match rest - words * 4 {
        1 => u16::from_ne_bytes([b0, 0]) as u64,
        2 => u16::from_ne_bytes([b0, b1]) as u64,
        3 => u16::from_ne_bytes([b0, b1]) as u64 + u16::from_ne_bytes([b2, 0]) as u64,
        _ => 0,
    };
    let d = fold(sum);
    let skb = ctx.skb.skb;
    let pseudo = aya_ebpf::bindings::BPF_F_PSEUDO_HDR as u64;
    // SAFETY: helpers on our own skb, at the checksum field.
    let ok = unsafe {
        bpf_l4_csum_replace(skb, check_off, 0, d as u64, pseudo) == 0
            && bpf_l4_csum_replace(skb, check_off, 0, (!d) as u64, 0) == 0
    };
    if !ok {
        return None;
    }
    let p = crate::packet::TcPacket { ctx };
    if check_off == DATA + 6 && p.load::<u16>(check_off)? == 0 {
        // SAFETY: as above, 2 bytes from the stack.
        let ffff = [0xffu8; 2];
        let r = unsafe {
            bpf_skb_store_bytes(
                skb.cast(),
                check_off,
                ffff.as_ptr().cast(),
                2,
                BPF_F_RECOMPUTE_CSUM as u64,
            )
        };
        if r != 0 {
            return None;
        }
    }
    Some(())
}

/// Where the checksum field of a whole TCP or UDP datagram of protocol
/// `proto` lies once translated for splitting (0: none to see to).
#[inline(always)]
pub fn check_off(proto: u8, whole: bool) -> u32 {
    match proto {
        IPPROTO_TCP if whole => DATA + 16,
        IPPROTO_UDP if whole => DATA + 6,
        _ => 0,
    }
}
