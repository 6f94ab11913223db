//! Rewrite: changing an address or a port in the packet together with
//! every checksum that covers it, written once for static NAT, NAPT,
//! fragments and ICMP errors. Callers decide what to write; this only
//! writes it.

/// The outer header's address and the transport port, with their checksums.
pub mod outer;
/// The datagram an ICMP error quotes, with its checksums and the ICMP one.
pub mod quote;
