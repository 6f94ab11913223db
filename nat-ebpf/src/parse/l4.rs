//! The transport header as a translation sees it: which checksum covers
//! it, and where a port (or an ICMP query's identifier) lies.

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
