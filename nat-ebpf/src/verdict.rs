//! The small types every stage shares: which way a packet goes through
//! the NAT and what a stage decided about it. They live apart so that the
//! stages below the translation core (fragments, NAPT, ICMP errors) can
//! return a verdict without importing the core that calls them.

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Leaving through the external interface: translate the source.
    Egress,
    /// Arriving on the external interface: translate the destination.
    Ingress,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Leave the packet to the stack untouched (not ours, or malformed
    /// inbound).
    Pass,
    Drop,
    /// Translated; the stack (or the fast path) forwards it.
    Translated,
}
