//! The agent's block keeper (`nat_userspace::agent::blocks`) on real
//! pinned maps (xnat's object loaded into a directory of its own, no
//! program attached), with the entries a data plane would have made
//! written directly and the sweeps' times given: a block is released only
//! once unused for the hold-down, never while a listed binding uses it; a
//! binding the listing missed keeps its block for its host; the host lists
//! are made to agree with BLOCKS; a block deleted by someone else is
//! reported removed. Root only.

use std::net::Ipv4Addr;

use nat_common::{
    EndpointKey, InsideEndpoint, Mapping, NatConfig,
    blocks::{ALLOCATION_BLOCK, BlockKey, BlockOwner, HostBlocks},
};
use nat_userspace::agent::blocks::{BlockKeeper, BlockReport, Released};
use nat_userspace::tables::{Tables as Pins, batch};
use xnat_tests::binding_tables::Tables;
use xnat_tests::napt_maps::be;

const POOL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const H1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const H2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const S: u64 = 1_000_000_000;
const HOLD_DOWN: u32 = 10;

/// Ports 2000-2015 in blocks of 4.
fn cfg() -> NatConfig {
    NatConfig {
        pool_len: 1,
        port_min: 2000,
        port_max: 2015,
        allocation: ALLOCATION_BLOCK,
        block_size: 4,
        max_blocks_per_host: 2,
        block_hold_down: HOLD_DOWN,
        ..NatConfig::default()
    }
}

fn key(index: u32) -> BlockKey {
    BlockKey {
        addr: be(POOL),
        index,
    }
}

struct Fixture {
    t: Tables,
}

impl Fixture {
    fn new(tag: &str) -> Self {
        Fixture {
            t: Tables::with_kernel_walk(tag, 64),
        }
    }

    fn pins(&self) -> Pins {
        Pins::at(self.t.dir())
    }

    fn own(&self, index: u32, host: Ipv4Addr, allocated: u64) {
        let blocks = self.pins().blocks().unwrap();
        let owner = BlockOwner {
            host: be(host),
            _pad: 0,
            allocated,
        };
        batch::update(blocks.fd(), &key(index), &owner).unwrap();
    }

    fn owner(&self, index: u32) -> Option<Ipv4Addr> {
        let blocks = self.pins().blocks().unwrap();
        batch::lookup::<BlockKey, BlockOwner>(blocks.fd(), &key(index))
            .unwrap()
            .map(|o| xnat_tests::napt_maps::ip(o.host))
    }

    fn list(&self, host: Ipv4Addr, indices: &[u16]) {
        let lists = self.pins().host_blocks().unwrap();
        let mut l = HostBlocks {
            addr: be(POOL),
            count: indices.len() as u32,
            ..HostBlocks::default()
        };
        l.index[..indices.len()].copy_from_slice(indices);
        batch::update(lists.fd(), &be(host), &l).unwrap();
    }

    /// The host's list, sorted (`None`: it has none).
    fn listed(&self, host: Ipv4Addr) -> Option<Vec<u16>> {
        let lists = self.pins().host_blocks().unwrap();
        batch::lookup::<u32, HostBlocks>(lists.fd(), &be(host))
            .unwrap()
            .map(|l| {
                let mut v = l.index[..l.count as usize].to_vec();
                v.sort();
                v
            })
    }

    /// A binding of `host` on public port `port` (UDP), in NAPT_IN.
    fn bind(&self, host: Ipv4Addr, port: u16) -> (EndpointKey, Mapping) {
        let inb = self.pins().napt_in().unwrap();
        let public = EndpointKey {
            addr: be(POOL),
            port: port.to_be(),
            proto: 17,
            _pad: 0,
        };
        let inside = InsideEndpoint {
            addr: be(host),
            port: 40000u16.to_be(),
            flags: 0,
        };
        batch::update(inb.fd(), &public, &inside).unwrap();
        let m = Mapping {
            addr: public.addr,
            port: public.port,
            ..Mapping::default()
        };
        (inside.key(17), m)
    }
}

