//! Checksums of an inbound ICMP error, verified before it is translated
//! (RFC 5508 REQ-3): the ICMP checksum over the whole message and the
//! checksum of the quoted IPv4 header. An error that fails either is
//! dropped rather than translated: rewriting it incrementally would hand
//! the inside host an error whose bad checksum it can no longer tell from
//! ours, about a datagram it may not have sent.
use aya_ebpf::helpers::generated::bpf_csum_diff;
use nat_common::csum;

use crate::{
    maps::FRAG_SCRATCH,
    packet::Packet,
    parse::{icmp::Embedded, ipv4::Ipv4},
};

/// Longest range verified: ICMP errors carry at most 576 bytes in all from
/// routers (RFC 1812) and from Linux; 1020 bytes of ICMP message leave
/// room for RFC 4884 extensions (and keep the second `bpf_csum_diff` call
/// within 508 bytes, a bound a mask can show the verifier). Longer
/// messages are not verified (and so dropped).
const MAX_LEN: u32 = 1020;
/// What one `bpf_csum_diff` call sums at most.
const CSUM_DIFF_MAX: u32 = 512;

/// The one's complement sum (unfolded) of `start..end`, in memory order
/// like every checksum here (see nat_common::csum); `None` when a byte
/// cannot be read or the range is longer than this verifies.
///
/// The bytes are copied into the per-CPU scratch buffer with one helper
/// call and summed by `bpf_csum_diff`: a loop over the packet would cost
/// the verifier its whole budget, once per path that reaches it.
#[inline(always)]
fn sum<P: Packet>(p: &P, start: u32, end: u32) -> Option<u64> {
    if end <= start || end - start > MAX_LEN {
        return None;
    }
    let scratch = FRAG_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch value of FRAG_HOLD_BYTES (≥ MAX_LEN) bytes;
    // every length passed with it is masked to bounds the verifier sees.
    unsafe {
        let buf: *mut u8 = (*scratch).data.as_mut_ptr();
        // A volatile read keeps the compiler from folding the mask into
        // the earlier test: the verifier must see the bound on the very
        // register passed to the helper.
        let len = core::ptr::read_volatile(&(end - start)) & 0x7ff;
        if len == 0 || len > MAX_LEN || !p.copy_out(start, buf, len) {
            return None;
        }
        let words = len & !3;
        let first = core::ptr::read_volatile(&words) & 0x3fc;
        let mut acc: u64 = 0;
        if words != 0 {
            let n = if words > CSUM_DIFF_MAX {
                CSUM_DIFF_MAX
            } else {
                first
            };
            acc = csum_diff(buf, n, 0)?;
        }
        if words > CSUM_DIFF_MAX {
            let rest = core::ptr::read_volatile(&(words - CSUM_DIFF_MAX)) & 0x1fc;
            acc = csum_diff(buf.add(CSUM_DIFF_MAX as usize), rest, acc as u32)?;
        }
        // The last 1–3 bytes: a word padded with zero (memory order).
        let mut tail = [0u8; 4];
        let mut i = 0;
        while i < 3 {
            let at = words + i;
            if at >= len {
                break;
            }
            tail[i as usize] = *buf.add((at & 0x3ff) as usize);
            i += 1;
        }
        Some(acc + u32::from_ne_bytes(tail) as u64)
    }
}

/// `bpf_csum_diff` over `n` bytes (a multiple of 4, at most 512) at `at`,
/// added to `seed`: a 32-bit one's complement sum.
#[inline(always)]
unsafe fn csum_diff(at: *mut u8, n: u32, seed: u32) -> Option<u64> {
    // SAFETY: `at..at + n` lies in the scratch buffer (the caller's bounds).
    let r = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, at.cast(), n, seed) };
    (r >= 0).then_some(r as u32 as u64)
}

/// Whether the ICMP error at `icmp_off` of `outer` has a valid ICMP
/// checksum and quotes an IPv4 header with a valid checksum.
#[inline(always)]
pub fn icmp_error_checksums<P: Packet>(
    p: &P,
    outer: &Ipv4,
    icmp_off: u32,
    inner: &Embedded,
) -> bool {
    let valid = |s: Option<u64>| s.is_some_and(|s| csum::fold(s) == 0xffff);
    valid(sum(p, inner.ip.off, inner.ip.off + inner.ip.hlen)) && valid(sum(p, icmp_off, outer.end))
}
