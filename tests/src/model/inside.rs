//! The programs of the inside interfaces (README "Hairpinning", "Fast
//! path"): `xnat_inside_tc` hairpins what is addressed to one of our
//! public endpoints and, with the fast path on, sends established flows
//! out of the external interface; `xnat_inside_xdp` does only the latter,
//! and leaves hairpinned packets and fragments to the TC program.
//! Whatever neither takes passes untouched and uncounted; the TC program
//! hands IPv6 frames to NAT64 ([`super::nat64::outbound`]), the XDP one
//! (fast path on) to NAT64's fast path ([`super::nat64::outbound::xdp`]).

use super::Rule;
use crate::bpf::Hook;

use super::parse::{self, Ip};
use super::{Ctx, Verdict, fastpath, forward, hairpin, nat64};

pub fn decide(ctx: &mut Ctx, frame: &[u8]) -> Verdict {
    let Some(ip) = parse::outer(frame) else {
        if parse::ethertype(frame) == Some(parse::ETH_P_IPV6) {
            // The TC program hands IPv6 to NAT64; XDP (with the fast path
            // on) to NAT64's fast path.
            if ctx.hook == Hook::InsideTc {
                return nat64::outbound::decide(ctx, frame);
            }
            if !ctx.st.gateway.fast_path {
                ctx.note(Rule::InsideXdpNoFastPath);
                return Verdict::Pass;
            }
            return nat64::outbound::xdp(ctx, frame);
        }
        ctx.note(Rule::InsideNotIpv4);
        return Verdict::Pass;
    };
    match ctx.hook {
        Hook::InsideXdp => xdp(ctx, frame, &ip),
        _ => tc(ctx, frame, &ip),
    }
}

fn tc(ctx: &mut Ctx, frame: &[u8], ip: &Ip) -> Verdict {
    ctx.note(Rule::InsideTc);
    if hairpin::targets_us(&ctx.st, frame, ip) {
        if forward::ttl(frame, ip) > 1 {
            return hairpin::translate(ctx, frame);
        }
        // Untranslated: the stack answers time exceeded, quoting the
        // sender's own datagram.
        ctx.note(Rule::HairpinTtlToStack);
    }
    if !ctx.st.gateway.fast_path {
        ctx.note(Rule::InsideTcNoFastPath);
        return Verdict::Pass;
    }
    fastpath::outbound(ctx, frame, ip)
}

fn xdp(ctx: &mut Ctx, frame: &[u8], ip: &Ip) -> Verdict {
    ctx.note(Rule::InsideXdp);
    if !ctx.st.gateway.fast_path {
        ctx.note(Rule::InsideXdpNoFastPath);
        return Verdict::Pass;
    }
    if ip.later_fragment || ip.more_fragments {
        ctx.note(Rule::InsideXdpFragmentToTc);
        return Verdict::Pass;
    }
    if hairpin::targets_us(&ctx.st, frame, ip) {
        ctx.note(Rule::InsideXdpHairpinToTc);
        return Verdict::Pass;
    }
    fastpath::outbound(ctx, frame, ip)
}

#[cfg(test)]
mod tests {
    //! The model against frames built from scratch with the expected
    //! result: a hairpinned datagram through a port forward, one whose
    //! route is missing, one with TTL 1, and an established static flow on
    //! the fast path, in TC and XDP.

    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use nat_common::{Counter, EndpointKey, InsideEndpoint, MAPPING_FORWARD, Mapping};
    use nat_userspace::settings::napt::Filtering;

    use crate::bpf::Hook;
    use crate::frame::{Packet, Udp, assert_frame_eq};
    use crate::model::fib::{Device, Fib, Kind, Neighbour, Route};
    use crate::model::{Allocation, Oracle, State, Verdict, predict};
    use crate::napt_maps::{be, default_config};

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const S: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
    const PUB_S: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
    const POOL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const RTR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const SRV: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const MAC_IN0: [u8; 6] = [2, 0, 0, 0, 0x0a, 0xfe];
    const MAC_EXT: [u8; 6] = [2, 0, 0, 0, 0xe0, 0xfe];
    const MAC_B: [u8; 6] = [2, 0, 0, 0, 0x0a, 0x02];
    const MAC_RTR: [u8; 6] = [2, 0, 0, 0, 0xe0, 0x01];
    const IN0: u32 = 2;
    const EXT0: u32 = 3;

    /// Never asked: no frame here makes a mapping.
    struct NoAllocation;

    impl Oracle for NoAllocation {
        fn allocation(&self, _: &EndpointKey) -> Allocation {
            panic!("no mapping expected")
        }

        fn claimed_block(&self, _: u32) -> Option<nat_common::blocks::BlockKey> {
            panic!("no block expected")
        }
    }

    fn route(net: Ipv4Addr, len: u32, kind: Kind, dev: u32, via: Option<Ipv4Addr>) -> Route {
        Route {
            net: u32::from(net),
            len,
            kind,
            dev,
            via: via.map(u32::from),
            mtu_lock: None,
        }
    }

    fn device(name: &str, ifindex: u32, mac: [u8; 6], forwarding: bool) -> Device {
        Device {
            name: name.into(),
            ifindex,
            mac,
            mtu: 1500,
            forwarding,
        }
    }

