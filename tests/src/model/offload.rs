//! CHECKSUM_PARTIAL skbs (README "Ingress modes and checksum offload"): a
//! TCP or UDP segment from a local sender whose checksum the device is to
//! complete. Its checksum field holds no checksum but the one's complement
//! sum of the pseudo-header alone (addresses, protocol, the length the
//! device will sum), not complemented; the device adds the segment's bytes
//! (the ports among them) and complements.
//!
//! So a translation must leave the field the sum of the *translated*
//! pseudo-header: changed by exactly the change of the addresses (a wrong
//! one stays wrong by as much), as the class representative an update
//! produces (never 0: end-around-carry addition of anything non-zero), and
//! untouched by a port change. A UDP field of 0 ("no checksum") stays 0.
//! Everything else — verdict, every other byte, the maps, the counters —
//! is as for any other skb.

use super::Rule;
use super::csum::{fold, sum};
use super::parse::{self, UDP};
use super::{Oracle, Prediction, State, Verdict};
use crate::bpf::Hook;

/// The partial checksum field's value for `frame`'s pseudo-header, the
/// device summing from `start` (an offset in the frame) to its end: IPv4's,
/// or IPv6's for a frame NAT64 made IPv6.
pub fn pseudo_header_sum(frame: &[u8], start: usize) -> u16 {
    let ip = parse::ETH_HLEN;
    if parse::ethertype(frame) == Some(parse::ETH_P_IPV6) {
        let a = |at: usize| -> [u8; 16] { frame[at..at + 16].try_into().expect("16 bytes") };
        return fold(super::nat64::pseudo6(
            &a(ip + 8),
            &a(ip + 24),
            frame.len() - start,
            frame[ip + 6],
        ));
    }
    fold(
        u64::from(sum(&frame[ip + 12..ip + 20]))
            + u64::from(frame[ip + 9])
            + (frame.len() - start) as u64,
    )
}

/// How far NAT64 moved the transport header of `frame` in `output` (its
/// IPv6 header is 20 bytes longer), if it made it IPv6.
pub fn nat64_growth(frame: &[u8], output: &[u8]) -> Option<usize> {
    let v6 = |f: &[u8]| parse::ethertype(f) == Some(parse::ETH_P_IPV6);
    (v6(output) && !v6(frame) && output.len() >= frame.len()).then(|| output.len() - frame.len())
}

/// [`super::predict`] for a frame handed over as CHECKSUM_PARTIAL: the
/// checksum to be completed from offset `start` into the field at `field`.
#[allow(clippy::too_many_arguments)]
pub fn predict(
    state: &State,
    hook: Hook,
    frame: &[u8],
    oracle: &dyn Oracle,
    now: u64,
    start: usize,
    field: usize,
) -> Prediction {
    let mut p = super::predict(state, hook, frame, oracle, now);
    // NAT64 (IPv4 to IPv6) moves the checksum 20 bytes on: the kernel
    // moves the skb's csum_start with it.
    let grown = nat64_growth(frame, &p.output);
    if p.verdict != Verdict::Translated || (grown.is_none() && p.output.len() != frame.len()) {
        return p;
    }
    let grown = grown.unwrap_or(0);
    let old = parse::be16(frame, field);
    let udp = frame[parse::ETH_HLEN + 9] == UDP;
    let new = if udp && old == 0 {
        0
    } else {
        let before = pseudo_header_sum(frame, start);
        let after = pseudo_header_sum(&p.output, start + grown);
        fold(u64::from(old) + u64::from(!before) + u64::from(after))
    };
    let field = field + grown;
    p.output[field..field + 2].copy_from_slice(&new.to_be_bytes());
    p.path.push(Rule::PartialPseudoHeaderMoved);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Packet, Tcp};
    use crate::model::csum;
    use std::net::Ipv4Addr;

    /// The field of a partial segment, completed over the segment, gives
    /// the checksum a full computation gives.
    #[test]
    fn a_completed_pseudo_header_sum_is_the_checksum() {
        let f = Packet::tcp(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(192, 0, 2, 1),
            Tcp::data(1000, 80, b"abc"),
        )
        .frame();
        let start = 34;
        let mut seg = f[start..].to_vec();
        let full = u16::from_be_bytes([seg[16], seg[17]]);
        seg[16..18].copy_from_slice(&pseudo_header_sum(&f, start).to_be_bytes());
        assert_eq!(!csum::sum(&seg), full);
    }
}
