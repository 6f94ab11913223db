//! The expiry sweep's hash for its sets of packed integer keys: foldhash's
//! fast hash (SipHash, std's default, was a third of a sweep's CPU time at
//! a million bindings), randomly seeded per table so that remote addresses
//! an attacker picks cannot be made to collide.
pub(crate) type Seeded = foldhash::fast::RandomState;
pub(crate) type FastSet<T> = std::collections::HashSet<T, Seeded>;
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, Seeded>;
