//! The holder of a public endpoint under deterministic allocation (RFC
//! 7422): computed from the NAPT settings — the inside address whose port
//! range holds the port, for any time the same layout was in force. No
//! table or log is read.
use std::net::Ipv4Addr;

use super::{Holder, Source};
use crate::settings::{deterministic::Deterministic, napt::NaptSettings};

/// Who holds `public:port` (of every protocol in `protos`, by name) under
/// `n`'s layout; empty when `n` is not deterministic or the port lies in
/// no range.
pub fn holders(
    n: &NaptSettings,
    public: Ipv4Addr,
    port: u16,
    protos: &[&'static str],
) -> Vec<Holder> {
    let Some(share) = Deterministic::of(n).and_then(|d| d.holder(public, port)) else {
        return Vec::new();
    };
    protos
        .iter()
        .map(|&proto| Holder {
            proto,
            public: format!("{public}:{port}"),
            inside: share.inside.to_string(),
            source: Source::Deterministic,
            ports: Some(format!("{}-{}", share.lo, share.hi)),
            since: None,
            until: None,
        })
        .collect()
}
