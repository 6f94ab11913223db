//! Parse: turns a frame's bytes into the offsets and fields the later
//! stages need, checking that every byte it reports is in the packet.
//! Nothing here writes to the packet or looks at a table.

/// The ICMP header and the datagram an ICMP error quotes.
pub mod icmp;
/// The Ethernet type and the IPv4 header (options included).
pub mod ipv4;
/// The fixed IPv6 header (NAT64).
pub mod ipv6;
/// The transport header's checksum and where a port lies.
pub mod l4;
/// The checksums of an inbound ICMP error, verified before translating it.
pub mod verify;