    /// in0 (10.0.0.0/24, B resolved), ext0 (192.0.2.0/24 and the pool
    /// address, default via the router), A's mapping, B's UDP forward
    /// POOL:7000, S statically mapped; endpoint-independent filtering.
    fn state(fast_path: bool) -> State {
        let mut st = State::default();
        st.static_out.insert(be(S), be(PUB_S));
        st.static_in.insert(be(PUB_S), be(S));
        st.pool = vec![be(POOL)];
        st.internal = vec![(be(Ipv4Addr::new(10, 0, 0, 0)), 24)];
        st.config = default_config();
        st.config.pool_len = 1;
        st.config.filtering = Filtering::EndpointIndependent.code();
        let ep = |a: Ipv4Addr, port: u16| EndpointKey {
            addr: be(a),
            port: port.to_be(),
            proto: 17,
            _pad: 0,
        };
        st.napt_out.insert(
            ep(A, 5000),
            Mapping {
                addr: be(POOL),
                port: 5000u16.to_be(),
                ..Default::default()
            },
        );
        st.napt_in.insert(
            ep(POOL, 5000),
            InsideEndpoint {
                addr: be(A),
                port: 5000u16.to_be(),
                flags: 0,
            },
        );
        st.napt_out.insert(
            ep(B, 7000),
            Mapping {
                addr: be(POOL),
                port: 7000u16.to_be(),
                flags: MAPPING_FORWARD,
                ..Default::default()
            },
        );
        st.napt_in.insert(
            ep(POOL, 7000),
            InsideEndpoint {
                addr: be(B),
                port: 7000u16.to_be(),
                flags: MAPPING_FORWARD,
            },
        );
        st.gateway.fast_path = fast_path;
        st.gateway.ext_ifindex = EXT0;
        st.gateway.xdp_targets = vec![EXT0];
        st.gateway.inside_ifindex = IN0;
        st.gateway.fib = Arc::new(Fib {
            devices: vec![
                device("in0", IN0, MAC_IN0, true),
                device("ext0", EXT0, MAC_EXT, false),
            ],
            routes: vec![
                route(POOL, 32, Kind::NotForwarded, EXT0, None),
                route(Ipv4Addr::new(10, 0, 0, 0), 24, Kind::Unicast, IN0, None),
                route(Ipv4Addr::new(192, 0, 2, 0), 24, Kind::Unicast, EXT0, None),
                route(Ipv4Addr::UNSPECIFIED, 0, Kind::Unicast, EXT0, Some(RTR)),
            ],
            neighbours: vec![
                Neighbour {
                    dev: IN0,
                    addr: u32::from(B),
                    mac: MAC_B,
                },
                Neighbour {
                    dev: EXT0,
                    addr: u32::from(RTR),
                    mac: MAC_RTR,
                },
            ],
        });
        st
    }

    fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Packet {
        Packet::udp(src.0, dst.0, Udp::new(src.1, dst.1, b"hairpin"))
    }

    fn with_macs(mut f: Vec<u8>, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f
    }

    #[test]
    fn a_hairpinned_datagram_is_translated_both_ways_and_forwarded() {
        let st = state(false);
        let input = udp((A, 5000), (POOL, 7000)).frame();
        let p = predict(&st, Hook::InsideTc, &input, &NoAllocation, 0);
        assert_eq!(p.verdict, Verdict::Redirected, "{:?}", p.path);
        let want = udp((POOL, 5000), (B, 7000)).with_ttl(63).frame();
        assert_frame_eq("hairpinned", &p.output, &with_macs(want, MAC_B, MAC_IN0));
        assert!(p.counters.contains(&(Counter::HairpinTranslated, 1)));
        assert!(p.counters.contains(&(Counter::EgressTranslated, 1)));
        assert!(p.counters.contains(&(Counter::IngressTranslated, 1)));

        // TTL 1: untouched, to the stack.
        let input = udp((A, 5000), (POOL, 7000)).with_ttl(1).frame();
        let p = predict(&st, Hook::InsideTc, &input, &NoAllocation, 0);
        assert_eq!((p.verdict, &p.output), (Verdict::Pass, &input));
        assert!(p.counters.is_empty());
    }

    #[test]
    fn a_hairpinned_datagram_without_a_route_is_dropped_translated() {
        let mut st = state(false);
        Arc::make_mut(&mut st.gateway.fib).neighbours.clear();
        Arc::make_mut(&mut st.gateway.fib).routes.remove(1);
        let input = udp((A, 5000), (POOL, 7000)).frame();
        let p = predict(&st, Hook::InsideTc, &input, &NoAllocation, 0);
        // 10.0.0.2 now goes the default way, through the router: not
        // resolved... but forwarded all the same (TC); without any route
        // at all it is dropped.
        assert_eq!(p.verdict, Verdict::Redirected);
        Arc::make_mut(&mut st.gateway.fib).routes.clear();
        let p = predict(&st, Hook::InsideTc, &input, &NoAllocation, 0);
        assert_eq!(p.verdict, Verdict::Drop);
        assert_frame_eq("dropped", &p.output, &udp((POOL, 5000), (B, 7000)).frame());
    }

    #[test]
    fn an_established_static_flow_takes_the_fast_path() {
        let input = udp((S, 4000), (SRV, 53)).frame();
        let want = with_macs(
            udp((PUB_S, 4000), (SRV, 53)).with_ttl(63).frame(),
            MAC_RTR,
            MAC_EXT,
        );
        for hook in [Hook::InsideTc, Hook::InsideXdp] {
            let p = predict(&state(true), hook, &input, &NoAllocation, 0);
            assert_eq!(p.verdict, Verdict::Redirected, "{hook:?}");
            assert_frame_eq("fast path", &p.output, &want);
            assert!(p.counters.contains(&(Counter::FastPathOutbound, 1)));
            // Fast path off: untouched.
            let p = predict(&state(false), hook, &input, &NoAllocation, 0);
            assert_eq!((p.verdict, &p.output), (Verdict::Pass, &input), "{hook:?}");
        }
    }
}
