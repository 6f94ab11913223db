//! The port blocks held now (block allocation), for `xnat flows --blocks`,
//! `xnat stats` and `xnat lookup`: each block with its owner, since when,
//! and the bindings in it.
use std::{collections::HashMap, net::Ipv4Addr, path::Path};

use nat_common::{
    NatConfig,
    blocks::{BlockKey, Blocks},
};
use serde::Serialize;

use crate::{
    agent::clock,
    tables::{Tables, static_map::from_be},
};

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HeldBlock {
    /// The pool address.
    pub public: Ipv4Addr,
    /// First and last port.
    pub first_port: u16,
    pub last_port: u16,
    /// The inside address that holds every port of it.
    pub inside: Ipv4Addr,
    /// When it was reserved (RFC 3339).
    pub since: String,
    pub age_s: u64,
    /// Bindings (of any protocol) on its ports now.
    pub bindings: u64,
}

/// Every block held under `dir`, by pool address and first port.
pub fn read(dir: &Path, cfg: &NatConfig) -> anyhow::Result<Vec<HeldBlock>> {
    let tables = Tables::at(dir);
    let owned = tables.blocks()?.lookup_all()?;
    if owned.is_empty() {
        return Ok(Vec::new());
    }
    let layout = Blocks::of(cfg);
    let mut bindings: HashMap<BlockKey, u64> = HashMap::new();
    for (k, _) in tables.napt_in()?.lookup_all()? {
        if let Some(index) = layout.index_of(u16::from_be(k.port)) {
            *bindings
                .entry(BlockKey {
                    addr: k.addr,
                    index,
                })
                .or_default() += 1;
        }
    }
    let now = clock::now_ns();
    let mut out: Vec<HeldBlock> = owned
        .into_iter()
        .map(|(k, o)| {
            let (lo, hi) = layout.range(k.index);
            HeldBlock {
                public: from_be(k.addr),
                first_port: lo,
                last_port: hi,
                inside: from_be(o.host),
                since: clock::rfc3339(clock::wall_time(o.allocated)),
                age_s: now.saturating_sub(o.allocated) / 1_000_000_000,
                bindings: bindings.get(&k).copied().unwrap_or(0),
            }
        })
        .collect();
    out.sort_by_key(|b| (b.public, b.first_port));
    Ok(out)
}
