//! Dynamic NAPT (RFC 4787, RFC 5382, RFC 5508): inside endpoints share the
//! pool's addresses and ports. Static 1:1 maps are consulted before this
//! (they take precedence).

/// Choosing a public address and port for a new mapping.
pub mod alloc;
/// Port block allocation: a host's ports come from its blocks.
pub mod blocks;
/// Whether NAPT is on, its pool and the inside prefixes it translates.
pub mod config;
/// RFC 4787 filtering of inbound packets with no session yet.
pub mod filtering;
/// ICMP errors about NAPT flows, both ways.
pub mod icmp_error;
/// Inbound translation: public endpoint → inside endpoint.
pub mod inbound;
/// Outbound translation: inside endpoint → public endpoint.
pub mod outbound;
/// NAPT's view of a transport header: our port, the remote one, ICMP.
pub mod ports;
/// Sessions: last-seen time, TCP state, counters, filter entries.
pub mod session;
