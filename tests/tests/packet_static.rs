//! Packet tests for static 1:1 NAT: the real compiled BPF programs run on
//! crafted frames through `BPF_PROG_TEST_RUN`.
//!
//! Every expected output is built from scratch with the translated addresses
//! (full checksums, see `xnat_tests::frame`) and compared with the program's
//! output byte for byte; every checksum of the output is also validated on
//! its own. Each ingress case runs through both the XDP and the TC ingress
//! program. Needs root: run with `cargo xtask test` (or as root,
//! `cargo test -p xnat-tests --test packet_static`).

use std::net::Ipv4Addr;

use nat_common::Counter;
use nat_common::stats::COUNTER_COUNT;
use xnat_tests::bpf::{Hook, Nat};
use xnat_tests::frame::{
    ETH_HLEN, Icmp, L4, Packet, Tcp, Udp, arp_request, assert_frame_eq, check_checksums, cut,
    ethernet, ethernet_vlan, ethertype, hex_dump, icmp, ipv6_udp, proto,
};

/// The inside host with a static mapping.
const PRIV: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Its public address.
const PUB: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// A server on the outside.
const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// A router between the gateway and the server (sends ICMP errors).
const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// An inside host without a mapping.
const OTHER_PRIV: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
/// A public address that is not mapped.
const OTHER_PUB: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);

const EGRESS: &[Hook] = &[Hook::EgressTc];
const INGRESS: &[Hook] = &Hook::INGRESS;

/// A fresh instance with the mapping PRIV <-> PUB.
fn nat() -> Nat {
    let mut n = Nat::load();
    n.add_static(PRIV, PUB);
    n
}

/// How the counters must move for one packet.
#[derive(Clone, Copy, Debug)]
enum Count {
    /// Translated: +1 packet, +`bytes` (IPv4 total length), nothing else.
    Translated { bytes: u64 },
    /// A translated ICMP error: as `Translated`, plus IcmpErrorsTranslated.
    IcmpError { bytes: u64 },
    /// Not ours: PassedNotOurs +1, nothing else.
    NotOurs,
    /// Malformed packet of a mapped host: the direction's malformed counter
    /// +1, nothing else.
    Malformed,
    /// Not translated, no further claim (which "untouched" counter moves is
    /// not specified).
    Untranslated,
}

/// What must come out.
#[derive(Clone, Copy, Debug)]
enum Want<'a> {
    /// Passed (XDP_PASS / TC_ACT_OK) with exactly these bytes.
    Pass(&'a [u8]),
    /// Dropped (XDP_DROP / TC_ACT_SHOT).
    Drop,
}

fn counter_checks(hook: Hook, count: Count) -> [Option<u64>; COUNTER_COUNT as usize] {
    let (tr, by, mal) = if hook == Hook::EgressTc {
        (
            Counter::EgressTranslated,
            Counter::EgressBytes,
            Counter::EgressDroppedMalformed,
        )
    } else {
        (
            Counter::IngressTranslated,
            Counter::IngressBytes,
            Counter::IngressPassedMalformed,
        )
    };
    let mut exp = [Some(0); COUNTER_COUNT as usize];
    match count {
        Count::Translated { bytes } => {
            exp[tr as usize] = Some(1);
            exp[by as usize] = Some(bytes);
        }
        Count::IcmpError { bytes } => {
            exp[tr as usize] = Some(1);
            exp[by as usize] = Some(bytes);
            exp[Counter::IcmpErrorsTranslated as usize] = Some(1);
        }
        Count::NotOurs => exp[Counter::PassedNotOurs as usize] = Some(1),
        Count::Malformed => exp[mal as usize] = Some(1),
        Count::Untranslated => {
            exp[Counter::PassedNotOurs as usize] = None;
            exp[Counter::EgressDroppedMalformed as usize] = None;
            exp[Counter::IngressPassedMalformed as usize] = None;
        }
    }
    exp
}

/// Runs `input` through `hook` on `nat` and checks verdict, output bytes,
/// output checksums (for translated packets) and counter deltas.
#[track_caller]
fn run_case(nat: &Nat, hook: Hook, what: &str, input: &[u8], want: Want, count: Count) {
    let before = nat.counters();
    let out = nat.run(hook, input);
    let after = nat.counters();
    let ctx = || format!("{what} via {hook:?}\n--- input:\n{}", hex_dump(input, None));

    let want_verdict = match want {
        Want::Pass(_) => hook.pass(),
        Want::Drop => hook.drop(),
    };
    assert_eq!(
        out.verdict,
        want_verdict,
        "verdict {} but expected {}; {}",
        hook.verdict_name(out.verdict),
        hook.verdict_name(want_verdict),
        ctx()
    );
    if let Want::Pass(expected) = want {
        assert_frame_eq(&ctx(), &out.data, expected);
        if matches!(count, Count::Translated { .. } | Count::IcmpError { .. })
            && let Err(e) = check_checksums(&out.data)
        {
            panic!("{}: output: {e}\n{}", ctx(), hex_dump(&out.data, None));
        }
    }
    for c in Counter::ALL {
        let delta = after[c as usize].wrapping_sub(before[c as usize]);
        if let Some(exp) = counter_checks(hook, count)[c as usize] {
            assert_eq!(
                delta,
                exp,
                "counter {} moved by {delta}, expected {exp}; {}",
                c.name(),
                ctx()
            );
        }
    }
}

/// Checks that `input` is translated to `expected` on every hook of
/// `hooks` (one instance for all, counters checked per packet).
#[track_caller]
fn translated(hooks: &[Hook], what: &str, input: &Packet, expected: &Packet) {
    let frame = input.frame();
    check_checksums(&frame).unwrap_or_else(|e| panic!("{what}: bad input frame: {e}"));
    translated_frames(
        hooks,
        what,
        &frame,
        &expected.frame(),
        count_for(input, input.total_len()),
    );
}

