//! Internet checksum (RFC 1071) and incremental updates (RFC 1624).
//!
//! All values are taken *as they lie in memory* (network byte order read
//! into a native integer). One's complement addition is byte-order
//! independent as long as every operand uses the same representation, so the
//! data plane never needs to byte-swap to fix a checksum.

/// Folds a 32-bit (or wider) one's complement accumulator into 16 bits.
#[inline(always)]
pub fn fold(mut sum: u64) -> u16 {
    // Four folds are always enough for a 64-bit accumulator; a bounded
    // count keeps the BPF verifier happy.
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Adds the two 16-bit halves of a 32-bit word to an accumulator.
#[inline(always)]
pub fn add32(acc: u64, word: u32) -> u64 {
    acc + (word & 0xffff) as u64 + (word >> 16) as u64
}

/// Incremental update of checksum `check` when a 16-bit field changes from
/// `old` to `new` (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
#[inline(always)]
pub fn replace2(check: u16, old: u16, new: u16) -> u16 {
    let sum = (!check) as u64 + (!old) as u64 + new as u64;
    !fold(sum)
}

/// Incremental update of checksum `check` when a 32-bit field (an IPv4
/// address) changes from `old` to `new`.
#[inline(always)]
pub fn replace4(check: u16, old: u32, new: u32) -> u16 {
    let mut sum = (!check) as u64;
    sum = add32(sum, !old);
    sum = add32(sum, new);
    !fold(sum)
}

/// A UDP checksum after `update`: a transmitted 0 means "no checksum" and
/// stays 0; a computed 0 is sent as 0xffff (RFC 768).
#[inline(always)]
pub fn udp(check: u16, update: impl FnOnce(u16) -> u16) -> u16 {
    if check == 0 {
        return 0;
    }
    let out = update(check);
    if out == 0 { 0xffff } else { out }
}

/// [`replace4`] for a UDP checksum (see [`udp`]).
#[inline(always)]
pub fn replace4_udp(check: u16, old: u32, new: u32) -> u16 {
    udp(check, |c| replace4(c, old, new))
}

/// [`replace2`] for a UDP checksum (see [`udp`]): a port.
#[inline(always)]
pub fn replace2_udp(check: u16, old: u16, new: u16) -> u16 {
    udp(check, |c| replace2(c, old, new))
}

/// Incremental update of checksum `check` when an address and a port it
/// covers change at once (the endpoint a NAT rewrites): one fold where
/// [`replace4`] then [`replace2`] take two, same result.
#[inline(always)]
pub fn replace_endpoint(check: u16, old: u32, new: u32, old_port: u16, new_port: u16) -> u16 {
    let mut sum = (!check) as u64 + (!old_port) as u64 + new_port as u64;
    sum = add32(sum, !old);
    sum = add32(sum, new);
    !fold(sum)
}

/// An ICMP checksum as a translation writes it: a computed 0x0000 goes
/// out as 0xffff. Over a message with any non-zero byte both values
/// verify, but over an all-zero one (an echo reply whose identifier,
/// sequence number and data are all 0) only 0xffff does, and RFC 1624
/// arithmetic yields 0x0000 there.
#[inline(always)]
pub fn icmp_never_zero(check: u16) -> u16 {
    if check == 0 { 0xffff } else { check }
}

/// [`replace2`] for an ICMP checksum (see [`icmp_never_zero`]).
#[inline(always)]
pub fn replace2_icmp(check: u16, old: u16, new: u16) -> u16 {
    icmp_never_zero(replace2(check, old, new))
}

/// One's complement sum of `data` (big-endian 16-bit words, odd byte padded
/// with zero), not yet complemented. Host-side helper for tests and for
/// building packets; the data plane only uses the incremental forms.
pub fn sum_be(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u64) << 8;
    }
    acc
}

/// Full Internet checksum of `data` as a big-endian value (the bytes to put
/// in the packet are `checksum(data).to_be_bytes()`).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum_be(data, 0))
}

