//! Checksums as the model specifies them, computed from whole regions of
//! the packet (never by the data plane's per-field incremental formulas).
//!
//! The rule: a translation changes some covered bytes; the checksum must
//! change by exactly the change of the one's complement sum of what it
//! covers. A correct checksum stays correct and a wrong one stays wrong by
//! the same amount (a NAT must not "repair" a corrupt packet into a valid
//! one, nor break a valid one). When a checksum is updated at all, its new
//! value is the representative in 0x0000..=0xfffe of its one's complement
//! class (an update by end-around-carry arithmetic never yields 0xffff);
//! a checksum whose covered bytes did not change is left alone.

/// One's complement sum of `data` as big-endian 16-bit words (odd byte
/// padded), folded to 16 bits.
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut it = data.chunks_exact(2);
    for w in &mut it {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = it.remainder() {
        acc += u64::from(*b) << 8;
    }
    fold(acc)
}

/// Folds a wide accumulator with end-around carry.
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The full Internet checksum of `data` (checksum field zeroed by the
/// caller).
pub fn full(data: &[u8]) -> u16 {
    !sum(data)
}

/// The checksum after the covered bytes' sum went from `before` to `after`:
/// `check` keeps its error, expressed as the class representative an
/// update produces.
pub fn adjust(check: u16, before: u16, after: u16) -> u16 {
    !fold(u64::from(!check) + u64::from(!before) + u64::from(after))
}

/// [`adjust`] for a UDP checksum: 0 means "none" and stays 0; a computed 0
/// is transmitted as 0xffff (RFC 768).
pub fn adjust_udp(check: u16, before: u16, after: u16) -> u16 {
    if check == 0 {
        return 0;
    }
    match adjust(check, before, after) {
        0 => 0xffff,
        c => c,
    }
}

/// Sum of a TCP/UDP pseudo-header and `segment` (checksum zeroed by the
/// caller): what a TCP/UDP checksum covers.
pub fn pseudo_sum(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> u16 {
    let mut acc = u64::from(sum(&src)) + u64::from(sum(&dst)) + u64::from(proto);
    acc += segment.len() as u64;
    acc += u64::from(sum(segment));
    fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjusting_a_valid_checksum_equals_recomputing() {
        let mut d = vec![
            0x45, 0, 0, 28, 1, 2, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 8, 8, 8, 8,
        ];
        let c = full(&d);
        let before = sum(&d);
        d[12..16].copy_from_slice(&[198, 51, 100, 1]);
        assert_eq!(adjust(c, before, sum(&d)), full(&d));
    }

    #[test]
    fn a_wrong_checksum_stays_wrong_by_the_same_amount() {
        let mut d = vec![1u8, 2, 3, 4, 5, 6, 7, 8];
        let good = full(&d);
        let bad = good.wrapping_add(5);
        let before = sum(&d);
        d[0] = 9;
        let fixed_good = adjust(good, before, sum(&d));
        let fixed_bad = adjust(bad, before, sum(&d));
        assert_eq!(fold(u64::from(fixed_bad) + u64::from(!fixed_good)), fold(5));
    }

    #[test]
    fn udp_zero_stays_zero() {
        assert_eq!(adjust_udp(0, 1, 2), 0);
    }
}
