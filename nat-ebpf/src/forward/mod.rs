//! Forward: packets xnat sends on itself instead of leaving them to the
//! kernel's routing — hairpinned ones, and established flows on the fast
//! path.

/// The fast path: established flows translated and redirected in BPF.
pub mod fastpath;
/// Hairpinning: inside to the public endpoint of another inside host.
pub mod hairpin;
/// FIB lookup (cached per tick), TTL, MACs and redirect, like a router.
pub mod route;
