//! The transport header as a translation sees it: which checksum covers
//! it, and where a port (or an ICMP query's identifier) lies. Offsets come
//! from `network-types`' header layouts, except the TCP flags byte's:
//! `TcpHdr` keeps it in a bitfield, which has no byte offset to name.
use core::mem::offset_of;

use network_types::{tcp::TcpHdr, udp::UdpHdr};

/// Length of a TCP header without options.
pub const TCP_HLEN: u32 = TcpHdr::LEN as u32;
/// Length of a UDP header.
pub const UDP_HLEN: u32 = UdpHdr::LEN as u32;
pub const TCP_CSUM_OFF: u32 = offset_of!(TcpHdr, check) as u32;
pub const UDP_CSUM_OFF: u32 = offset_of!(UdpHdr, check) as u32;
/// Offset of the destination port, in TCP as in UDP (the source port is
/// at 0).
pub const DPORT_OFF: u32 = offset_of!(UdpHdr, dst) as u32;
/// Offset of the data offset byte, followed by the flags byte: `TcpHdr`
/// keeps both in a bindgen bitfield, which has no byte offsets to name.
pub const TCP_DOFF_OFF: u32 = 12;
pub const TCP_FLAGS_OFF: u32 = TCP_DOFF_OFF + 1;

/// The transport checksum of a packet or of a quoted datagram.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// TCP: its pseudo-header covers the IPv4 addresses.
    Tcp,
    /// UDP: as TCP, but 0 means "no checksum" and stays 0.
    Udp,
    /// ICMP: no pseudo-header; only the message itself is covered.
    Icmp,
}

/// A port of the transport header, or an ICMP query's identifier: where
/// it lies, its value (memory order) and the checksum that covers it.
#[derive(Clone, Copy)]
pub struct Port {
    pub off: u32,
    pub value: u16,
    pub csum_off: u32,
    pub l4: L4,
}
