//! The NAT64 model against frames built from scratch with the expected
//! result (IPv4 ones with [`crate::frame`], IPv6 ones byte by byte with
//! their checksums summed here): a UDP datagram and an echo request out
//! through a new binding, the reply back, a non-global address under the
//! well-known prefix, and IPv4 from a stand-in on the external egress.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use nat_common::nat64::{Nat64Config, Nat64Host, WELL_KNOWN_PREFIX, stand_in_probe};
use nat_common::{Counter, EndpointKey, InsideEndpoint, Mapping};

use super::words;
use crate::bpf::Hook;
use crate::frame::{ETH_HLEN, Icmp, Packet, Udp, assert_frame_eq};
use crate::model::csum;
use crate::model::fib::{Device, Fib, Kind, Neighbour, Route};
use crate::model::{Allocation, Oracle, State, Verdict, predict};
use crate::napt_maps::{be, default_config};

const HOST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 5);
const POOL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const REMOTE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const MAC_EXT: [u8; 6] = [2, 0, 0, 0, 0xe0, 0xfe];
const MAC_RTR: [u8; 6] = [2, 0, 0, 0, 0xe0, 0x01];
const IN0: u32 = 2;
const EXT0: u32 = 3;

/// The allocator keeps the inside port; NAT64's identification is 0x1234.
struct Keep;

impl Oracle for Keep {
    fn allocation(&self, inside: &EndpointKey) -> Allocation {
        Allocation::Mapped {
            addr: be(POOL),
            port: inside.port,
        }
    }

    fn claimed_block(&self, _: u32) -> Option<nat_common::blocks::BlockKey> {
        None
    }

    fn nat64_id(&self) -> [u8; 2] {
        [0x12, 0x34]
    }
}

/// NAPT on the pool address, NAT64 on 64:ff9b::/96, the remote's subnet
/// on ext0 with its neighbour resolved.
fn state() -> State {
    let mut st = State {
        pool: vec![be(POOL)],
        internal: vec![(be(Ipv4Addr::new(10, 0, 0, 0)), 24)],
        config: default_config(),
        nat64: Nat64Config::new(WELL_KNOWN_PREFIX, 96).unwrap(),
        ..Default::default()
    };
    st.config.pool_len = 1;
    st.gateway.ext_ifindex = EXT0;
    st.gateway.inside_ifindex = IN0;
    let dev = |name: &str, ifindex, mac, forwarding| Device {
        name: name.into(),
        ifindex,
        mac,
        mtu: 1500,
        forwarding,
    };
    st.gateway.fib = Arc::new(Fib {
        devices: vec![
            dev("in0", IN0, [2, 0, 0, 0, 0x0a, 0xfe], true),
            dev("ext0", EXT0, MAC_EXT, false),
        ],
        routes: vec![Route {
            net: u32::from(Ipv4Addr::new(192, 0, 2, 0)),
            len: 24,
            kind: Kind::Unicast,
            dev: EXT0,
            via: None,
            mtu_lock: None,
        }],
        neighbours: vec![Neighbour {
            dev: EXT0,
            addr: u32::from(REMOTE),
            mac: MAC_RTR,
        }],
    });
    st
}

/// An IPv6 frame of `next` carrying `l4`, whose checksum (at `at`) is
/// computed here over the pseudo-header as RFC 8200 section 8.1 lays it
/// out.
fn ipv6_frame(src: Ipv6Addr, dst: Ipv6Addr, next: u8, mut l4: Vec<u8>, at: usize) -> Vec<u8> {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, next]);
    pseudo.extend_from_slice(&l4);
    let c = csum::full(&pseudo);
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    f.extend_from_slice(&[next, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&l4);
    f
}

fn udp_segment(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    u
}

fn under_prefix(v4: Ipv4Addr) -> Ipv6Addr {
    let o = v4.octets();
    Ipv6Addr::new(
        0x64,
        0xff9b,
        0,
        0,
        0,
        0,
        u16::from_be_bytes([o[0], o[1]]),
        u16::from_be_bytes([o[2], o[3]]),
    )
}

fn with_macs(mut f: Vec<u8>, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f
}

/// The stand-in the host gets from an empty `NAT64_IDS`.
fn stand_in() -> u32 {
    stand_in_probe(&words(&HOST.octets()), 0)
}