/// How a translated `input` moves the counters.
fn count_for(input: &Packet, bytes: u64) -> Count {
    let is_icmp_error = matches!(
        &input.l4,
        L4::Icmp(m)
            if matches!(m.typ, icmp::DEST_UNREACH | icmp::TIME_EXCEEDED | icmp::PARAM_PROBLEM)
    );
    if is_icmp_error {
        Count::IcmpError { bytes }
    } else {
        Count::Translated { bytes }
    }
}

/// [`translated`] on raw frames.
#[track_caller]
fn translated_frames(hooks: &[Hook], what: &str, input: &[u8], expected: &[u8], count: Count) {
    let nat = nat();
    for &hook in hooks {
        run_case(&nat, hook, what, input, Want::Pass(expected), count);
    }
}

/// Checks that `frame` passes through every hook of `hooks` unchanged.
#[track_caller]
fn untouched(hooks: &[Hook], what: &str, frame: &[u8], count: Count) {
    let nat = nat();
    for &hook in hooks {
        run_case(&nat, hook, what, frame, Want::Pass(frame), count);
    }
}

// ---------------------------------------------------------------- translations

/// Which way a [`Case`] crosses the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    /// Through the TC egress program: `packet(PRIV)` must leave as
    /// `packet(PUB)`.
    Egress,
    /// Through the XDP and the TC ingress programs: `packet(PUB)` must come
    /// in as `packet(PRIV)`.
    Ingress,
}

/// A packet of the mapped host that must be translated. `packet` builds it
/// around the mapped address, so the input and the expected output are the
/// same packet built from scratch with PRIV or PUB.
struct Case {
    /// The test this case was before the cases became a table (several
    /// cases may share one).
    test: &'static str,
    /// What the packet is.
    what: &'static str,
    dir: Dir,
    packet: fn(Ipv4Addr) -> Packet,
}

const fn egress(test: &'static str, what: &'static str, packet: fn(Ipv4Addr) -> Packet) -> Case {
    Case {
        test,
        what,
        dir: Dir::Egress,
        packet,
    }
}

const fn ingress(test: &'static str, what: &'static str, packet: fn(Ipv4Addr) -> Packet) -> Case {
    Case {
        test,
        what,
        dir: Dir::Ingress,
        packet,
    }
}

