//! The holder of a public endpoint under block allocation, from the live
//! tables: the inside address that holds the port's block now (it holds
//! every port of it, whether a binding uses the port or not).
use std::{net::Ipv4Addr, path::Path, time::SystemTime};

use nat_common::blocks::{BlockKey, BlockOwner, Blocks};

use super::{Holder, Source};
use crate::{
    agent::clock,
    settings::napt,
    tables::{
        Tables, batch,
        static_map::{from_be, to_be},
    },
};

/// Who holds the block of `public:port` (once per protocol in `protos`,
/// by name); with `at`, only if it held it since then.
pub fn holders(
    dir: &Path,
    public: Ipv4Addr,
    port: u16,
    protos: &[&'static str],
    at: Option<SystemTime>,
) -> anyhow::Result<Vec<Holder>> {
    let cfg = napt::read_config(dir)?;
    let layout = Blocks::of(&cfg);
    let Some(index) = layout.index_of(port) else {
        return Ok(Vec::new());
    };
    let key = BlockKey {
        addr: to_be(public),
        index,
    };
    let blocks = Tables::at(dir).blocks()?;
    let Some(owner) = batch::lookup::<BlockKey, BlockOwner>(blocks.fd(), &key)? else {
        return Ok(Vec::new());
    };
    let since = clock::wall_time(owner.allocated);
    if at.is_some_and(|at| at < since) {
        return Ok(Vec::new());
    }
    let (lo, hi) = layout.range(index);
    Ok(protos
        .iter()
        .map(|&proto| Holder {
            proto,
            public: format!("{public}:{port}"),
            inside: from_be(owner.host).to_string(),
            source: Source::Block,
            ports: Some(format!("{lo}-{hi}")),
            since: Some(clock::rfc3339(since)),
            until: None,
        })
        .collect())
}
