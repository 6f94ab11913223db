//! The IPv6 header (NAT64's inside side): the fixed 40 bytes, checked to
//! be in the packet. Extension headers are the translator's business: it
//! looks at `next` and refuses what it cannot translate.
use network_types::eth::EtherType;

use crate::{packet::Packet, parse::ipv4::ETH_HLEN};

/// ETH_P_IPV6 as it lies in the frame, read into a native u16.
pub const ETH_P_IPV6_WIRE: u16 = EtherType::Ipv6 as u16;
/// Length of the fixed IPv6 header.
pub const IPV6_HLEN: u32 = 40;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const NEXTHDR_FRAGMENT: u8 = 44;

/// An IPv6 header at `ETH_HLEN`.
#[derive(Clone, Copy)]
pub struct Ipv6 {
    /// Payload length (host order).
    pub payload_len: u32,
    /// Next header.
    pub next: u8,
    pub hop_limit: u8,
    /// Traffic class.
    pub tclass: u8,
    /// Source and destination as loaded (network order in memory).
    pub src: [u32; 4],
    pub dst: [u32; 4],
    /// End of the datagram's bytes present in the packet.
    pub end: u32,
}

impl Ipv6 {
    /// Offset of what follows the fixed header.
    pub const L4: u32 = ETH_HLEN + IPV6_HLEN;

    /// Whether `n` bytes at `off` lie inside the datagram's present bytes.
    #[inline(always)]
    pub fn has(&self, off: u32, n: u32) -> bool {
        off + n <= self.end
    }
}

/// The words of an address as bytes (network order).
#[inline(always)]
pub fn bytes_of(words: &[u32; 4]) -> [u8; 16] {
    // SAFETY: same size, both plain data.
    unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(*words) }
}

/// The same the other way.
#[inline(always)]
pub fn words_of(bytes: &[u8; 16]) -> [u32; 4] {
    // SAFETY: same size, both plain data.
    unsafe { core::mem::transmute::<[u8; 16], [u32; 4]>(*bytes) }
}

/// The IPv6 header of an Ethernet frame (the caller checked the Ethernet
/// type), or `None` if it is cut short or not version 6.
#[inline(always)]
pub fn outer_ipv6<P: Packet>(p: &P) -> Option<Ipv6> {
    let h: [u32; 10] = p.load(ETH_HLEN)?;
    let [b0, b1, ..] = h[0].to_ne_bytes();
    if b0 >> 4 != 6 {
        return None;
    }
    let [l0, l1, next, hop_limit] = h[1].to_ne_bytes();
    let payload_len = u16::from_be_bytes([l0, l1]) as u32;
    let claimed = Ipv6::L4 + payload_len;
    let len = p.len();
    // Jumbograms (payload length 0) are not translated (IPv4 has none).
    if payload_len == 0 || claimed > len {
        return None;
    }
    Some(Ipv6 {
        payload_len,
        next,
        hop_limit,
        tclass: (b0 << 4) | (b1 >> 4),
        src: [h[2], h[3], h[4], h[5]],
        dst: [h[6], h[7], h[8], h[9]],
        end: claimed,
    })
}