#[test]
fn udp_out_through_a_new_binding() {
    let st = state();
    let input = ipv6_frame(
        HOST,
        under_prefix(REMOTE),
        17,
        udp_segment(4000, 53, b"query"),
        6,
    );
    let p = predict(&st, Hook::InsideTc, &input, &Keep, 0);
    assert_eq!(p.verdict, Verdict::Redirected, "{:?}", p.path);
    let mut want = Packet::udp(POOL, REMOTE, Udp::new(4000, 53, b"query"))
        .with_ttl(63)
        .with_id(0x1234);
    want.ip.flags = 0;
    assert_frame_eq(
        "NAT64 out",
        &p.output,
        &with_macs(want.frame(), MAC_RTR, MAC_EXT),
    );
    let s = stand_in();
    assert_eq!(p.state.nat64_hosts.get(&HOST.octets()), Some(&s));
    assert_eq!(
        p.state.nat64_ids.get(&s).map(|h| h.addr),
        Some(HOST.octets())
    );
    let key = EndpointKey {
        addr: s,
        port: 4000u16.to_be(),
        proto: 17,
        _pad: 0,
    };
    assert_eq!(p.state.napt_out.get(&key).map(|m| m.addr), Some(be(POOL)));
    for c in [Counter::Nat64Out, Counter::EgressTranslated] {
        assert!(p.counters.contains(&(c, 1)), "{c:?}: {:?}", p.counters);
    }

    // The same host again: the same stand-in, the mapping found.
    let p2 = predict(&p.state, Hook::InsideTc, &input, &Keep, 0);
    assert_eq!(p2.verdict, Verdict::Redirected);
    assert_eq!(p2.state.nat64_ids.len(), 1);
}

#[test]
fn echo_out_loses_its_pseudo_header() {
    let st = state();
    let mut echo = vec![128, 0, 0, 0];
    echo.extend_from_slice(&7u16.to_be_bytes());
    echo.extend_from_slice(&1u16.to_be_bytes());
    echo.extend_from_slice(b"ping");
    let input = ipv6_frame(HOST, under_prefix(REMOTE), 58, echo, 2);
    let p = predict(&st, Hook::InsideTc, &input, &Keep, 0);
    assert_eq!(p.verdict, Verdict::Redirected, "{:?}", p.path);
    let mut want = Packet::icmp(POOL, REMOTE, Icmp::echo_request(7, 1, b"ping"))
        .with_ttl(63)
        .with_id(0x1234);
    want.ip.flags = 0;
    assert_frame_eq(
        "echo out",
        &p.output,
        &with_macs(want.frame(), MAC_RTR, MAC_EXT),
    );
}

#[test]
fn the_reply_comes_back_as_ipv6() {
    let mut st = state();
    let s = stand_in();
    st.nat64_hosts.insert(HOST.octets(), s);
    st.nat64_ids.insert(
        s,
        Nat64Host {
            addr: HOST.octets(),
            created: 1,
        },
    );
    let key = |addr, port: u16| EndpointKey {
        addr,
        port: port.to_be(),
        proto: 17,
        _pad: 0,
    };
    let mut m = Mapping {
        addr: be(POOL),
        port: 4000u16.to_be(),
        ..Default::default()
    };
    m.first.live = 1;
    m.first.remote_addr = be(REMOTE);
    m.first.remote_port = 53u16.to_be();
    st.napt_out.insert(key(s, 4000), m);
    st.napt_in.insert(
        key(be(POOL), 4000),
        InsideEndpoint {
            addr: s,
            port: 4000u16.to_be(),
            flags: 0,
        },
    );
    let input = Packet::udp(REMOTE, POOL, Udp::new(53, 4000, b"answer")).frame();
    let want = ipv6_frame(
        under_prefix(REMOTE),
        HOST,
        17,
        udp_segment(53, 4000, b"answer"),
        6,
    );
    for hook in [Hook::IngressTc, Hook::IngressXdp] {
        let p = predict(&st, hook, &input, &Keep, 0);
        assert_eq!(p.verdict, Verdict::Translated, "{hook:?}: {:?}", p.path);
        assert_frame_eq("NAT64 in", &p.output, &want);
        assert!(p.counters.contains(&(Counter::Nat64In, 1)));
    }
    // Its stand-in freed: dropped.
    st.nat64_ids.clear();
    let p = predict(&st, Hook::IngressTc, &input, &Keep, 0);
    assert_eq!(p.verdict, Verdict::Drop);
    assert!(p.counters.contains(&(Counter::Nat64DropNoHost, 1)));
}

#[test]
fn non_global_addresses_stay_out_of_the_well_known_prefix() {
    let st = state();
    let input = ipv6_frame(
        HOST,
        under_prefix(Ipv4Addr::new(10, 1, 2, 3)),
        17,
        udp_segment(4000, 53, b"query"),
        6,
    );
    let p = predict(&st, Hook::InsideTc, &input, &Keep, 0);
    assert_eq!((p.verdict, &p.output), (Verdict::Drop, &input));
    assert_eq!(p.counters, vec![(Counter::Nat64DropNonGlobal, 1)]);
    // NAT64 off: IPv6 is not ours.
    let mut off = st.clone();
    off.nat64.enabled = 0;
    let p = predict(&off, Hook::InsideTc, &input, &Keep, 0);
    assert_eq!((p.verdict, &p.output), (Verdict::Pass, &input));
    assert!(p.counters.is_empty());
}

