//! Tables: the one door to an attachment's BPF maps, and what is done to
//! them. Each table's name and its key and value types are written here
//! once, and everything else asks for a typed handle (`tables.napt_out()`,
//! `tables.config()`, …). Beside it: where the pins live (`pins`,
//! `bpffs`, `layout`), the batch syscalls (`batch`), and the operations on
//! the tables (static maps, forwards, sessions, flows, flush, counters).
//!
//! [`Tables`] opens the maps pinned in an attachment's directory (the CLI
//! verbs, the agent, the sweep, reloads); [`Loaded`] and [`LoadedRef`] give
//! the same handles over the maps of a freshly loaded [`Ebpf`] (the tests),
//! to change them or to read them. [`loader`] is the
//! `EbpfLoader` that pins them there with their sizes.
pub mod batch;
pub mod blocks;
pub mod bpffs;
pub mod cap_keys;
pub mod flows;
pub mod flush;
pub mod forward;
pub mod layout;
pub mod nat64;
pub mod paired;
pub mod pins;
pub mod sessions;
pub mod static_map;
pub mod stats;
pub mod trace;
pub mod usage;

use std::{
    marker::PhantomData,
    os::fd::{AsFd as _, AsRawFd as _, RawFd},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, DevMapHash, HashMap, LpmTrie, Map, MapData, PerCpuArray, ProgramArray, RingBuf},
};
use nat_common::{
    ALL_MAPS, EndpointKey, ExpireWalk, FilterKey, FragKey, FragValue, HeldFragment, HoldKey,
    InsideEndpoint, Ipv4Be, MAP_CLOCK, MAP_CONFIG, MAP_EVENT_MASK, MAP_EVENTS, MAP_EXPIRE,
    MAP_EXPIRE_KEEP, MAP_FAST_PATH, MAP_FILTER, MAP_FRAG_HOLD_IN, MAP_FRAG_HOLD_OUT,
    MAP_FRAG_SCRATCH, MAP_FRAGS_IN, MAP_FRAGS_OUT, MAP_HOST_POOL, MAP_HOST_PORTS,
    MAP_INBOUND_SESSIONS, MAP_INTERNAL, MAP_NAPT_IN, MAP_NAPT_OUT, MAP_POOL, MAP_ROUTE_CACHE,
    MAP_SESSIONS, MAP_STATIC_EMPTY, MAP_STATIC_IN, MAP_STATIC_OUT, MAP_STATS, MAP_VERSION,
    MAP_XDP_TARGETS, Mapping, NatConfig, RouteCacheEntry, Session, SessionKey,
    blocks::{BlockKey, BlockOwner, HostBlocks, MAP_BLOCKS, MAP_HOST_BLOCKS},
    nat64::{
        MAP_NAT64, MAP_NAT64_HOSTS, MAP_NAT64_IDS, MAP_NAT64_TC_PROGS, MAP_NAT64_XDP_PROGS,
        Nat64Config, Nat64Host,
    },
    trace::{MAP_TRACE, MAP_TRACE_FILTER, MAP_TRACE_SCRATCH, TRACE_SCRATCH_LEN, TraceFilter},
};

use crate::loader::Limits;

/// The maps of the attachment pinned in one directory. Each handle opens
/// its pin when asked for, so a `Tables` is cheap to make and to keep.
#[derive(Clone, Debug)]
pub struct Tables {
    dir: PathBuf,
}

/// The maps of a loaded object, to change one: each handle takes the
/// `Loaded` (`Loaded::new(&mut ebpf).config()`).
pub struct Loaded<'a> {
    ebpf: &'a mut Ebpf,
}

/// The maps of a loaded object, borrowed to read them.
pub struct LoadedRef<'a> {
    ebpf: &'a Ebpf,
}

/// A hash table for the batch syscalls of [`batch`]: its fd, name and
/// capacity, with its key and value types.
pub struct Table<K, V> {
    data: MapData,
    name: &'static str,
    _types: PhantomData<(K, V)>,
}

