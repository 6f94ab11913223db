//! `xnat lookup`: which inside endpoint holds, or held, a public endpoint
//! (an abuse report names a public address, port and time). The live
//! tables answer for now and for the lifetime of a binding that still
//! exists; the translation log (agent/translog.rs) for the past; under
//! deterministic allocation the layout itself, for any time.
pub mod blocks;
pub mod deterministic;
pub mod live;
pub mod log;

use serde::Serialize;

/// Where an answer comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A dynamic binding in the tables now.
    Live,
    /// A port forward (`xnat forward`).
    Forward,
    /// A static 1:1 mapping (every port of the public address).
    Static,
    /// The translation log.
    Log,
    /// Deterministic allocation: the inside address whose port range
    /// holds the port (computed from the settings).
    Deterministic,
    /// Block allocation: the inside address holding the port's block now.
    Block,
    /// Block allocation: the port's block in the translation log.
    #[serde(rename = "block-log")]
    BlockLog,
}

/// One holder of the public endpoint asked about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// "tcp", "udp" or "icmp" (for ICMP the port is the query identifier).
    pub proto: &'static str,
    pub public: String,
    pub inside: String,
    pub source: Source,
    /// Deterministic and block allocation: the inside address's whole
    /// port range or block (`inside` is then an address without a port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<String>,
    /// When the binding was made (RFC 3339), where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// When it was deleted (RFC 3339); none while it lives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}