/// Full TCP/UDP checksum over the IPv4 pseudo-header and `segment` (whose
/// checksum field must be zero), big-endian.
pub fn l4_checksum(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> u16 {
    let mut acc = sum_be(&src, 0);
    acc = sum_be(&dst, acc);
    acc += proto as u64;
    acc += segment.len() as u64;
    !fold(sum_be(segment, acc))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random stream (xorshift) so the tests need no
    /// dependency and are reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn memory_word32(b: &[u8]) -> u32 {
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    }
    fn memory_word16(b: &[u8]) -> u16 {
        u16::from_ne_bytes([b[0], b[1]])
    }

    /// The one-fold endpoint update gives exactly what the address update
    /// followed by the port update gives, for TCP and UDP rules alike
    /// (edge values included: 0, 0xffff, equal old and new).
    #[test]
    fn endpoint_update_equals_address_then_port() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let edges16 = [0u16, 1, 0xfffe, 0xffff];
        for i in 0..200_000u32 {
            let r = rng.next();
            let pick16 = |x: u64, i: u32| {
                if i.is_multiple_of(7) {
                    edges16[(x & 3) as usize]
                } else {
                    x as u16
                }
            };
            let check = pick16(r, i);
            let (old, new) = (rng.next() as u32, rng.next() as u32);
            let new = if i.is_multiple_of(11) { old } else { new };
            let r2 = rng.next();
            let (old_port, new_port) = (pick16(r2, i + 1), pick16(r2 >> 16, i + 2));
            assert_eq!(
                replace_endpoint(check, old, new, old_port, new_port),
                replace2(replace4(check, old, new), old_port, new_port),
                "tcp: check {check:#x} {old:#x}->{new:#x} {old_port:#x}->{new_port:#x}"
            );
            assert_eq!(
                udp(check, |c| replace_endpoint(c, old, new, old_port, new_port)),
                replace2_udp(replace4_udp(check, old, new), old_port, new_port),
                "udp: check {check:#x} {old:#x}->{new:#x} {old_port:#x}->{new_port:#x}"
            );
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example bytes: sum is 0xddf2, checksum 0x220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), 0x220d);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x12, 0x34, 0x56]), !0x6834u16);
    }

    #[test]
    fn replace4_matches_full_recomputation() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            // A 20-byte buffer with a checksum at offset 10 and an "address"
            // at offset 12, like an IPv4 header.
            let mut buf = [0u8; 20];
            for b in buf.iter_mut() {
                *b = rng.next() as u8;
            }
            buf[10] = 0;
            buf[11] = 0;
            let c = checksum(&buf);
            buf[10..12].copy_from_slice(&c.to_be_bytes());

            let old = memory_word32(&buf[12..16]);
            let new_bytes = (rng.next() as u32).to_ne_bytes();
            let new = memory_word32(&new_bytes);
            let check = memory_word16(&buf[10..12]);
            let updated = replace4(check, old, new);

            buf[12..16].copy_from_slice(&new_bytes);
            buf[10..12].copy_from_slice(&updated.to_ne_bytes());
            // A correct header sums to 0xffff (checksum of it is 0).
            assert_eq!(checksum(&buf), 0, "buffer {buf:02x?}");
        }
    }

    #[test]
    fn replace2_matches_full_recomputation() {
        let mut rng = Rng(42);
        for _ in 0..20_000 {
            let mut buf = [0u8; 12];
            for b in buf.iter_mut() {
                *b = rng.next() as u8;
            }
            buf[0] = 0;
            buf[1] = 0;
            let c = checksum(&buf);
            buf[0..2].copy_from_slice(&c.to_be_bytes());
            let old = memory_word16(&buf[4..6]);
            let new = rng.next() as u16;
            let updated = replace2(memory_word16(&buf[0..2]), old, new);
            buf[4..6].copy_from_slice(&new.to_ne_bytes());
            buf[0..2].copy_from_slice(&updated.to_ne_bytes());
            assert_eq!(checksum(&buf), 0);
        }
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        assert_eq!(replace4_udp(0, 0x0100_000a, 0x0171_00cb), 0);
        assert_eq!(replace2_udp(0, 1, 2), 0);
    }

    #[test]
    fn udp_computed_zero_becomes_ffff() {
        // ~0xffff + ~0 + 0 folds to 0xffff, so the plain update yields 0,
        // which UDP must send as 0xffff.
        assert_eq!(replace4(0xffff, 0, 0), 0);
        assert_eq!(replace4_udp(0xffff, 0, 0), 0xffff);
        assert_eq!(replace2(0xffff, 0, 0), 0);
        assert_eq!(replace2_udp(0xffff, 0, 0), 0xffff);
    }

    #[test]
    fn icmp_all_zero_message_gets_ffff() {
        // Echo reply, identifier 0x1234 becoming 0, sequence 0, no data.
        let before = [0u8, 0, 0, 0, 0x12, 0x34, 0, 0];
        let check = u16::from_ne_bytes(checksum(&before).to_be_bytes());
        let id = memory_word16(&before[4..]);
        assert_eq!(replace2(check, id, 0), 0, "RFC 1624 gives 0x0000");
        let out = replace2_icmp(check, id, 0);
        let mut after = [0u8; 8];
        after[2..4].copy_from_slice(&out.to_ne_bytes());
        assert_eq!(checksum(&after), 0, "the written checksum verifies");
        let mut zero = [0u8; 8];
        zero[2..4].copy_from_slice(&0u16.to_ne_bytes());
        assert_ne!(checksum(&zero), 0, "0x0000 would not have");
    }

    #[test]
    fn l4_checksum_validates_to_zero() {
        let src = [10, 0, 0, 2];
        let dst = [198, 51, 100, 2];
        let mut udp = [0x30, 0x39, 0x00, 0x35, 0x00, 0x0b, 0, 0, b'a', b'b', b'c'];
        let c = l4_checksum(src, dst, 17, &udp);
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        assert_eq!(l4_checksum(src, dst, 17, &udp), 0);
    }
}