impl<K, V> Table<K, V> {
    pub fn fd(&self) -> RawFd {
        self.data.fd().as_fd().as_raw_fd()
    }

    /// The map's name, as pinned (also the `map` label of the metrics).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its capacity (`max_entries`).
    pub fn max_entries(&self) -> anyhow::Result<u32> {
        Ok(self.data.info()?.max_entries())
    }

    /// The same map as aya's typed hash map, for single-key operations.
    pub fn into_hash_map(self) -> anyhow::Result<HashMap<MapData, K, V>>
    where
        K: aya::Pod,
        V: aya::Pod,
    {
        Ok(HashMap::try_from(Map::from_map_data(self.data)?)?)
    }
}

impl<K: Copy + Default, V: Copy + Default> Table<K, V> {
    /// Every entry, read in batches.
    pub fn lookup_all(&self) -> std::io::Result<Vec<(K, V)>> {
        batch::lookup_all::<K, V>(self.fd())
    }
}

impl Tables {
    /// The maps pinned in `dir` (an attachment's state directory).
    pub fn at(dir: &Path) -> Self {
        Tables {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn data(&self, name: &'static str) -> anyhow::Result<MapData> {
        let path = self.dir.join(name);
        MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))
    }

    fn open<T>(&self, name: &'static str) -> anyhow::Result<T>
    where
        T: TryFrom<Map, Error = aya::maps::MapError>,
    {
        Ok(T::try_from(Map::from_map_data(self.data(name)?)?)?)
    }

    fn table<K, V>(&self, name: &'static str) -> anyhow::Result<Table<K, V>> {
        Ok(Table {
            data: self.data(name)?,
            name,
            _types: PhantomData,
        })
    }

    /// Whether the layout version is pinned at all (state made before
    /// layout versions has none).
    pub fn has_version(&self) -> bool {
        self.dir.join(MAP_VERSION).exists()
    }

    /// The first map of this build's object that `dir` lacks.
    pub fn missing(&self) -> Option<&'static str> {
        ALL_MAPS
            .iter()
            .copied()
            .find(|m| !self.dir.join(m).exists())
    }

    /// Where every map of the object is pinned.
    pub fn pin_paths(&self) -> Vec<PathBuf> {
        ALL_MAPS.iter().map(|m| self.dir.join(m)).collect()
    }
}

impl<'a> LoadedRef<'a> {
    pub fn new(ebpf: &'a Ebpf) -> Self {
        LoadedRef { ebpf }
    }

    fn open<T>(&self, name: &'static str) -> anyhow::Result<T>
    where
        T: TryFrom<&'a Map, Error = aya::maps::MapError>,
    {
        let map = self
            .ebpf
            .map(name)
            .with_context(|| format!("map {name} missing from the object"))?;
        Ok(T::try_from(map)?)
    }
}

impl<'a> Loaded<'a> {
    pub fn new(ebpf: &'a mut Ebpf) -> Self {
        Loaded { ebpf }
    }