/// Packets of the mapped host whose translation is the same packet built
/// with the other address of the mapping (outside and, in ICMP errors,
/// inside the quote).
#[rustfmt::skip]
const TRANSLATIONS: &[Case] = &[
    // TCP
    egress("egress_tcp_syn", "TCP SYN", |a| Packet::tcp(a, REMOTE, Tcp::syn(43512, 443))),
    egress("egress_tcp_data", "TCP data",
        |a| Packet::tcp(a, REMOTE, Tcp::data(43512, 443, b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"))),
    ingress("ingress_tcp", "TCP SYN-ACK", |a| {
        let mut synack = Tcp::syn(443, 43512);
        synack.flags |= xnat_tests::frame::tcp_flags::ACK;
        synack.ack = 0x3a5c_7e02;
        Packet::tcp(REMOTE, a, synack)
    }),
    // Odd payload length: the checksum pads the last byte.
    ingress("ingress_tcp", "TCP data",
        |a| Packet::tcp(REMOTE, a, Tcp::data(443, 43512, b"HTTP/1.1 200 OK\r\n\r\nhello"))),
    // UDP
    egress("egress_udp", "UDP",
        |a| Packet::udp(a, REMOTE, Udp::new(53000, 53, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"))),
    ingress("ingress_udp", "UDP", |a| Packet::udp(REMOTE, a, Udp::new(53, 53000, b"answer!"))),
    egress("udp_zero_checksum_stays_zero", "UDP without checksum",
        |a| Packet::udp(a, REMOTE, Udp::new(5060, 5060, b"no checksum here").without_checksum())),
    ingress("udp_zero_checksum_stays_zero", "UDP without checksum",
        |a| Packet::udp(REMOTE, a, Udp::new(5060, 5060, b"nor here").without_checksum())),
    // ICMP queries
    egress("egress_icmp_echo_request", "ICMP echo request",
        |a| Packet::icmp(a, REMOTE, Icmp::echo_request(0x4d2, 1, b"abcdefghijklmnopqrstuvwabcdefghi"))),
    ingress("ingress_icmp_echo_reply", "ICMP echo reply",
        |a| Packet::icmp(REMOTE, a, Icmp::echo_reply(0x4d2, 1, b"abcdefghijklmnopqrstuvwabcdefghi"))),
    // ICMP errors to the mapped host. Routers quote the IP header + 8 bytes:
    // the UDP checksum is quoted, the datagram it covers is not (expected:
    // the translated datagram's checksum, i.e. what the incremental update
    // yields).
    ingress("ingress_time_exceeded_quoting_udp_probe", "time exceeded quoting a UDP probe (Some(28) bytes)",
        |a| Packet::icmp_error(ROUTER, a, icmp::TIME_EXCEEDED, 0, [0; 4], &udp_probe(a), Some(28))),
    ingress("ingress_time_exceeded_quoting_udp_probe", "time exceeded quoting a UDP probe (None bytes)",
        |a| Packet::icmp_error(ROUTER, a, icmp::TIME_EXCEEDED, 0, [0; 4], &udp_probe(a), None)),
    // traceroute -I / ping with a small TTL.
    ingress("ingress_time_exceeded_quoting_icmp_echo", "time exceeded quoting an echo request", |a| {
        let ping = Packet::icmp(a, REMOTE, Icmp::echo_request(0x77, 3, &[0x5a; 40])).with_ttl(1);
        Packet::icmp_error(ROUTER, a, icmp::TIME_EXCEEDED, 0, [0; 4], &ping, Some(28))
    }),
    ingress("ingress_port_unreachable_quoting_udp", "port unreachable quoting UDP with checksum", |a| {
        let dgram = Packet::udp(a, REMOTE, Udp::new(40000, 7777, b"is anybody there?"));
        Packet::icmp_error(REMOTE, a, icmp::DEST_UNREACH, icmp::PORT_UNREACH, [0; 4], &dgram, None)
    }),
    ingress("ingress_port_unreachable_quoting_udp", "port unreachable quoting UDP without checksum", |a| {
        let dgram = Packet::udp(a, REMOTE, Udp::new(40000, 7777, b"is anybody there?").without_checksum());
        Packet::icmp_error(REMOTE, a, icmp::DEST_UNREACH, icmp::PORT_UNREACH, [0; 4], &dgram, None)
    }),
    ingress("ingress_icmp_errors_quoting_tcp_in_full", "ICMP 3/1 quoting a TCP SYN in full", // host unreachable
        |a| Packet::icmp_error(ROUTER, a, icmp::DEST_UNREACH, 1, [0; 4], &syn_from(a), None)),
    ingress("ingress_icmp_errors_quoting_tcp_in_full", "ICMP 3/13 quoting a TCP SYN in full", // administratively prohibited
        |a| Packet::icmp_error(ROUTER, a, icmp::DEST_UNREACH, 13, [0; 4], &syn_from(a), None)),
    ingress("ingress_icmp_errors_quoting_tcp_in_full", "ICMP 12/0 quoting a TCP SYN in full", // pointer 20
        |a| Packet::icmp_error(ROUTER, a, icmp::PARAM_PROBLEM, 0, [20, 0, 0, 0], &syn_from(a), None)),
    ingress("ingress_icmp_errors_quoting_tcp_in_full", "ICMP 11/0 quoting a TCP SYN in full",
        |a| Packet::icmp_error(ROUTER, a, icmp::TIME_EXCEEDED, 0, [0; 4], &syn_from(a), None)),
    // The embedded header has options (IHL 6): its L4 starts at 24.
    ingress("ingress_icmp_error_quoting_packet_with_ip_options", "ICMP error quoting IPv4 with options", |a| {
        let dgram = Packet::udp(a, REMOTE, Udp::new(40001, 7777, b"opts")).with_ip_options(&OPT_IHL6);
        Packet::icmp_error(REMOTE, a, icmp::DEST_UNREACH, icmp::PORT_UNREACH, [0; 4], &dgram, None)
    }),
    // The quoted datagram is a later fragment: its first bytes look like a
    // UDP header with a checksum, but they are payload and stay as they are.
    ingress("icmp_error_quoting_a_later_fragment", "ICMP error quoting a later fragment",
        |a| Packet::icmp_error(ROUTER, a, icmp::TIME_EXCEEDED, 1, [0; 4], &fake_udp_fragment(a), None)),
    // ICMP errors from the mapped host: it got a datagram (already
    // translated to PRIV on the way in) for a closed port and answers with
    // an error quoting it.
    egress("egress_port_unreachable_from_private_host", "port unreachable from the private host (None bytes)",
        |a| Packet::icmp_error(a, REMOTE, icmp::DEST_UNREACH, icmp::PORT_UNREACH, [0; 4], &knock(a), None)),
    egress("egress_port_unreachable_from_private_host", "port unreachable from the private host (Some(28) bytes)",
        |a| Packet::icmp_error(a, REMOTE, icmp::DEST_UNREACH, icmp::PORT_UNREACH, [0; 4], &knock(a), Some(28))),
    egress("egress_icmp_error_quoting_tcp_8_bytes", "frag needed from the private host, 8 bytes of TCP", |a| {
        let seg = Packet::tcp(REMOTE, a, Tcp::data(443, 43512, &[0x11; 600]));
        Packet::icmp_error(a, REMOTE, icmp::DEST_UNREACH, icmp::FRAG_NEEDED, [0, 0, 0x02, 0x40], &seg, Some(28))
    }),
    // Other protocols.
    egress("gre_is_rewritten_like_any_protocol", "GRE", |a| Packet::raw(a, REMOTE, proto::GRE, &GRE)),
    ingress("gre_is_rewritten_like_any_protocol", "GRE", |a| Packet::raw(REMOTE, a, proto::GRE, &GRE)),
    // Protocol 59 ("no next header"), nothing after the IP header.
    egress("unknown_protocol_with_no_payload", "proto 59 without payload", |a| Packet::raw(a, REMOTE, 59, &[])),
    // IPv4 options.
    egress("ipv4_options_ihl6", "UDP, IHL 6",
        |a| Packet::udp(a, REMOTE, Udp::new(40000, 53, b"with options")).with_ip_options(&OPT_IHL6)),
    ingress("ipv4_options_ihl6", "TCP, IHL 6",
        |a| Packet::tcp(REMOTE, a, Tcp::data(443, 43512, b"options inbound")).with_ip_options(&OPT_IHL6)),
    egress("ipv4_options_ihl15", "TCP SYN, IHL 15",
        |a| Packet::tcp(a, REMOTE, Tcp::syn(43512, 443)).with_ip_options(&opt_ihl15())),
    ingress("ipv4_options_ihl15", "UDP, IHL 15",
        |a| Packet::udp(REMOTE, a, Udp::new(53, 40000, b"forty bytes of options")).with_ip_options(&opt_ihl15())),
    ingress("ipv4_options_ihl15", "ICMP error, outer IHL 15",
        |a| Packet::icmp_error(ROUTER, a, icmp::TIME_EXCEEDED, 0, [0; 4], &udp_probe(a), Some(28))
            .with_ip_options(&opt_ihl15())),
    // Later fragments: no L4 header in them, only the addresses change.
    // Second fragment at offset 96: raw UDP payload bytes, no UDP header.
    egress("later_fragment_only_address_changes", "later UDP fragment",
        |a| Packet::udp(a, REMOTE, Udp::new(40000, 7777, &[0x33; 200])).fragment(96, 1000, false)),
    ingress("later_fragment_only_address_changes", "later UDP fragment",
        |a| Packet::udp(REMOTE, a, Udp::new(40000, 7777, &[0x33; 200])).fragment(96, 1000, true)),
    // A later fragment whose bytes look exactly like a UDP header with a
    // valid checksum for the original addresses: they are payload, not a
    // header, and must be left alone.
    egress("later_fragment_only_address_changes", "later fragment, UDP-like bytes", |a| {
        let fake = Packet::udp(PRIV, REMOTE, Udp::new(1000, 53, b"fake")).l4_bytes();
        later_fragment(Packet::raw(a, REMOTE, proto::UDP, &fake), 8)
    }),
    ingress("later_fragment_only_address_changes", "later fragment, UDP-like bytes", |a| {
        let fake = Packet::udp(REMOTE, PUB, Udp::new(53, 1000, b"fake")).l4_bytes();
        later_fragment(Packet::raw(REMOTE, a, proto::UDP, &fake), 8)
    }),
    // 8 bytes of a TCP segment as a later fragment: too short for a TCP
    // header, but it is not one, so it is translated, not dropped.
    egress("later_fragment_with_short_l4_bytes", "later TCP fragment of 8 bytes",
        |a| Packet::tcp(a, REMOTE, Tcp::data(43512, 443, &[0x99; 100])).fragment(112, 8, false)),
    ingress("later_fragment_with_short_l4_bytes", "later TCP fragment of 8 bytes",
        |a| Packet::tcp(REMOTE, a, Tcp::data(43512, 443, &[0x99; 100])).fragment(112, 8, false)),
    // A later fragment of an ICMP message whose bytes look like an ICMP
    // error quoting a packet from PUB: nothing but the outer address may
    // change. Offset 185: 1480 bytes.
    ingress("later_fragment_of_icmp_is_not_parsed_as_icmp", "later ICMP fragment", |a| {
        let fake_error =
            Packet::icmp_error(ROUTER, PUB, icmp::TIME_EXCEEDED, 0, [0; 4], &udp_probe(PUB), None).l4_bytes();
        later_fragment(Packet::raw(REMOTE, a, proto::ICMP, &fake_error), 185)
    }),
    // First fragment (MF, offset 0) of a 300-byte UDP datagram / 500-byte
    // TCP segment: the checksum covers the whole datagram; the expected
    // bytes come from the whole datagram built with the translated address.
    egress("first_fragment_is_translated_normally", "first UDP fragment",
        |a| Packet::udp(a, REMOTE, Udp::new(40000, 7777, &[0x5c; 300])).fragment(0, 128, true)),
    ingress("first_fragment_is_translated_normally", "first UDP fragment",
        |a| Packet::udp(REMOTE, a, Udp::new(40000, 7777, &[0x5c; 300])).fragment(0, 128, true)),
    egress("first_fragment_is_translated_normally", "first TCP fragment",
        |a| Packet::tcp(a, REMOTE, Tcp::data(43512, 443, &[0x21; 500])).fragment(0, 200, true)),
    ingress("first_fragment_is_translated_normally", "first TCP fragment",
        |a| Packet::tcp(REMOTE, a, Tcp::data(43512, 443, &[0x21; 500])).fragment(0, 200, true)),
];

/// Checks every case of [`TRANSLATIONS`] going `dir`, each on a fresh
/// instance.
fn translations(dir: Dir) {
    for case in TRANSLATIONS.iter().filter(|c| c.dir == dir) {
        let (hooks, from, to) = match dir {
            Dir::Egress => (EGRESS, PRIV, PUB),
            Dir::Ingress => (INGRESS, PUB, PRIV),
        };
        let what = format!("{}: {}", case.test, case.what);
        translated(hooks, &what, &(case.packet)(from), &(case.packet)(to));
    }
}

#[test]
fn egress_translations() {
    translations(Dir::Egress);
}

#[test]
fn ingress_translations() {
    translations(Dir::Ingress);
}

/// A TCP SYN from `src` to the server.
fn syn_from(src: Ipv4Addr) -> Packet {
    Packet::tcp(src, REMOTE, Tcp::syn(43512, 443))
}

/// A datagram from the server to `dst`'s closed port.
fn knock(dst: Ipv4Addr) -> Packet {
    Packet::udp(REMOTE, dst, Udp::new(5353, 6000, b"knock knock"))
}

/// A later fragment from `src` whose bytes are those of a UDP header (with
/// a checksum valid for PUB) and payload.
fn fake_udp_fragment(src: Ipv4Addr) -> Packet {
    let fake = Packet::udp(PUB, REMOTE, Udp::new(1000, 53, b"fake")).l4_bytes();
    later_fragment(Packet::raw(src, REMOTE, proto::UDP, &fake), 64)
}

/// `p` as the last fragment at `frag_offset` (8-byte units) of a datagram.
fn later_fragment(mut p: Packet, frag_offset: u16) -> Packet {
    p.ip.flags = 0;
    p.ip.frag_offset = frag_offset;
    p
}

/// A GRE header (no flags, protocol 0x0800) and a few payload bytes.
const GRE: [u8; 10] = [0x00, 0x00, 0x08, 0x00, 0x45, 0x00, 0x00, 0x14, 0xde, 0xad];

#[test]
fn udp_zero_checksum_frames_carry_zero() {
    // Sanity for the "UDP without checksum" cases of TRANSLATIONS: the
    // frames really carry 0.
    let f = Packet::udp(PUB, REMOTE, Udp::new(1, 2, b"x").without_checksum()).frame();
    assert_eq!(f[ETH_HLEN + 26..ETH_HLEN + 28], [0, 0]);
}

// ---------------------------------------------------------------- UDP checksum corners

/// The first source port for which `make(port)`'s UDP checksum computes to
/// 0 and is therefore sent as 0xffff.
fn port_with_ffff_checksum(make: impl Fn(u16) -> Packet) -> u16 {
    (1024..=u16::MAX)
        .find(|&port| {
            let l4 = make(port).l4_bytes();
            l4[6..8] == [0xff, 0xff]
        })
        .expect("some port gives a UDP checksum of 0")
}

#[test]
fn udp_checksum_computing_to_zero_is_sent_as_ffff() {
    let payload = b"mangled zero";
    let sport = port_with_ffff_checksum(|s| Packet::udp(PUB, REMOTE, Udp::new(s, 4789, payload)));
    let input = Packet::udp(PRIV, REMOTE, Udp::new(sport, 4789, payload));
    let expected = Packet::udp(PUB, REMOTE, Udp::new(sport, 4789, payload));
    assert_ne!(input.l4_bytes()[6..8], [0xff, 0xff]);
    assert_eq!(expected.l4_bytes()[6..8], [0xff, 0xff]);
    translated(
        EGRESS,
        "UDP whose new checksum is 0xffff",
        &input,
        &expected,
    );

    let dport = port_with_ffff_checksum(|d| Packet::udp(REMOTE, PRIV, Udp::new(4789, d, payload)));
    let input = Packet::udp(REMOTE, PUB, Udp::new(4789, dport, payload));
    let expected = Packet::udp(REMOTE, PRIV, Udp::new(4789, dport, payload));
    assert_ne!(input.l4_bytes()[6..8], [0xff, 0xff]);
    translated(
        INGRESS,
        "UDP whose new checksum is 0xffff",
        &input,
        &expected,
    );
}

#[test]
fn udp_checksum_ffff_before_translation() {
    // The reverse corner: the input carries 0xffff (a computed 0), the
    // translated datagram has an ordinary checksum.
    let payload = b"was ffff";
    let sport = port_with_ffff_checksum(|s| Packet::udp(PRIV, REMOTE, Udp::new(s, 9999, payload)));
    let input = Packet::udp(PRIV, REMOTE, Udp::new(sport, 9999, payload));
    assert_eq!(input.l4_bytes()[6..8], [0xff, 0xff]);
    translated(
        EGRESS,
        "UDP with checksum 0xffff",
        &input,
        &Packet::udp(PUB, REMOTE, Udp::new(sport, 9999, payload)),
    );
}

// ---------------------------------------------------------------- ICMP errors

/// A traceroute probe as it left the gateway (already translated).
fn udp_probe(src: Ipv4Addr) -> Packet {
    Packet::udp(src, REMOTE, Udp::new(44123, 33435, &[0x40; 32]))
        .with_ttl(1)
        .with_id(0x7a11)
}

#[test]
fn ingress_frag_needed_quoting_tcp_8_bytes() {
    // Only 8 bytes of TCP are quoted: the TCP checksum is not among them and
    // must be left alone; the inner IP header and the ICMP checksum are
    // fixed. MTU 1400 in the "rest of header".
    let seg = |src| Packet::tcp(src, REMOTE, Tcp::data(43512, 443, &[0xab; 1200]));
    let mtu = [0, 0, 0x05, 0x78];
    let input = Packet::icmp_error(
        ROUTER,
        PUB,
        icmp::DEST_UNREACH,
        icmp::FRAG_NEEDED,
        mtu,
        &seg(PUB),
        Some(28),
    );
    let expected = Packet::icmp_error(
        ROUTER,
        PRIV,
        icmp::DEST_UNREACH,
        icmp::FRAG_NEEDED,
        mtu,
        &seg(PRIV),
        Some(28),
    );
    // The quoted TCP bytes are identical before and after.
    assert_eq!(
        input.l4_bytes()[8 + 20..],
        expected.l4_bytes()[8 + 20..],
        "oracle: quoted TCP bytes"
    );
    translated(
        INGRESS,
        "frag needed quoting 8 bytes of TCP",
        &input,
        &expected,
    );
}

// ---------------------------------------------------------------- other protocols, options

/// Router alert (4 bytes): IHL 6.
const OPT_IHL6: [u8; 4] = [0x94, 0x04, 0x00, 0x00];

/// 40 bytes of options: IHL 15. A timestamp option (type 68, 36 bytes,
/// pointer 5, overflow 0 flag 0 with 8 empty slots) and 4 NOPs.
fn opt_ihl15() -> Vec<u8> {
    let mut o = vec![0x44, 36, 5, 0];
    o.resize(36, 0);
    o.extend_from_slice(&[1, 1, 1, 1]);
    assert_eq!(o.len(), 40);
    o
}

#[test]
fn ethernet_padding_is_not_part_of_the_packet() {
    // Frames shorter than 60 bytes are padded on the wire; the padding
    // (here 0xee, not zeros, to be visible) is neither translated nor
    // counted, and the checksums only cover the datagram.
    let pad = |mut f: Vec<u8>| {
        f.resize(60, 0xee);
        f
    };
    let mut ack = Tcp::data(43512, 443, b"");
    ack.flags = xnat_tests::frame::tcp_flags::ACK;
    let cases: [(&[Hook], &str, Packet, Packet); 4] = [
        (
            EGRESS,
            "padded TCP ACK",
            Packet::tcp(PRIV, REMOTE, ack.clone()),
            Packet::tcp(PUB, REMOTE, ack.clone()),
        ),
        (
            INGRESS,
            "padded TCP ACK",
            Packet::tcp(REMOTE, PUB, ack.clone()),
            Packet::tcp(REMOTE, PRIV, ack),
        ),
        (
            EGRESS,
            "padded UDP",
            Packet::udp(PRIV, REMOTE, Udp::new(1000, 53, b"odd")),
            Packet::udp(PUB, REMOTE, Udp::new(1000, 53, b"odd")),
        ),
        (
            INGRESS,
            "padded ICMP echo reply",
            Packet::icmp(REMOTE, PUB, Icmp::echo_reply(9, 9, b"x")),
            Packet::icmp(REMOTE, PRIV, Icmp::echo_reply(9, 9, b"x")),
        ),
    ];
    for (hooks, what, input, expected) in cases {
        let count = count_for(&input, input.total_len());
        translated_frames(
            hooks,
            what,
            &pad(input.frame()),
            &pad(expected.frame()),
            count,
        );
    }
}

/// An ICMP error quoting `inner_in` cut at `quote` bytes, and the expected
/// translation whose quoted IPv4 header comes from `inner_out` while the
/// quoted L4 bytes are the original ones (used where a quoted checksum is
/// only partly present and so must be left alone).
fn error_with_mixed_quote(
    outer_in: (Ipv4Addr, Ipv4Addr),
    outer_out: (Ipv4Addr, Ipv4Addr),
    inner_in: &Packet,
    inner_out: &Packet,
    quote: usize,
) -> (Packet, Packet) {
    let (typ, code) = (icmp::DEST_UNREACH, icmp::PORT_UNREACH);
    let orig = inner_in.ip_bytes();
    let hlen = inner_in.ip.header_len();
    let mut q = inner_out.ip_bytes()[..hlen].to_vec();
    q.extend_from_slice(&orig[hlen..quote]);
    (
        Packet::icmp_error(
            outer_in.0,
            outer_in.1,
            typ,
            code,
            [0; 4],
            inner_in,
            Some(quote),
        ),
        Packet::icmp(outer_out.0, outer_out.1, Icmp::error(typ, code, [0; 4], &q)).with_error_ip(),
    )
}

#[test]
fn icmp_error_quote_boundaries() {
    // The quoted TCP checksum sits at bytes 16..18 of the segment, UDP's at
    // 6..8. A quote that holds all of it gets it fixed; one that ends in the
    // middle of it leaves the quoted L4 bytes alone. (Quotes shorter than 8
    // L4 bytes violate RFC 792 but must not break anything.)
    let tcp = |a| Packet::tcp(a, REMOTE, Tcp::syn(43512, 443));
    let udp = |a| Packet::udp(a, REMOTE, Udp::new(40000, 7777, b"quoted datagram"));
    for quote in [20 + 18, 20 + 19, 20 + 8] {
        for (what, mk) in [("TCP", &tcp as &dyn Fn(_) -> Packet), ("UDP", &udp)] {
            let typ = (icmp::DEST_UNREACH, icmp::PORT_UNREACH);
            translated(
                INGRESS,
                &format!("ICMP error quoting {quote} bytes of {what}"),
                &Packet::icmp_error(ROUTER, PUB, typ.0, typ.1, [0; 4], &mk(PUB), Some(quote)),
                &Packet::icmp_error(ROUTER, PRIV, typ.0, typ.1, [0; 4], &mk(PRIV), Some(quote)),
            );
        }
    }
    // Half of the TCP checksum quoted (37 bytes) / half of UDP's (27).
    for (what, inner_in, inner_out, quote) in [
        ("TCP", tcp(PUB), tcp(PRIV), 20 + 17),
        ("UDP", udp(PUB), udp(PRIV), 20 + 7),
    ] {
        let (input, expected) =
            error_with_mixed_quote((ROUTER, PUB), (ROUTER, PRIV), &inner_in, &inner_out, quote);
        translated(
            INGRESS,
            &format!("ICMP error quoting half of the {what} checksum"),
            &input,
            &expected,
        );
    }
    let tcp_in = |a| Packet::tcp(REMOTE, a, Tcp::syn(443, 43512));
    let (input, expected) = error_with_mixed_quote(
        (PRIV, REMOTE),
        (PUB, REMOTE),
        &tcp_in(PRIV),
        &tcp_in(PUB),
        37,
    );
    translated(
        EGRESS,
        "egress ICMP error quoting half of the TCP checksum",
        &input,
        &expected,
    );
}

#[test]
fn icmp_error_about_someone_else() {
    // An ICMP error to PUB quoting a packet that PUB did not send (the
    // quoted source is not a mapped address): xnat's behaviour is to
    // translate the outer destination only; the ICMP message is left as it
    // is (ICMP has no pseudo-header). It is not counted as a translated ICMP
    // error.
    let other = Packet::udp(OTHER_PUB, REMOTE, Udp::new(1, 2, b"not from PUB"));
    let err = |a| {
        Packet::icmp_error(
            ROUTER,
            a,
            icmp::DEST_UNREACH,
            icmp::PORT_UNREACH,
            [0; 4],
            &other,
            None,
        )
    };
    let input = err(PUB);
    translated_frames(
        INGRESS,
        "ICMP error to PUB quoting another host's packet",
        &input.frame(),
        &err(PRIV).frame(),
        Count::Translated {
            bytes: input.total_len(),
        },
    );
}

// ---------------------------------------------------------------- not ours

#[test]
fn unrelated_ipv4_is_untouched() {
    let udp = || Udp::new(1000, 2000, b"not ours");
    let cases: [(&[Hook], &str, Packet); 5] = [
        (
            EGRESS,
            "unmapped source",
            Packet::udp(OTHER_PRIV, REMOTE, udp()),
        ),
        // A mapped address as destination on egress is not translated.
        (
            EGRESS,
            "mapped destination on egress",
            Packet::udp(REMOTE, PRIV, udp()),
        ),
        (
            EGRESS,
            "public address as source on egress",
            Packet::udp(PUB, REMOTE, udp()),
        ),
        (
            INGRESS,
            "unmapped destination",
            Packet::udp(REMOTE, OTHER_PUB, udp()),
        ),
        // A mapped public address as source on ingress is not translated.
        (
            INGRESS,
            "mapped public source on ingress",
            Packet::udp(PUB, REMOTE, udp()),
        ),
    ];
    for (hooks, what, p) in cases {
        untouched(hooks, what, &p.frame(), Count::NotOurs);
    }
    // An ICMP error to an unmapped address that quotes a packet from PUB.
    let err = Packet::icmp_error(
        ROUTER,
        OTHER_PUB,
        icmp::TIME_EXCEEDED,
        0,
        [0; 4],
        &udp_probe(PUB),
        Some(28),
    );
    untouched(
        INGRESS,
        "ICMP error to an unmapped address",
        &err.frame(),
        Count::NotOurs,
    );
}

#[test]
fn non_ipv4_is_untouched() {
    // 40+ bytes: the kernel refuses skb test runs of an IPv6-ethertype frame
    // shorter than an IPv6 header.
    let v4 = Packet::udp(PRIV, REMOTE, Udp::new(1, 2, b"tagged, long enough")).ip_bytes();
    let v4_in = Packet::udp(REMOTE, PUB, Udp::new(1, 2, b"tagged, long enough")).ip_bytes();
    let cases = [
        ("ARP request for PUB", arp_request(REMOTE, PUB)),
        ("ARP request from PRIV", arp_request(PRIV, REMOTE)),
        ("IPv6", ipv6_udp(b"six")),
        (
            "VLAN-tagged IPv4 from PRIV",
            ethernet_vlan(10, ethertype::IPV4, &v4),
        ),
        (
            "VLAN-tagged IPv4 to PUB",
            ethernet_vlan(10, ethertype::IPV4, &v4_in),
        ),
        // Ethertype IPv6 carrying what looks like IPv4 from PRIV / to PUB.
        (
            "IPv4 bytes under ethertype IPv6",
            ethernet(ethertype::IPV6, &v4),
        ),
        (
            "IPv4 bytes under ethertype IPv6",
            ethernet(ethertype::IPV6, &v4_in),
        ),
        // Ethernet header alone with ethertype ARP.
        ("bare Ethernet header", ethernet(ethertype::ARP, &[])),
    ];
    for (what, frame) in cases {
        untouched(EGRESS, what, &frame, Count::NotOurs);
        untouched(INGRESS, what, &frame, Count::NotOurs);
    }
}

#[test]
fn ip_version_6_under_ipv4_ethertype() {
    // Version nibble 6 in an IPv4-ethertype frame: not an IPv4 packet, so
    // nothing to translate. Outbound, its source field holds a mapped
    // private address, which must not leave: dropped. Inbound: untouched.
    let mut f = Packet::udp(PRIV, REMOTE, Udp::new(1, 2, b"v")).frame();
    f[ETH_HLEN] = 0x65;
    let nat = nat();
    for &hook in EGRESS {
        run_case(
            &nat,
            hook,
            "version 6 under ethertype IPv4",
            &f,
            Want::Drop,
            Count::Malformed,
        );
    }
    let mut f = Packet::udp(REMOTE, PUB, Udp::new(1, 2, b"v")).frame();
    f[ETH_HLEN] = 0x65;
    untouched(
        INGRESS,
        "version 6 under ethertype IPv4",
        &f,
        Count::Untranslated,
    );
}

// ---------------------------------------------------------------- truncation

#[test]
fn frame_shorter_than_ethernet_header() {
    // The kernel refuses test runs with fewer than ETH_HLEN bytes; if it
    // ever accepts one, the program must pass it untouched.
    let nat = nat();
    let f = cut(&Packet::udp(PRIV, REMOTE, Udp::new(1, 2, b"")).frame(), 13);
    for hook in [Hook::EgressTc, Hook::IngressXdp, Hook::IngressTc] {
        match nat.try_run(hook, &f) {
            Err(_) => {}
            Ok(out) => {
                assert_eq!(out.verdict, hook.pass(), "13-byte frame via {hook:?}");
                assert_frame_eq(&format!("13-byte frame via {hook:?}"), &out.data, &f);
            }
        }
    }
}

/// Checks that `frame` (cut inside its IPv4 header) passes every hook of
/// `hooks` untouched. The kernel refuses skb test runs (the TC programs) of
/// an IPv4-ethertype frame shorter than a minimal IPv4 header with EINVAL,
/// so for those the TC run may be refused; the XDP run must happen, and
/// longer frames must run everywhere.
#[track_caller]
fn cut_header_untouched(hooks: &[Hook], what: &str, frame: &[u8]) {
    let nat = nat();
    for &hook in hooks {
        if hook != Hook::IngressXdp
            && frame.len() < ETH_HLEN + 20
            && let Err(e) = nat.try_run(hook, frame)
        {
            let refused = format!("{e:#}").contains("os error 22");
            assert!(refused, "{what} via {hook:?}: {e:#}");
            continue;
        }
        run_case(
            &nat,
            hook,
            what,
            frame,
            Want::Pass(frame),
            Count::Untranslated,
        );
    }
}

#[test]
fn cut_inside_ipv4_header_is_passed_untouched() {
    let out = Packet::udp(PRIV, REMOTE, Udp::new(1000, 53, b"query")).frame();
    let inb = Packet::udp(REMOTE, PUB, Udp::new(53, 1000, b"reply")).frame();
    for len in [
        ETH_HLEN,
        ETH_HLEN + 1,
        ETH_HLEN + 10,
        ETH_HLEN + 16,
        ETH_HLEN + 19,
    ] {
        cut_header_untouched(
            EGRESS,
            &format!("egress frame cut at {len}"),
            &cut(&out, len),
        );
        cut_header_untouched(
            INGRESS,
            &format!("ingress frame cut at {len}"),
            &cut(&inb, len),
        );
    }
}

#[test]
fn cut_inside_ipv4_options() {
    // Both addresses present, but the options (IHL 15) are cut: outbound,
    // the mapped private source must not leave (dropped); inbound it is
    // passed untouched.
    let out = Packet::udp(PRIV, REMOTE, Udp::new(1000, 53, b"query"))
        .with_ip_options(&opt_ihl15())
        .frame();
    let inb = Packet::udp(REMOTE, PUB, Udp::new(53, 1000, b"reply"))
        .with_ip_options(&opt_ihl15())
        .frame();
    let nat = nat();
    for len in [ETH_HLEN + 20, ETH_HLEN + 40, ETH_HLEN + 59] {
        for &hook in EGRESS {
            run_case(
                &nat,
                hook,
                &format!("egress IHL 15 cut at {len}"),
                &cut(&out, len),
                Want::Drop,
                Count::Malformed,
            );
        }
        cut_header_untouched(
            INGRESS,
            &format!("ingress IHL 15 cut at {len}"),
            &cut(&inb, len),
        );
    }
}

/// A packet of the mapped host cut at `len`: ingress passes it untouched
/// (IngressPassedMalformed), egress drops it (EgressDroppedMalformed).
#[track_caller]
fn malformed_both_ways(what: &str, outbound: &Packet, inbound: &Packet, len: usize) {
    let nat = nat();
    let f = cut(&outbound.frame(), len);
    run_case(
        &nat,
        Hook::EgressTc,
        &format!("{what}, cut at {len}"),
        &f,
        Want::Drop,
        Count::Malformed,
    );
    let f = cut(&inbound.frame(), len);
    for hook in Hook::INGRESS {
        run_case(
            &nat,
            hook,
            &format!("{what}, cut at {len}"),
            &f,
            Want::Pass(&f),
            Count::Malformed,
        );
    }
}

#[test]
fn cut_inside_udp_header() {
    let out = Packet::udp(PRIV, REMOTE, Udp::new(1000, 53, b"query"));
    let inb = Packet::udp(REMOTE, PUB, Udp::new(53, 1000, b"reply"));
    for l4 in [0, 4, 7] {
        malformed_both_ways("UDP", &out, &inb, ETH_HLEN + 20 + l4);
    }
    // With IP options the UDP header starts later.
    let out = out.with_ip_options(&OPT_IHL6);
    let inb = inb.with_ip_options(&OPT_IHL6);
    malformed_both_ways("UDP after IHL 6", &out, &inb, ETH_HLEN + 24 + 7);
}

#[test]
fn cut_inside_tcp_header() {
    let out = Packet::tcp(PRIV, REMOTE, Tcp::syn(43512, 443));
    let inb = Packet::tcp(REMOTE, PUB, Tcp::syn(443, 43512));
    for l4 in [0, 10, 16, 17] {
        malformed_both_ways("TCP", &out, &inb, ETH_HLEN + 20 + l4);
    }
}

#[test]
fn cut_inside_icmp_error_inner_header() {
    // The ICMP error's quoted IPv4 header is cut: the embedded address
    // cannot be translated, so the packet must not be half-translated.
    let out = Packet::icmp_error(
        PRIV,
        REMOTE,
        icmp::DEST_UNREACH,
        icmp::PORT_UNREACH,
        [0; 4],
        &Packet::udp(REMOTE, PRIV, Udp::new(5353, 6000, b"knock knock")),
        None,
    );
    let inb = Packet::icmp_error(
        ROUTER,
        PUB,
        icmp::TIME_EXCEEDED,
        0,
        [0; 4],
        &udp_probe(PUB),
        Some(28),
    );
    // Outer IP (20) + ICMP header (8) + 0 / 10 / 19 bytes of the inner
    // header.
    for inner in [0, 10, 19] {
        malformed_both_ways("ICMP error", &out, &inb, ETH_HLEN + 28 + inner);
    }
}

// ---------------------------------------------------------------- counters

#[test]
fn counters_add_up() {
    let nat = nat();
    let mut sent = [0u64; COUNTER_COUNT as usize];
    let mut expect = |c: Counter, v: u64| sent[c as usize] += v;

    let egress = [
        Packet::tcp(PRIV, REMOTE, Tcp::syn(43512, 443)),
        Packet::udp(PRIV, REMOTE, Udp::new(1000, 53, &[1; 77])),
        Packet::icmp(PRIV, REMOTE, Icmp::echo_request(1, 1, &[2; 56])),
    ];
    for p in &egress {
        assert_eq!(
            nat.run(Hook::EgressTc, &p.frame()).verdict,
            Hook::EgressTc.pass()
        );
        expect(Counter::EgressTranslated, 1);
        expect(Counter::EgressBytes, p.total_len());
    }
    let ingress = [
        Packet::udp(REMOTE, PUB, Udp::new(53, 1000, &[3; 99])),
        Packet::tcp(REMOTE, PUB, Tcp::data(443, 43512, &[4; 1000])),
    ];
    for hook in Hook::INGRESS {
        for p in &ingress {
            assert_eq!(nat.run(hook, &p.frame()).verdict, hook.pass());
            expect(Counter::IngressTranslated, 1);
            expect(Counter::IngressBytes, p.total_len());
        }
    }
    let err = Packet::icmp_error(
        ROUTER,
        PUB,
        icmp::TIME_EXCEEDED,
        0,
        [0; 4],
        &udp_probe(PUB),
        None,
    );
    assert_eq!(
        nat.run(Hook::IngressTc, &err.frame()).verdict,
        Hook::IngressTc.pass()
    );
    expect(Counter::IngressTranslated, 1);
    expect(Counter::IngressBytes, err.total_len());
    expect(Counter::IcmpErrorsTranslated, 1);

    for _ in 0..3 {
        nat.run(Hook::EgressTc, &arp_request(PRIV, REMOTE));
        expect(Counter::PassedNotOurs, 1);
    }
    nat.run(
        Hook::IngressXdp,
        &Packet::udp(REMOTE, OTHER_PUB, Udp::new(1, 2, b"")).frame(),
    );
    expect(Counter::PassedNotOurs, 1);

    let cut_udp = cut(
        &Packet::udp(PRIV, REMOTE, Udp::new(1, 2, b"x")).frame(),
        ETH_HLEN + 24,
    );
    assert_eq!(
        nat.run(Hook::EgressTc, &cut_udp).verdict,
        Hook::EgressTc.drop()
    );
    expect(Counter::EgressDroppedMalformed, 1);
    let cut_udp = cut(
        &Packet::udp(REMOTE, PUB, Udp::new(1, 2, b"x")).frame(),
        ETH_HLEN + 24,
    );
    assert_eq!(
        nat.run(Hook::IngressXdp, &cut_udp).verdict,
        Hook::IngressXdp.pass()
    );
    expect(Counter::IngressPassedMalformed, 1);

    let got = nat.counters();
    for c in Counter::ALL {
        assert_eq!(got[c as usize], sent[c as usize], "counter {}", c.name());
    }
}

#[test]
fn instances_do_not_share_maps() {
    // A second instance without the mapping leaves the packet alone: the
    // maps are per instance (nothing pinned), so parallel tests are
    // independent.
    let _mapped = nat();
    let bare = Nat::load();
    let f = Packet::udp(PRIV, REMOTE, Udp::new(1, 2, b"alone")).frame();
    run_case(
        &bare,
        Hook::EgressTc,
        "unmapped instance",
        &f,
        Want::Pass(&f),
        Count::NotOurs,
    );
}
