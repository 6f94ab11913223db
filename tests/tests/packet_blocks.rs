//! Packet tests for port block allocation (`--allocation block`): the real
//! compiled egress program on crafted frames (`BPF_PROG_TEST_RUN`), with
//! CONFIG, BLOCKS and HOST_BLOCKS written directly. The random choices are
//! pinned down by tiny layouts: blocks of 4 ports over 16, so a probe has
//! few places to go and every outcome is checked exactly.
//! Needs root (`cargo xtask test`).

use std::net::Ipv4Addr;

use nat_common::{
    Counter, EndpointKey, NatConfig,
    blocks::{ALLOCATION_BLOCK, BlockKey, BlockOwner, Blocks, HostBlocks},
};
use nat_userspace::tables::{Loaded, LoadedRef};
use xnat_tests::bpf::{self, Hook};
use xnat_tests::frame::{Packet, Udp};
use xnat_tests::napt_maps::{Napt, be, ip};

const POOL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const H1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const H2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const REMOTE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// Ports 2000-2015 in blocks of 4: blocks 0-3.
const PORTS: (u16, u16) = (2000, 2015);
const SIZE: u32 = 4;

fn napt(max_blocks: u32) -> Napt {
    Napt::with(
        &[POOL],
        &[(Ipv4Addr::new(10, 0, 0, 0), 8)],
        |c: &mut NatConfig| {
            (c.port_min, c.port_max) = PORTS;
            c.allocation = ALLOCATION_BLOCK;
            c.block_size = SIZE;
            c.max_blocks_per_host = max_blocks;
        },
    )
}

fn layout() -> Blocks {
    Blocks {
        port_min: PORTS.0,
        port_max: PORTS.1,
        size: SIZE,
    }
}

fn block(index: u32) -> BlockKey {
    BlockKey {
        addr: be(POOL),
        index,
    }
}

fn own(n: &mut Napt, index: u32, host: Ipv4Addr) {
    let owner = BlockOwner {
        host: be(host),
        _pad: 0,
        allocated: 1,
    };
    bpf::put(n.ebpf_mut(), Loaded::blocks, block(index), owner);
}

fn list(n: &mut Napt, host: Ipv4Addr, blocks: &[u16]) {
    let mut l = HostBlocks {
        addr: be(POOL),
        count: blocks.len() as u32,
        ..HostBlocks::default()
    };
    l.index[..blocks.len()].copy_from_slice(blocks);
    bpf::put(n.ebpf_mut(), Loaded::host_blocks, be(host), l);
}

fn owner(n: &Napt, index: u32) -> Option<Ipv4Addr> {
    bpf::get(n.ebpf(), LoadedRef::blocks, &block(index)).map(|o: BlockOwner| ip(o.host))
}

fn listed(n: &Napt, host: Ipv4Addr) -> Vec<u16> {
    bpf::get(n.ebpf(), LoadedRef::host_blocks, &be(host))
        .map(|l: HostBlocks| l.index[..l.count as usize].to_vec())
        .unwrap_or_default()
}

/// Sends one datagram from `host:sport`; the public port it got, if any.
fn send(n: &Napt, host: Ipv4Addr, sport: u16) -> Option<u16> {
    let frame = Packet::udp(host, REMOTE, Udp::new(sport, 53, b"block")).frame();
    n.run(Hook::EgressTc, &frame);
    n.napt_out_all()
        .into_iter()
        .find(|(k, _)| {
            *k == EndpointKey {
                addr: be(host),
                port: sport.to_be(),
                proto: 17,
                _pad: 0,
            }
        })
        .map(|(_, m)| u16::from_be(m.port))
}

/// Public ports in use in block `index`.
fn used_in(n: &Napt, index: u32) -> Vec<u16> {
    let (lo, hi) = layout().range(index);
    n.napt_in_all()
        .into_iter()
        .map(|(k, _)| u16::from_be(k.port))
        .filter(|p| (lo..=hi).contains(p))
        .collect()
}

#[test]
fn a_first_binding_claims_the_inside_ports_block_and_keeps_the_port() {
    let n = napt(2);
    assert_eq!(send(&n, H1, 2009), Some(2009));
    assert_eq!(owner(&n, 2), Some(H1), "block 2 holds 2008-2011");
    assert_eq!(listed(&n, H1), [2]);
    assert_eq!(n.counter(Counter::NaptBlocksAllocated), 1);
    // The next flow from a port outside the range lands in the same block,
    // with its parity (2000: even).
    let p = send(&n, H1, 3000).expect("a port in its block");
    assert!((2008..=2011).contains(&p) && p.is_multiple_of(2), "{p}");
    assert_eq!(n.counter(Counter::NaptBlocksAllocated), 1);
}

#[test]
fn another_hosts_block_is_never_used() {
    let mut n = napt(2);
    own(&mut n, 2, H2);
    list(&mut n, H2, &[2]);
    let p = send(&n, H1, 2009).expect("a port");
    assert!(!(2008..=2011).contains(&p), "{p} lies in H2's block");
    let mine = layout().index_of(p).unwrap();
    assert_eq!(owner(&n, mine), Some(H1));
    assert_eq!(owner(&n, 2), Some(H2));
}

#[test]
fn a_host_at_its_cap_with_full_blocks_is_refused() {
    let n = napt(1);
    // Four flows fill its one block of four ports.
    for sport in 2008..2012 {
        assert_eq!(send(&n, H1, sport), Some(sport));
    }
    assert_eq!(send(&n, H1, 4000), None);
    assert_eq!(n.counter(Counter::DropHostPortCap), 1);
    assert_eq!(n.counter(Counter::NaptBlocksAllocated), 1);
    assert_eq!(listed(&n, H1), [2]);
}

#[test]
fn a_full_block_makes_the_host_claim_another_up_to_its_cap() {
    let n = napt(2);
    for sport in 2008..2012 {
        assert_eq!(send(&n, H1, sport), Some(sport));
    }
    let p = send(&n, H1, 2013).expect("a port in a second block");
    assert_eq!(p, 2013, "the inside port's block was free");
    assert_eq!(listed(&n, H1), [2, 3]);
    assert_eq!(n.counter(Counter::NaptBlocksAllocated), 2);
}

#[test]
fn a_block_released_meanwhile_is_used_only_once_claimed_again() {
    // The host's list still names block 2, but the agent has deleted its
    // reservation (a release under way): a port of it is kept only if the
    // host claims the block afresh (its inside port's block comes first).
    let mut n = napt(2);
    list(&mut n, H1, &[2]);
    assert_eq!(send(&n, H1, 2009), Some(2009));
    assert_eq!(owner(&n, 2), Some(H1), "claimed again");
    assert_eq!(n.counter(Counter::NaptBlocksAllocated), 1);
    assert_eq!(listed(&n, H1), [2], "listed once");
    // Held by another host meanwhile: none of its ports.
    let mut n = napt(2);
    list(&mut n, H1, &[2]);
    own(&mut n, 2, H2);
    let p = send(&n, H1, 2009).expect("a port");
    assert!(used_in(&n, 2).is_empty(), "{p}: a port of H2's block kept");
    assert_eq!(owner(&n, layout().index_of(p).unwrap()), Some(H1));
}

#[test]
fn no_free_block_is_ports_exhausted() {
    let mut n = napt(2);
    for b in 0..4 {
        own(&mut n, b, H2);
    }
    assert_eq!(send(&n, H1, 2009), None);
    assert_eq!(n.counter(Counter::DropPortsExhausted), 1);
    assert!(listed(&n, H1).is_empty());
}