    fn open<T>(self, name: &'static str) -> anyhow::Result<T>
    where
        T: TryFrom<&'a mut Map, Error = aya::maps::MapError>,
    {
        let map = self
            .ebpf
            .map_mut(name)
            .with_context(|| format!("map {name} missing from the object"))?;
        Ok(T::try_from(map)?)
    }
}

/// Every table with its handle's name, its map name and its types, once.
/// Hash tables (`table`) come as [`Table`] from a pin directory (batch
/// operations) and as aya `HashMap`s from a loaded object, `array_fd` the
/// same with an aya `Array`; the others as aya's typed maps from both.
macro_rules! tables {
    ($(
        $(#[$doc:meta])*
        $method:ident: $name:ident => $kind:ident<$($t:ty),*>;
    )*) => {
        impl Tables {
            $(
                $(#[$doc])*
                pub fn $method(&self) -> anyhow::Result<tables!(@pinned $kind<$($t),*>)> {
                    tables!(@open self, $name, $kind)
                }
            )*
        }
        impl<'a> Loaded<'a> {
            $(
                $(#[$doc])*
                pub fn $method(self) -> anyhow::Result<tables!(@loaded 'a $kind<$($t),*>)> {
                    self.open($name)
                }
            )*
        }
        impl<'a> LoadedRef<'a> {
            $(
                $(#[$doc])*
                pub fn $method(&self) -> anyhow::Result<tables!(@viewed 'a $kind<$($t),*>)> {
                    self.open($name)
                }
            )*
        }
    };
    (@pinned table<$($t:ty),*>) => { Table<$($t),*> };
    (@pinned array_fd<$($t:ty),*>) => { Table<$($t),*> };
    (@pinned $kind:ident<$($t:ty),*>) => { $kind<MapData, $($t),*> };
    (@loaded $l:lifetime table<$($t:ty),*>) => { HashMap<&$l mut MapData, $($t),*> };
    (@loaded $l:lifetime array_fd<$k:ty, $v:ty>) => { Array<&$l mut MapData, $v> };
    (@loaded $l:lifetime $kind:ident<$($t:ty),*>) => { $kind<&$l mut MapData, $($t),*> };
    (@viewed $l:lifetime table<$($t:ty),*>) => { HashMap<&$l MapData, $($t),*> };
    (@viewed $l:lifetime array_fd<$k:ty, $v:ty>) => { Array<&$l MapData, $v> };
    (@viewed $l:lifetime $kind:ident<$($t:ty),*>) => { $kind<&$l MapData, $($t),*> };
    (@open $self:ident, $name:ident, table) => { $self.table($name) };
    (@open $self:ident, $name:ident, array_fd) => { $self.table($name) };
    (@open $self:ident, $name:ident, $kind:ident) => { $self.open($name) };
}

tables! {
    /// Static 1:1 map, private → public address.
    static_out: MAP_STATIC_OUT => table<Ipv4Be, Ipv4Be>;
    /// Static 1:1 map, public → private address.
    static_in: MAP_STATIC_IN => table<Ipv4Be, Ipv4Be>;
    /// 1 while both static tables are empty (the programs skip them).
    static_empty: MAP_STATIC_EMPTY => Array<u32>;
    /// The NAPT settings in force (`pool_len == 0`: NAPT off).
    config: MAP_CONFIG => Array<NatConfig>;
    /// The pool's addresses, `config().pool_len` of them.
    pool: MAP_POOL => Array<u32>;
    /// The internal prefixes (whose hosts NAPT translates).
    internal: MAP_INTERNAL => LpmTrie<u32, u32>;
    /// Inside endpoint → mapping (public endpoint, first session).
    napt_out: MAP_NAPT_OUT => table<EndpointKey, Mapping>;
    /// Public endpoint → inside endpoint.
    napt_in: MAP_NAPT_IN => table<EndpointKey, InsideEndpoint>;
    /// Sessions beyond each mapping's first.
    sessions: MAP_SESSIONS => table<SessionKey, Session>;
    /// Remote addresses admitted beyond the first session's.
    filter: MAP_FILTER => table<FilterKey, u64>;
    /// Inside address → public ports it holds.
    host_ports: MAP_HOST_PORTS => table<Ipv4Be, u64>;
    /// Inside address → its paired pool address.
    host_pool: MAP_HOST_POOL => table<Ipv4Be, Ipv4Be>;
    /// Port blocks → their owners (block allocation).
    blocks: MAP_BLOCKS => table<BlockKey, BlockOwner>;
    /// Inside host → the port blocks it holds.
    host_blocks: MAP_HOST_BLOCKS => table<Ipv4Be, HostBlocks>;
    /// Sessions opened from outside (an array of one, written by fd).
    inbound_sessions: MAP_INBOUND_SESSIONS => array_fd<u32, u64>;
    /// The data plane's events (ring buffer).
    events: MAP_EVENTS => RingBuf<>;
    /// Which optional events the agent wants.
    event_mask: MAP_EVENT_MASK => Array<u32>;
    /// Per-CPU counters, indexed by `nat_common::Counter`.
    stats: MAP_STATS => PerCpuArray<u64>;
    /// The fast path's switch and the external ifindex.
    fast_path: MAP_FAST_PATH => Array<u32>;
    /// Devices the XDP fast path may redirect to.
    xdp_targets: MAP_XDP_TARGETS => DevMapHash<>;
    /// The layout version of the pinned state.
    version: MAP_VERSION => Array<u32>;
    /// `xnat trace`'s filter (tracer 0: off).
    trace_filter: MAP_TRACE_FILTER => Array<TraceFilter>;
    /// Records of traced packets (ring buffer).
    trace: MAP_TRACE => RingBuf<>;
    /// The per-CPU counters of the packet being traced (the programs' own).
    trace_scratch: MAP_TRACE_SCRATCH => PerCpuArray<[u64; TRACE_SCRATCH_LEN]>;
    /// Fragmented datagrams going out: their first fragment's translation.
    frags_out: MAP_FRAGS_OUT => table<FragKey, FragValue>;
    /// Fragmented datagrams coming in: likewise (LRU, like `frags_out`).
    frags_in: MAP_FRAGS_IN => table<FragKey, FragValue>;
    /// Outbound later fragments held until their first fragment (LRU).
    frag_hold_out: MAP_FRAG_HOLD_OUT => table<HoldKey, HeldFragment>;
    /// Inbound later fragments held until their first fragment (LRU).
    frag_hold_in: MAP_FRAG_HOLD_IN => table<HoldKey, HeldFragment>;
    /// Per-CPU staging buffer of the programs (a fragment being held).
    frag_scratch: MAP_FRAG_SCRATCH => PerCpuArray<HeldFragment>;
    /// Per-CPU cache of the data plane's clock, `[jiffies, ns]`.
    clock: MAP_CLOCK => PerCpuArray<[u64; 2]>;
    /// Per-CPU cache of the fast path's FIB results.
    route_cache: MAP_ROUTE_CACHE => PerCpuArray<RouteCacheEntry>;
    /// The in-kernel expiry walk's input and output.
    expire: MAP_EXPIRE => array_fd<u32, ExpireWalk>;
    /// Inside endpoints the expiry walk keeps (they have a live session
    /// in SESSIONS).
    expire_keep: MAP_EXPIRE_KEEP => table<EndpointKey, u8>;
    /// NAT64's prefix and how IPv4 addresses sit in it (`enabled == 0`: off).
    nat64: MAP_NAT64 => Array<Nat64Config>;
    /// IPv6 inside host → its IPv4 stand-in (NAT64).
    nat64_hosts: MAP_NAT64_HOSTS => table<[u8; 16], Ipv4Be>;
    /// Stand-in → the IPv6 host it stands for (NAT64).
    nat64_ids: MAP_NAT64_IDS => table<Ipv4Be, Nat64Host>;
    /// The NAT64 programs the TC programs tail-call.
    nat64_tc_progs: MAP_NAT64_TC_PROGS => ProgramArray<>;
    /// The NAT64 program the XDP ingress program tail-calls.
    nat64_xdp_progs: MAP_NAT64_XDP_PROGS => ProgramArray<>;
}

/// An `EbpfLoader` that pins every map in `dir` and sizes the binding
/// tables by `limits`.
pub fn loader(dir: &Path, limits: Limits) -> EbpfLoader<'static> {
    let mut loader = EbpfLoader::new();
    for name in ALL_MAPS {
        loader.map_pin_path(name, dir.join(name));
    }
    let host_entries = nat_common::host_ports_entries(limits.max_mappings);
    loader
        .map_max_entries(MAP_NAPT_OUT, limits.max_mappings)
        .map_max_entries(MAP_NAPT_IN, limits.max_mappings)
        .map_max_entries(MAP_HOST_PORTS, host_entries)
        .map_max_entries(MAP_HOST_POOL, host_entries)
        .map_max_entries(MAP_SESSIONS, limits.max_sessions)
        .map_max_entries(MAP_FILTER, limits.max_sessions);
    loader
}
