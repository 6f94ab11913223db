//! Opening an attachment's pinned maps by name.
use std::{
    os::fd::{AsFd as _, AsRawFd as _, RawFd},
    path::Path,
};

use anyhow::Context as _;
use aya::maps::{Map, MapData};

/// Opens the map pinned as `name` in `dir` and converts it to the typed
/// aya map `T` (e.g. `HashMap<MapData, K, V>`).
pub fn open<T>(dir: &Path, name: &str) -> anyhow::Result<T>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let path = dir.join(name);
    let data = MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
    Ok(T::try_from(Map::from_map_data(data)?)?)
}

/// A pinned map's raw data, for the batch syscalls.
pub struct RawMap {
    data: MapData,
}

impl RawMap {
    pub fn open(dir: &Path, name: &str) -> anyhow::Result<Self> {
        let path = dir.join(name);
        let data =
            MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { data })
    }

    pub fn fd(&self) -> RawFd {
        self.data.fd().as_fd().as_raw_fd()
    }
}
