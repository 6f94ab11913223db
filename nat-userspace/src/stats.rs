//! Reading the per-CPU counters and summing them.
use std::path::Path;

use anyhow::Context as _;
use aya::maps::{Map, MapData, PerCpuArray};
use nat_common::{Counter, MAP_STATS};

/// Every counter summed over all CPUs, in `Counter::ALL` order.
pub fn read(dir: &Path) -> anyhow::Result<Vec<(Counter, u64)>> {
    let path = dir.join(MAP_STATS);
    let data = MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
    let map: PerCpuArray<MapData, u64> = PerCpuArray::try_from(Map::from_map_data(data)?)?;
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
