//! Reading the per-CPU counters and summing them.
use std::path::Path;

use nat_common::Counter;

use crate::tables::Tables;

/// Every counter summed over all CPUs, in `Counter::ALL` order.
pub fn read(dir: &Path) -> anyhow::Result<Vec<(Counter, u64)>> {
    let map = Tables::at(dir).stats()?;
    let mut out = Vec::with_capacity(Counter::ALL.len());
    // State pinned by an older build may have fewer counters: report those
    // it has rather than failing.
    let len = map.len();
    for c in Counter::ALL.into_iter().filter(|c| (*c as u32) < len) {
        let per_cpu = map.get(&(c as u32), 0)?;
        out.push((c, per_cpu.iter().sum()));
    }
    Ok(out)
}
