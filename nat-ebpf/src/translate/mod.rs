//! Translate: the core every program runs on a packet of the external
//! interface (and hairpinning runs twice). It tries static 1:1 NAT, then
//! dynamic NAPT, then the gateway's own ICMP errors, and passes the rest.

/// ICMP errors the gateway itself sends about a translated packet.
pub mod local_error;
/// The order of the stages: parse → static or NAPT or local error → verdict.
pub mod pipeline;
/// Static 1:1 NAT: the tables, and the translation of one packet.
pub mod static_nat;
