//! Port block allocation (PBA, `--allocation block`): an inside host's
//! first binding reserves a block of `block_size` consecutive ports on its
//! paired pool address; its later bindings take ports from its blocks; it
//! may hold up to `max_blocks_per_host` of them. The agent releases a block
//! once no binding has used it for `block_hold_down` seconds. A log line
//! per block (not per binding) then says who held which ports when.
//!
//! Blocks tile the configured port range from `port_min`: block `i` holds
//! `port_min + i * block_size` .. `+ block_size - 1`; a remainder shorter
//! than a block at the top of the range is not used.
//!
//! Two tables, both written by the data plane when it reserves a block and
//! by the agent when it releases one:
//! * `BLOCKS`: (pool address, block index) → [`BlockOwner`]. The
//!   reservation is its `BPF_NOEXIST` insert, so two CPUs never hand one
//!   block to two hosts, as `NAPT_IN` does for ports.
//! * `HOST_BLOCKS`: inside host → [`HostBlocks`], the blocks it holds: one
//!   lookup tells a new binding where to look. It is read-modify-written
//!   in place, so two CPUs adding a block for one host at the same instant
//!   may lose one from the list; `BLOCKS` still names the owner (the log
//!   and lookups stay right) and the agent puts it back.

use crate::NatConfig;

/// `NatConfig::allocation`: port blocks per host.
pub const ALLOCATION_BLOCK: u32 = 2;

/// Blocks one host may hold at most (`--max-blocks-per-host`): the size of
/// [`HostBlocks::index`].
pub const MAX_BLOCKS_PER_HOST: u32 = 16;
/// Smallest block (`--block-size`): bounds the block tables.
pub const MIN_BLOCK_SIZE: u32 = 64;
/// Capacity of `BLOCKS` and `HOST_BLOCKS`: every block of a full pool of
/// the smallest blocks (not preallocated: only the bucket array is paid).
pub const BLOCKS_MAX: u32 = crate::POOL_MAX * (65536 / MIN_BLOCK_SIZE);

/// Defaults: 256 ports a block (a power of two, as Juniper's and VPP's
/// are by habit), up to 8 blocks (2048 ports) per host, a minute before
/// an unused block goes back.
pub const DEFAULT_BLOCK_SIZE: u32 = 256;
pub const DEFAULT_MAX_BLOCKS_PER_HOST: u32 = 8;
pub const DEFAULT_BLOCK_HOLD_DOWN: u32 = 60;

/// Pool address (`BLOCKS`) → owner.
pub const MAP_BLOCKS: &str = "BLOCKS";
/// Inside host → its blocks.
pub const MAP_HOST_BLOCKS: &str = "HOST_BLOCKS";

/// `BLOCKS` key: a block of a pool address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockKey {
    /// Pool address, network order.
    pub addr: u32,
    pub index: u32,
}

/// `BLOCKS` value: who holds the block, since when.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockOwner {
    /// Inside host, network order.
    pub host: u32,
    pub _pad: u32,
    /// CLOCK_BOOTTIME ns of the reservation (the data plane's clock).
    pub allocated: u64,
}

/// `HOST_BLOCKS` value: the blocks a host holds, all on pool address
/// `addr` (paired pooling).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostBlocks {
    /// Pool address, network order.
    pub addr: u32,
    /// Valid entries of `index`.
    pub count: u32,
    pub index: [u16; MAX_BLOCKS_PER_HOST as usize],
}

impl HostBlocks {
    /// Whether the host's list names block `index`.
    pub fn holds(&self, index: u32) -> bool {
        let n = (self.count as usize).min(self.index.len());
        self.index[..n].iter().any(|&b| u32::from(b) == index)
    }
}

/// How the port range is cut into blocks (the part of CONFIG that says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocks {
    pub port_min: u16,
    pub port_max: u16,
    pub size: u32,
}

impl Blocks {
    #[inline(always)]
    pub fn of(cfg: &NatConfig) -> Self {
        Blocks {
            port_min: cfg.port_min,
            port_max: cfg.port_max,
            size: cfg.block_size,
        }
    }

    /// Whole blocks in the range.
    #[inline(always)]
    pub fn count(&self) -> u32 {
        let ports = u32::from(self.port_max) + 1;
        let ports = ports.saturating_sub(u32::from(self.port_min));
        ports.checked_div(self.size).unwrap_or(0)
    }

    /// The block holding `port` (host order), if a whole block does.
    #[inline(always)]
    pub fn index_of(&self, port: u16) -> Option<u32> {
        let off = u32::from(port).checked_sub(u32::from(self.port_min))?;
        let i = off.checked_div(self.size)?;
        (i < self.count()).then_some(i)
    }

    /// The first and last port of block `index` (host order).
    #[inline(always)]
    pub fn range(&self, index: u32) -> (u16, u16) {
        let lo = u32::from(self.port_min) + index * self.size;
        (lo as u16, (lo + self.size - 1) as u16)
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain C structs of integers, every bit pattern valid.
    unsafe impl aya::Pod for super::BlockKey {}
    unsafe impl aya::Pod for super::BlockOwner {}
    unsafe impl aya::Pod for super::HostBlocks {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_tile_the_range_from_its_start() {
        let b = Blocks {
            port_min: 1024,
            port_max: 65535,
            size: 256,
        };
        assert_eq!(b.count(), 252);
        assert_eq!(b.index_of(1023), None);
        assert_eq!(b.index_of(1024), Some(0));
        assert_eq!(b.index_of(1279), Some(0));
        assert_eq!(b.index_of(1280), Some(1));
        assert_eq!(b.index_of(65535), Some(251));
        assert_eq!(b.range(251), (65280, 65535));
        // A remainder shorter than a block is not used.
        let b = Blocks {
            port_min: 1000,
            port_max: 1999,
            size: 300,
        };
        assert_eq!(b.count(), 3);
        assert_eq!(b.index_of(1899), Some(2));
        assert_eq!(b.index_of(1900), None);
        assert_eq!(b.range(2), (1600, 1899));
        let none = Blocks { size: 0, ..b };
        assert_eq!((none.count(), none.index_of(1000)), (0, None));
    }

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(size_of::<BlockKey>(), 8);
        assert_eq!(size_of::<BlockOwner>(), 16);
        assert_eq!(
            size_of::<HostBlocks>(),
            8 + 2 * MAX_BLOCKS_PER_HOST as usize
        );
    }

    #[test]
    fn a_host_holds_only_its_listed_blocks() {
        let mut h = HostBlocks {
            addr: 1,
            count: 2,
            ..Default::default()
        };
        h.index[..3].copy_from_slice(&[4, 9, 7]);
        assert!(h.holds(4) && h.holds(9) && !h.holds(7));
    }
}