#[test]
fn ipv4_from_a_stand_in_never_leaves() {
    let st = state();
    let input = Packet::udp(Ipv4Addr::new(0, 1, 2, 3), REMOTE, Udp::new(4000, 53, b"x")).frame();
    let p = predict(&st, Hook::EgressTc, &input, &Keep, 0);
    assert_eq!(p.verdict, Verdict::Drop);
    assert_eq!(p.counters, vec![(Counter::EgressDroppedMalformed, 1)]);
}

#[test]
fn a_df_packet_too_big_for_the_inside_link_is_answered() {
    let mut st = state();
    st.nat64.inside_mtu = 1280;
    let s = stand_in();
    st.nat64_hosts.insert(HOST.octets(), s);
    st.nat64_ids.insert(
        s,
        Nat64Host {
            addr: HOST.octets(),
            created: 1,
        },
    );
    let key = |addr, port: u16| EndpointKey {
        addr,
        port: port.to_be(),
        proto: 17,
        _pad: 0,
    };
    st.napt_out.insert(
        key(s, 4000),
        Mapping {
            addr: be(POOL),
            port: 4000u16.to_be(),
            ..Default::default()
        },
    );
    st.napt_in.insert(
        key(be(POOL), 4000),
        InsideEndpoint {
            addr: s,
            port: 4000u16.to_be(),
            flags: 0,
        },
    );
    // 1261 bytes: 1281 as IPv6, one more than the inside link takes.
    let sent = Packet::udp(REMOTE, POOL, Udp::new(53, 4000, &[7; 1233]));
    let input = sent.frame();
    st.config.filtering = nat_userspace::settings::napt::Filtering::EndpointIndependent.code();
    let mut answer = Packet::icmp(
        POOL,
        REMOTE,
        Icmp::error(3, 4, [0, 0, 0x04, 0xec], &sent.ip_bytes()[..28]),
    )
    .with_id(0);
    answer.ip.flags = 0;
    let want = with_macs(
        answer.frame(),
        input[6..12].try_into().unwrap(),
        input[..6].try_into().unwrap(),
    );
    let p = predict(&st, Hook::IngressTc, &input, &Keep, 0);
    assert_eq!(p.verdict, Verdict::Returned, "{:?}", p.path);
    assert_frame_eq("Fragmentation Needed", &p.output, &want);
    assert!(p.counters.contains(&(Counter::Nat64FragNeededSent, 1)));
    // XDP sends it back only out of a device that takes XDP frames.
    st.gateway.ingress_ifindex = EXT0;
    let p = predict(&st, Hook::IngressXdp, &input, &Keep, 0);
    assert_eq!(p.verdict, Verdict::Drop);
    st.gateway.xdp_targets = vec![EXT0];
    let p = predict(&st, Hook::IngressXdp, &input, &Keep, 0);
    assert_eq!(p.verdict, Verdict::Returned);
    assert_eq!(p.verdict.code(Hook::IngressXdp), crate::model::XDP_TX);
    // Without DF: split into IPv6 fragments on TC (the last one passed
    // on: a fragment header, offset past the first piece, M clear),
    // handed by XDP to the TC program behind it (passed as NAT44 left it,
    // the mark in the metadata before the frame).
    let mut no_df = sent.clone();
    no_df.ip.flags = 0;
    let p = predict(&st, Hook::IngressTc, &no_df.frame(), &Keep, 0);
    assert_eq!(p.verdict, Verdict::Translated, "{:?}", p.path);
    assert!(p.counters.contains(&(Counter::Nat64Fragmented, 1)));
    assert!(p.counters.contains(&(Counter::Nat64FragmentsSent, 2)));
    assert_eq!(p.output[ETH_HLEN + 6], 44, "a fragment header");
    let frag = u16::from_be_bytes([p.output[ETH_HLEN + 42], p.output[ETH_HLEN + 43]]);
    assert_eq!(frag, 1232, "offset 1232, M clear");
    let p = predict(&st, Hook::IngressXdp, &no_df.frame(), &Keep, 0);
    assert_eq!(p.verdict, Verdict::Pass, "{:?}", p.path);
    assert_eq!(
        p.output[..4],
        nat_common::nat64::XDP_HANDOFF_SPLIT.to_ne_bytes(),
        "the mark"
    );
    assert_eq!(p.output.len(), no_df.frame().len() + 4);
    assert!(
        !p.counters
            .iter()
            .any(|(c, _)| *c == Counter::Nat64DropTooBig)
    );
}
