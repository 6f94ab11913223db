//! The Ethernet type and the IPv4 header: turns a frame into the offsets
//! and fields the NAT needs, checking that every byte it reports is inside
//! the packet. The header layouts are `network-types`'.
use core::mem::offset_of;

use network_types::{
    eth::{EthHdr, EtherType},
    ip::{IpProto, Ipv4Hdr},
};

use crate::packet::Packet;

pub const ETH_HLEN: u32 = EthHdr::LEN as u32;
/// Offset of the Ethernet type in the frame.
pub const ETH_TYPE_OFF: u32 = offset_of!(EthHdr, ether_type) as u32;
/// ETH_P_IP as it lies in the frame, read into a native u16.
pub const ETH_P_IP_WIRE: u16 = EtherType::Ipv4 as u16;

pub const IPPROTO_ICMP: u8 = IpProto::Icmp as u8;
pub const IPPROTO_TCP: u8 = IpProto::Tcp as u8;
pub const IPPROTO_UDP: u8 = IpProto::Udp as u8;

/// `Ipv4Hdr` is all byte arrays (alignment 1); copied out at alignment 4,
/// its 16- and 32-bit fields read as one load each, not byte by byte.
#[repr(C, align(4))]
#[derive(Clone, Copy)]
struct Aligned(Ipv4Hdr);

/// An IPv4 header found at `off`, options included.
#[derive(Clone, Copy)]
pub struct Ipv4 {
    /// Offset of the header in the packet.
    pub off: u32,
    /// Header length in bytes (IHL × 4).
    pub hlen: u32,
    /// End of the datagram's bytes that are present in this packet:
    /// min(packet length, off + total length).
    pub end: u32,
    /// Total length from the header (host order).
    pub tot_len: u32,
    pub proto: u8,
    pub src: u32,
    pub dst: u32,
    /// Fragment offset ≠ 0: no transport header in this packet.
    pub later_fragment: bool,
    /// More-fragments flag: with offset 0, the first of several.
    pub more_fragments: bool,
    /// IP identification as in the packet.
    pub id: u16,
    /// Header checksum as in the packet (memory order), so a rewrite needs
    /// no second load.
    pub check: u16,
}

impl Ipv4 {
    pub const SRC_OFF: u32 = offset_of!(Ipv4Hdr, src_addr) as u32;
    pub const DST_OFF: u32 = offset_of!(Ipv4Hdr, dst_addr) as u32;
    pub const CHECK_OFF: u32 = offset_of!(Ipv4Hdr, check) as u32;
    pub const TTL_OFF: u32 = offset_of!(Ipv4Hdr, ttl) as u32;

    /// Offset of the transport header.
    #[inline(always)]
    pub fn l4(&self) -> u32 {
        self.off + self.hlen
    }

    /// The datagram's bytes present in the packet, as the byte counters
    /// count them.
    #[inline(always)]
    pub fn bytes(&self) -> u64 {
        (self.end - self.off) as u64
    }

    /// Whether `n` bytes at `off` lie inside the datagram's present bytes.
    #[inline(always)]
    pub fn has(&self, off: u32, n: u32) -> bool {
        off + n <= self.end
    }
}

/// The IPv4 header of an Ethernet frame, or `None` for anything else (not
/// IPv4, or too short to hold a complete IPv4 header).
#[inline(always)]
pub fn outer_ipv4<P: Packet>(p: &P) -> Option<Ipv4> {
    let proto: u16 = p.load(ETH_TYPE_OFF)?;
    if proto != ETH_P_IP_WIRE {
        return None;
    }
    ipv4_at(p, ETH_HLEN, p.len())
}

/// Parses an IPv4 header at `off` whose datagram may not extend past
/// `limit` (the packet length, or the quoting datagram's end for an ICMP
/// error's embedded header).
#[inline(always)]
pub fn ipv4_at<P: Packet>(p: &P, off: u32, limit: u32) -> Option<Ipv4> {
    // The fixed 20 bytes in one load.
    let aligned: Aligned = p.load(off)?;
    let h = &aligned.0;
    if h.vihl >> 4 != 4 {
        return None;
    }
    let hlen = ((h.vihl & 0x0f) as u32) * 4;
    if hlen < 20 || off + hlen > limit {
        return None;
    }
    let tot_len = u16::from_be_bytes(h.tot_len) as u32;
    // A zero total length is legal for IPv4 BIG TCP super-packets; trust the
    // packet length then. Quoted datagrams are usually cut short, so the
    // present bytes are the smaller of the two either way.
    let end = if tot_len == 0 {
        limit
    } else {
        let claimed = off + tot_len;
        if claimed < limit { claimed } else { limit }
    };
    if end < off + hlen {
        return None;
    }
    Some(Ipv4 {
        off,
        hlen,
        end,
        tot_len,
        proto: h.proto,
        src: u32::from_ne_bytes(h.src_addr),
        dst: u32::from_ne_bytes(h.dst_addr),
        later_fragment: u16::from_be_bytes(h.frags) & 0x1fff != 0,
        more_fragments: u16::from_be_bytes(h.frags) & 0x2000 != 0,
        id: u16::from_ne_bytes(h.id),
        check: u16::from_ne_bytes(h.check),
    })
}