fn kinds(r: &BlockReport) -> Vec<(u32, Option<Released>)> {
    r.events.iter().map(|e| (e.key.index, e.released)).collect()
}

#[test]
fn an_unused_block_goes_back_after_the_hold_down_and_a_used_one_never() {
    let f = Fixture::new("kbr");
    let mut keeper = BlockKeeper::open(f.t.dir()).unwrap();
    f.own(1, H1, S);
    f.own(3, H2, S);
    f.list(H1, &[1]);
    f.list(H2, &[3]);
    let used = vec![f.bind(H2, 2013)];
    let pass = |k: &mut BlockKeeper, at: u64| k.after_sweep(&cfg(), at, &used, true).unwrap();

    let r = pass(&mut keeper, 100 * S);
    let mut got = kinds(&r);
    got.sort_by_key(|(i, _)| *i);
    assert_eq!(got, [(1, None), (3, None)], "allocations noted");
    assert!(
        kinds(&pass(&mut keeper, 105 * S)).is_empty(),
        "within the hold-down"
    );
    let r = pass(&mut keeper, 111 * S);
    assert_eq!(kinds(&r), [(1, Some(Released::Unused))]);
    assert_eq!(r.events[0].ports, (2004, 2007));
    assert_eq!(f.owner(1), None);
    assert_eq!(f.listed(H1), None, "an emptied list is deleted");
    // The used block stays, however long.
    assert!(kinds(&pass(&mut keeper, 500 * S)).is_empty());
    assert_eq!(f.owner(3), Some(H2));
    assert_eq!(f.listed(H2), Some(vec![3]));
    assert_eq!(r.held, 1);
}

#[test]
fn a_binding_the_listing_missed_keeps_its_block() {
    let f = Fixture::new("kbk");
    f.own(2, H1, S);
    f.list(H1, &[2]);
    let mut keeper = BlockKeeper::open(f.t.dir()).unwrap();
    // In NAPT_IN, not in the sweep's listing (made while it listed).
    f.bind(H1, 2009);
    let pass = |k: &mut BlockKeeper, at: u64| k.after_sweep(&cfg(), at, &[], true).unwrap();
    assert!(kinds(&pass(&mut keeper, 100 * S)).is_empty());
    let r = pass(&mut keeper, 111 * S);
    assert!(kinds(&r).is_empty(), "{:?}", r.events);
    assert_eq!(r.kept, 1);
    assert_eq!(f.owner(2), Some(H1));
    assert_eq!(f.listed(H1), Some(vec![2]));
}

#[test]
fn host_lists_are_made_to_agree_with_the_owners() {
    let f = Fixture::new("kbl");
    // H1 owns 1 and 3, its list names 1 and 2 (2 is nobody's: released
    // under it); H2's list names a block it does not own.
    f.own(1, H1, S);
    f.own(3, H1, S);
    f.list(H1, &[1, 2]);
    f.list(H2, &[0]);
    let mut keeper = BlockKeeper::open(f.t.dir()).unwrap();
    let used = vec![f.bind(H1, 2005), f.bind(H1, 2013)];
    let r = keeper.after_sweep(&cfg(), 100 * S, &used, true).unwrap();
    assert_eq!(r.repaired, 2);
    assert_eq!(f.listed(H1), Some(vec![1, 3]));
    assert_eq!(f.listed(H2), None);
}

#[test]
fn a_block_deleted_by_someone_else_is_reported_removed() {
    let f = Fixture::new("kbx");
    f.own(0, H1, S);
    let mut keeper = BlockKeeper::open(f.t.dir()).unwrap();
    let blocks = f.pins().blocks().unwrap();
    batch::delete(blocks.fd(), &[key(0)]).unwrap();
    let r = keeper.after_sweep(&cfg(), 100 * S, &[], true).unwrap();
    assert_eq!(kinds(&r), [(0, Some(Released::Removed))]);
    assert_eq!(r.held, 0);
}
