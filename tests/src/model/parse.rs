//! What the data plane may read of a frame: the Ethernet type and the
//! IPv4 header (options included), bounded by both the frame's length and
//! the header's total length. Written from the README's rules, not from
//! the BPF parser.

pub const ETH_HLEN: usize = 14;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;

/// An IPv4 header found in a frame (or quoted in an ICMP error).
#[derive(Clone, Copy, Debug)]
pub struct Ip {
    /// Offset of the header in the frame.
    pub off: usize,
    pub hlen: usize,
    /// End of the datagram's bytes present: the smaller of the frame end
    /// (or the quoting datagram's end) and off + total length (a total
    /// length of 0, as in BIG TCP, means "up to the limit").
    pub end: usize,
    pub tot_len: usize,
    pub proto: u8,
    /// Addresses exactly as in the packet (network order in a native u32),
    /// the representation the maps use.
    pub src: u32,
    pub dst: u32,
    pub id: u16,
    pub later_fragment: bool,
    pub more_fragments: bool,
}

impl Ip {
    pub fn l4(&self) -> usize {
        self.off + self.hlen
    }

    /// Whether `n` bytes at `at` lie in the datagram's present bytes.
    pub fn has(&self, at: usize, n: usize) -> bool {
        at + n <= self.end
    }
}

pub fn be16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

pub fn addr(f: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]])
}

/// The frame's EtherType, if it has an Ethernet header.
pub fn ethertype(frame: &[u8]) -> Option<u16> {
    (frame.len() >= ETH_HLEN).then(|| be16(frame, 12))
}

/// The frame's IPv4 header: `None` unless the Ethernet type is IPv4 (no
/// VLAN tags: a tagged frame is not ours) and a whole, sane header is there.
pub fn outer(frame: &[u8]) -> Option<Ip> {
    if frame.len() < ETH_HLEN || be16(frame, 12) != ETH_P_IP {
        return None;
    }
    ipv4_at(frame, ETH_HLEN, frame.len())
}

/// An IPv4 header at `off` of a datagram that may not extend past `limit`.
/// Its fixed 20 bytes must be inside the frame, the whole header inside
/// `limit`, and the total length must not end inside the header.
pub fn ipv4_at(frame: &[u8], off: usize, limit: usize) -> Option<Ip> {
    if off + 20 > frame.len() {
        return None;
    }
    let h = &frame[off..off + 20];
    if h[0] >> 4 != 4 {
        return None;
    }
    let hlen = usize::from(h[0] & 0x0f) * 4;
    if hlen < 20 || off + hlen > limit {
        return None;
    }
    let tot_len = usize::from(be16(h, 2));
    let end = if tot_len == 0 {
        limit
    } else {
        (off + tot_len).min(limit)
    };
    if end < off + hlen {
        return None;
    }
    let frag = be16(h, 6);
    Some(Ip {
        off,
        hlen,
        end,
        tot_len,
        proto: h[9],
        src: addr(h, 12),
        dst: addr(h, 16),
        id: u16::from_ne_bytes([h[4], h[5]]),
        later_fragment: frag & 0x1fff != 0,
        more_fragments: frag & 0x2000 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Packet, Udp, ethernet_vlan, ethertype};
    use std::net::Ipv4Addr;

    fn frame() -> Vec<u8> {
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 0, 2, 1));
        Packet::udp(a, b, Udp::new(1, 2, b"abcd")).frame()
    }

    #[test]
    fn a_whole_header_is_parsed_with_its_bounds() {
        let f = frame();
        let ip = outer(&f).unwrap();
        assert_eq!((ip.off, ip.hlen, ip.end, ip.proto), (14, 20, 14 + 32, UDP));
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(outer(&padded).unwrap().end, 14 + 32, "padding is not data");
    }

    #[test]
    fn lying_or_cut_headers_are_not_parsed() {
        let f = frame();
        for ihl in [0u8, 4, 15] {
            // IHL 15 claims 60 header bytes; the frame has 32 after its
            // Ethernet header.
            let mut g = f.clone();
            g[14] = 0x40 | ihl;
            assert!(outer(&g).is_none(), "IHL {ihl}");
        }
        let mut short_total = f.clone();
        short_total[16..18].copy_from_slice(&19u16.to_be_bytes());
        assert!(outer(&short_total).is_none());
        assert!(outer(&f[..33]).is_none());
        assert!(outer(&ethernet_vlan(7, ethertype::IPV4, &f[14..])).is_none());
    }

    #[test]
    fn a_zero_total_length_means_up_to_the_frame_end() {
        let mut f = frame();
        f[16] = 0;
        f[17] = 0;
        assert_eq!(outer(&f).unwrap().end, f.len());
    }
}
