//! How full the maps are: each map's capacity, key and value sizes and,
//! for hash maps, the entries it holds (walked key by key, so it works on
//! every kernel and every hash map type, LRU ones included). Of the maps
//! pinned in a directory ([`Tables::usage`]) or of one handle's map
//! ([`usage`], e.g. `usage(LoadedRef::new(&ebpf).frags_out()?.map())`
//! with `aya::maps::IterableMap`).
use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _, RawFd},
};

use anyhow::Context as _;
use aya::maps::{MapData, MapType};
use nat_common::ALL_MAPS;

use super::Tables;

/// What a map holds.
#[derive(Clone, Debug)]
pub struct MapUsage {
    /// The map's name, as pinned.
    pub name: String,
    pub map_type: Option<MapType>,
    pub max_entries: u32,
    pub key_size: u32,
    pub value_size: u32,
    /// Entries counted with BPF_MAP_GET_NEXT_KEY (hash maps only).
    pub entries: Option<u64>,
}

impl MapUsage {
    /// Upper bound of the memory its entries can take (keys + values).
    pub fn max_bytes(&self) -> u64 {
        u64::from(self.max_entries) * u64::from(self.key_size + self.value_size)
    }
}

/// The usage of the map `data`.
pub fn usage(data: &MapData) -> anyhow::Result<MapUsage> {
    let info = data.info().context("map info")?;
    let map_type = info.map_type().ok();
    let entries = match map_type {
        Some(MapType::Hash | MapType::LruHash | MapType::PerCpuHash | MapType::LruPerCpuHash) => {
            Some(
                count_keys(data.fd().as_fd().as_raw_fd(), info.key_size() as usize)
                    .context("walking the map's keys")?,
            )
        }
        _ => None,
    };
    Ok(MapUsage {
        name: info.name_as_str().unwrap_or_default().to_string(),
        map_type,
        max_entries: info.max_entries(),
        key_size: info.key_size(),
        value_size: info.value_size(),
        entries,
    })
}

impl Tables {
    /// The usage of every map of the object pinned here, in [`ALL_MAPS`]'
    /// order, each named by its pin.
    pub fn usage(&self) -> anyhow::Result<Vec<MapUsage>> {
        ALL_MAPS
            .iter()
            .map(|&name| {
                let mut u = usage(&self.data(name)?).with_context(|| name.to_string())?;
                u.name = name.to_string();
                Ok(u)
            })
            .collect()
    }
}

/// `union bpf_attr` as BPF_MAP_GET_NEXT_KEY reads it.
#[repr(C)]
struct MapNextKeyAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    next_key: u64,
    flags: u64,
}

const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;

/// Counts the keys of a hash map by walking it with BPF_MAP_GET_NEXT_KEY.
pub fn count_keys(fd: RawFd, key_size: usize) -> io::Result<u64> {
    let mut key = vec![0u8; key_size.max(1)];
    let mut next = vec![0u8; key_size.max(1)];
    let mut n = 0u64;
    let mut first = true;
    loop {
        let attr = MapNextKeyAttr {
            map_fd: fd as u32,
            _pad: 0,
            key: if first { 0 } else { key.as_ptr() as u64 },
            next_key: next.as_mut_ptr() as u64,
            flags: 0,
        };
        // SAFETY: BPF_MAP_GET_NEXT_KEY reads `key` (key_size bytes, or
        // none when 0) and writes key_size bytes to `next_key`; both buffers
        // live across the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_GET_NEXT_KEY,
                &attr as *const MapNextKeyAttr,
                std::mem::size_of::<MapNextKeyAttr>(),
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) => Ok(n),
                _ => Err(e),
            };
        }
        n += 1;
        if n > 50_000_000 {
            return Err(io::Error::other("map walk does not end"));
        }
        key.copy_from_slice(&next);
        first = false;
    }
}
