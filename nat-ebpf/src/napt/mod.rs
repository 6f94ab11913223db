//! Dynamic NAPT (RFC 4787, RFC 5382, RFC 5508): inside endpoints share the
//! pool's addresses and ports. Static 1:1 maps are consulted before this
//! (they take precedence).

/// Choosing a public address and port for a new mapping.
pub mod alloc;
/// Whether NAPT is on, its pool and the inside prefixes it translates.
pub mod config;
/// Outbound and inbound translation, ICMP errors both ways, filtering.
pub mod outbound;
/// Sessions: last-seen time, TCP state, counters, filter entries.
pub mod session;
