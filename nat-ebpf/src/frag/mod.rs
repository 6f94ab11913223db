//! Fragments: IPv4 fragments of translated flows (RFC 4787 REQ-14, RFC
//! 5508 REQ-7). Only a first fragment carries ports; the later ones are
//! translated as their first was, or held until it comes.

/// Out-of-order later fragments, held on TC until their first fragment.
pub mod hold;
/// Each datagram's translation, remembered from its first fragment.
pub mod table;
