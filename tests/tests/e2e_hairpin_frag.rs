//! End-to-end tests of hairpinning and IPv4 fragments (issue 7; RFC 4787
//! REQ-9 and REQ-14, RFC 5382 REQ-8, RFC 5508 REQ-7) in network namespaces
//! with real sockets and real tools; topology in
//! [`xnat_tests::hairpin_topo`].
//!
//! Hairpinning: inside hosts reach each other through their public
//! endpoints, as an outside host would, both on the same inside segment (A
//! and B behind the bridge int0: the packet leaves through the interface it
//! came in on) and across inside interfaces (A behind int0, C/D behind
//! int1): UDP through dynamic mappings in every filtering mode, TCP through
//! port forwards, ICMP echo through static mappings, and hairpinned ICMP
//! errors (ECONNREFUSED on a connected UDP socket).
//!
//! Fragments: 4000-byte UDP datagrams and 3000-byte pings cross the NAT
//! both ways over MTU-1500 links; fragments crafted with a raw socket and
//! sent in reverse order still arrive reassembled; a flood of stray
//! fragments leaves memory bounded, is counted, and normal traffic still
//! works afterwards.
//!
//! Offloads stay at their defaults. In XDP ingress mode the server — the
//! outside peer of the NAT's external veth — turns tx checksum offload off
//! so its frames carry complete checksums like a wire (DESIGN §2); see
//! `HairpinTopo::new`. Every test runs in TC ingress mode; hairpinning and
//! in-order fragments run in XDP mode too. Holding out-of-order fragments
//! is TC-only by design, so the reverse-order and flood tests run in TC
//! mode.
//!
//! Many checks are collected rather than asserted one by one ([`Findings`]),
//! so one run reports every broken case of a test, not just the first.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use xnat_tests::frame::{self, Udp};
use xnat_tests::hairpin_topo::{
    Filtering, HOST_A, HOST_B, HOST_C, HOST_D, HOST_E, HairpinTopo, POOL_ADDR, PUB_C, PUB_E, RawIp,
    SRV, XorShift, expect_datagram, frag_memory, show_flows, snmp, sysctl_u64, tcp_echo_within,
    try_deliver, udp_bind, udp_error_within, v4,
};
use xnat_tests::netns::{Netns, describe};
use xnat_tests::topology::{Ingress, Topology};
use xnat_tests::traffic::{payload, sa, udp_exchange};

/// How long a datagram that must *not* arrive is waited for.
const QUIET: Duration = Duration::from_millis(700);
/// Per attempt, for a datagram that must arrive.
const ATTEMPT: Duration = Duration::from_millis(700);

/// Failures collected during a test; [`Findings::finish`] panics with all
/// of them.
struct Findings {
    what: String,
    failures: Vec<String>,
}

impl Findings {
    fn new(what: impl Into<String>) -> Self {
        Findings {
            what: what.into(),
            failures: Vec::new(),
        }
    }

    fn fail(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        eprintln!("FAIL: {msg}");
        self.failures.push(msg);
    }

    fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.fail(msg());
        }
    }

    /// Runs `f`, turning a panic into a finding named `step`.
    fn step<R>(&mut self, step: &str, f: impl FnOnce() -> R) -> Option<R> {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => Some(r),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                self.fail(format!("{step}: {msg}"));
                None
            }
        }
    }

    fn finish(self, t: &HairpinTopo) {
        if !self.failures.is_empty() {
            panic!(
                "{}: {} failure(s):\n- {}\ncounters: {:?}\nflows:\n{}",
                self.what,
                self.failures.len(),
                self.failures.join("\n- "),
                t.counters()
                    .into_iter()
                    .filter(|(_, v)| *v != 0)
                    .collect::<Vec<_>>(),
                show_flows(&t.flows())
            );
        }
    }
}

/// Runs `ping ARGS` in `ns`; Ok(()) if every echo was answered.
/// Replies whose data differs from the request ("wrong data byte") or
/// duplicates count as failures too.
fn ping(ns: &Netns, args: &[&str]) -> Result<(), String> {
    let mut v = vec!["ping", "-n"];
    v.extend_from_slice(args);
    let out = ns.run(Duration::from_secs(15), &v);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let clean = !stdout.contains("wrong data") && !stdout.contains("DUP!");
    if out.status.success() && clean {
        Ok(())
    } else {
        Err(format!(
            "`{}` in {} failed ({}): {}{}",
            v.join(" "),
            ns.name(),
            describe(out.status),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The MTU of `dev` in `ns` (from `ip -o link`: /sys/class/net shows the
/// host's devices under nsenter).
fn link_mtu(ns: &Netns, dev: &str) -> u32 {
    let out = ns.ip(&["-o", "link", "show", "dev", dev]);
    let w: Vec<&str> = out.split_whitespace().collect();
    let i = w
        .iter()
        .position(|x| *x == "mtu")
        .unwrap_or_else(|| panic!("no mtu in {out:?}"));
    w[i + 1].parse().unwrap()
}

/// A counter delta helper: counter `name` now, 0 if the build lacks it.
fn counter_or_zero(t: &HairpinTopo, name: &str) -> u64 {
    t.counters().get(name).copied().unwrap_or(0)
}

// ---------------------------------------------------------------- hairpinning

/// Two inside hosts and the ports they use for one filtering walk.
struct Pair<'a> {
    what: &'static str,
    a_ns: &'a Netns,
    a: SocketAddrV4,
    /// A second socket of A (another public port of the same address).
    a2: SocketAddrV4,
    b_ns: &'a Netns,
    b: SocketAddrV4,
    /// The server port B talks to first, to get its mapping.
    srv_port: u16,
}

/// RFC 4787 §5 filtering of hairpinned UDP: B gets a mapping by talking to
/// the server; A (through its own, new mapping) sends to B's public
/// endpoint: admitted only in endpoint-independent mode. After B sent to
/// A's public endpoint, A is admitted in every mode, and a second endpoint
/// of A (same public address, other port) in all but address-and-port mode.
/// Whoever receives sees the sender's public endpoint (REQ-9a).
fn udp_filtering(t: &HairpinTopo, f: &mut Findings, p: &Pair, filtering: Filtering) {
    let w = p.what;
    let server = udp_bind(&t.srv, sa(SRV, p.srv_port));
    let b = udp_bind(p.b_ns, p.b);
    let a1 = udp_bind(p.a_ns, p.a);
    let a2 = udp_bind(p.a_ns, p.a2);

    // B's mapping, made the ordinary way.
    let Some(seen) = try_deliver(&b, sa(SRV, p.srv_port), &server, b"B to server", 5, ATTEMPT)
    else {
        f.fail(format!("{w}: B {} never reached the server", p.b));
        return;
    };
    let b_pub = t.public_of("udp", p.b);
    f.check(seen == b_pub && *b_pub.ip() == POOL_ADDR, || {
        format!("{w}: server saw B as {seen}, flows say B's public endpoint is {b_pub}")
    });

    // 1. A → B's public endpoint before B ever sent to A's public address.
    let refused_before = t.counter("drop_filtered_inbound");
    let admitted = filtering == Filtering::EndpointIndependent;
    let msg = format!("{w}: A1 to B, first").into_bytes();
    let got = try_deliver(&a1, b_pub, &b, &msg, if admitted { 4 } else { 1 }, QUIET);
    let a1_pub = t.public_of("udp", p.a);
    f.check(*a1_pub.ip() == POOL_ADDR, || {
        format!(
            "{w}: A1 {} public endpoint {a1_pub} is not on the pool",
            p.a
        )
    });
    match (admitted, got) {
        (true, Some(src)) => f.check(src == a1_pub, || {
            format!("{w}: B saw the hairpinned datagram from {src}, not A1's public {a1_pub} (REQ-9a)")
        }),
        (true, None) => f.fail(format!(
            "{w}: {filtering:?}: A1 {} → B's public {b_pub}: never arrived at B",
            p.a
        )),
        (false, Some(src)) => f.fail(format!(
            "{w}: {filtering:?}: A1 → B's public {b_pub} arrived (from {src}) although B never sent to A's public address"
        )),
        (false, None) => {
            let refused = t.counter("drop_filtered_inbound");
            f.check(refused > refused_before, || {
                format!("{w}: A1 → B refused, but drop_filtered_inbound stayed {refused}")
            });
        }
    }

    // 2. B → A1's public endpoint: A1 sent to B's public endpoint, so every
    //    mode admits it.
    let msg = format!("{w}: B to A1").into_bytes();
    match try_deliver(&b, a1_pub, &a1, &msg, 4, ATTEMPT) {
        Some(src) => f.check(src == b_pub, || {
            format!("{w}: A1 saw B's datagram from {src}, not B's public {b_pub} (REQ-9a)")
        }),
        None => f.fail(format!(
            "{w}: {filtering:?}: B → A1's public {a1_pub} never arrived although A1 had sent to {b_pub}"
        )),
    }

    // 3. A1 → B again: B has now sent to A1's public endpoint.
    let msg = format!("{w}: A1 to B, second").into_bytes();
    match try_deliver(&a1, b_pub, &b, &msg, 4, ATTEMPT) {
        Some(src) => f.check(src == a1_pub, || {
            format!("{w}: B saw A1 from {src}, not {a1_pub} (REQ-9a)")
        }),
        None => f.fail(format!(
            "{w}: {filtering:?}: A1 → B's public {b_pub} refused after B had sent to A1's public {a1_pub}"
        )),
    }

    // 4. A2 (same public address, another port) → B.
    let refused_before = t.counter("drop_filtered_inbound");
    let admitted = filtering != Filtering::AddressAndPort;
    let msg = format!("{w}: A2 to B").into_bytes();
    let got = try_deliver(&a2, b_pub, &b, &msg, if admitted { 4 } else { 1 }, QUIET);
    let a2_pub = t.public_of("udp", p.a2);
    match (admitted, got) {
        (true, Some(src)) => f.check(src == a2_pub, || {
            format!("{w}: B saw A2 from {src}, not {a2_pub} (REQ-9a)")
        }),
        (true, None) => f.fail(format!(
            "{w}: {filtering:?}: A2 {} → B's public {b_pub} never arrived although B had sent to {}",
            p.a2,
            a1_pub.ip()
        )),
        (false, Some(src)) => f.fail(format!(
            "{w}: {filtering:?}: A2 ({a2_pub}) → B arrived (from {src}) although B only sent to {a1_pub}"
        )),
        (false, None) => {
            let refused = t.counter("drop_filtered_inbound");
            f.check(refused > refused_before, || {
                format!("{w}: A2 → B refused, but drop_filtered_inbound stayed {refused}")
            });
        }
    }
}

/// TCP through a port forward to an inside host, from another inside host:
/// a short exchange (one segment each way) and a bulk one (GSO-sized
/// segments through the hairpin).
fn tcp_forward(
    t: &HairpinTopo,
    f: &mut Findings,
    what: &str,
    target_ns: &Netns,
    inside: SocketAddrV4,
    public_port: u16,
) {
    let public = sa(POOL_ADDR, public_port);
    t.xnat_ok(&[
        "forward",
        "add",
        "tcp",
        &public.to_string(),
        &inside.to_string(),
    ]);
    // One segment each way, then a bulk transfer (the sockets hand the
    // veth GSO super-packets of up to 64 KiB, as any local sender does).
    for len in [1000usize, 1_000_000] {
        let step = format!("{what}: TCP echo of {len} bytes A → forward {public} → {inside}");
        let seen =
            match tcp_echo_within(&t.a, target_ns, inside, public, len, Duration::from_secs(5)) {
                Ok(seen) => seen,
                Err(e) => {
                    f.fail(format!("{step}: {e}"));
                    continue;
                }
            };
        let a_pub = t.public_of("tcp", seen.client_local);
        f.check(seen.server_saw_peer == a_pub, || {
            format!(
                "{step}: the server saw {}, not A's public {a_pub} (REQ-9a)",
                seen.server_saw_peer
            )
        });
        f.check(seen.client_peer == public, || {
            format!("{step}: A's peer is {}", seen.client_peer)
        });
    }
}

/// ICMP echo to a static public address, hairpinned; the target sees the
/// sender's public address.
fn ping_static(
    f: &mut Findings,
    what: &str,
    from: &Netns,
    from_pub: Ipv4Addr,
    target_ns: &Netns,
    target: Ipv4Addr,
    target_pub: Ipv4Addr,
) {
    let filter = format!("icmp[icmptype] == icmp-echo and src {from_pub} and dst {target}");
    let mut dump = Topology::tcpdump(target_ns, "eth0", 1, &filter);
    if let Err(e) = ping(
        from,
        &["-c", "3", "-i", "0.2", "-W", "2", &target_pub.to_string()],
    ) {
        f.fail(format!("{what}: {e}"));
        return;
    }
    match dump.wait_exit_within(Duration::from_secs(3)) {
        Some(_) => {}
        None => f.fail(format!(
            "{what}: the target {target} never saw an echo request from {from_pub} ({filter}): {}",
            dump.stdout()
        )),
    }
}

/// A connected UDP socket of A sends to a closed port behind a public
/// endpoint: the target host answers port unreachable, which must be
/// hairpinned back (ECONNREFUSED), and must come from the target, not from
/// the gateway.
fn icmp_error(
    t: &HairpinTopo,
    f: &mut Findings,
    what: &str,
    local: SocketAddrV4,
    to: SocketAddrV4,
    target_ns: &Netns,
) {
    let target_before = snmp(target_ns, "Icmp", "OutDestUnreachs");
    let gw_before = snmp(&t.nat, "Icmp", "OutDestUnreachs");
    let translated_before = t.counter("icmp_errors_translated");
    let sock = udp_bind(&t.a, local);
    sock.connect(to).expect("connect");
    let err = udp_error_within(&sock, b"anyone there?", Duration::from_secs(4));
    match err {
        Some(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {}
        Some(e) => f.fail(format!(
            "{what}: {local} → {to}: {e} instead of ECONNREFUSED"
        )),
        None => f.fail(format!(
            "{what}: {local} → {to}: no error (the hairpinned port unreachable never came back)"
        )),
    }
    let target_sent = snmp(target_ns, "Icmp", "OutDestUnreachs") - target_before;
    let gw_sent = snmp(&t.nat, "Icmp", "OutDestUnreachs") - gw_before;
    f.check(target_sent >= 1, || {
        format!("{what}: the target never sent port unreachable (the datagram did not reach it)")
    });
    f.check(gw_sent == 0, || {
        format!("{what}: the gateway itself sent {gw_sent} destination unreachable(s)")
    });
    let translated = t.counter("icmp_errors_translated");
    f.check(translated > translated_before, || {
        format!("{what}: icmp_errors_translated stayed {translated}")
    });
}

fn hairpin(tag: &str, mode: Ingress, filtering: Filtering) {
    let t = HairpinTopo::attached(tag, mode, filtering);
    let mut f = Findings::new(format!(
        "hairpin, --filtering {}, ingress {}",
        filtering.name(),
        mode.as_str()
    ));

    // UDP through dynamic mappings, per filtering mode.
    udp_filtering(
        &t,
        &mut f,
        &Pair {
            what: "same segment (A → B, both behind int0)",
            a_ns: &t.a,
            a: sa(HOST_A, 6000),
            a2: sa(HOST_A, 6001),
            b_ns: &t.b,
            b: sa(HOST_B, 5000),
            srv_port: 9000,
        },
        filtering,
    );
    udp_filtering(
        &t,
        &mut f,
        &Pair {
            what: "across interfaces (A behind int0 → D behind int1)",
            a_ns: &t.a,
            a: sa(HOST_A, 6002),
            a2: sa(HOST_A, 6003),
            b_ns: &t.c,
            b: sa(HOST_D, 5002),
            srv_port: 9001,
        },
        filtering,
    );

    // TCP through port forwards (admitted in every filtering mode).
    tcp_forward(&t, &mut f, "same segment", &t.b, sa(HOST_B, 80), 8080);
    tcp_forward(&t, &mut f, "across interfaces", &t.c, sa(HOST_D, 81), 8081);

    // ICMP echo through static mappings: NAPT host → static host on the
    // same segment and across interfaces; static host → static host.
    ping_static(
        &mut f,
        "ping A → E's static 203.0.113.3 (same segment)",
        &t.a,
        POOL_ADDR,
        &t.b,
        HOST_E,
        PUB_E,
    );
    ping_static(
        &mut f,
        "ping A → C's static 203.0.113.2 (across interfaces)",
        &t.a,
        POOL_ADDR,
        &t.c,
        HOST_C,
        PUB_C,
    );
    ping_static(
        &mut f,
        "ping C → E (static to static, across interfaces)",
        &t.c,
        PUB_C,
        &t.b,
        HOST_E,
        PUB_E,
    );

    // Hairpinned ICMP errors.
    icmp_error(
        &t,
        &mut f,
        "port unreachable from static host E (same segment)",
        sa(HOST_A, 6100),
        sa(PUB_E, 9),
        &t.b,
    );
    t.xnat_ok(&[
        "forward",
        "add",
        "udp",
        "198.51.100.1:7000",
        "10.0.1.3:7000",
    ]);
    icmp_error(
        &t,
        &mut f,
        "port unreachable from D behind a UDP port forward (across interfaces)",
        sa(HOST_A, 6101),
        sa(POOL_ADDR, 7000),
        &t.c,
    );

    let hp = t.counter("hairpin_translated");
    f.check(hp > 0, || "hairpin_translated is 0".into());
    f.finish(&t);
}

#[test]
fn hairpin_endpoint_independent_tc() {
    hairpin("hei", Ingress::Tc, Filtering::EndpointIndependent);
}

#[test]
fn hairpin_endpoint_independent_xdp() {
    hairpin("hei", Ingress::Xdp, Filtering::EndpointIndependent);
}

#[test]
fn hairpin_address_tc() {
    hairpin("had", Ingress::Tc, Filtering::Address);
}

#[test]
fn hairpin_address_xdp() {
    hairpin("had", Ingress::Xdp, Filtering::Address);
}

#[test]
fn hairpin_address_and_port_tc() {
    hairpin("hap", Ingress::Tc, Filtering::AddressAndPort);
}

#[test]
fn hairpin_address_and_port_xdp() {
    hairpin("hap", Ingress::Xdp, Filtering::AddressAndPort);
}

// ---------------------------------------------------------------- hairpinned fragments

/// A datagram of `len` bytes from `from` to `to`, received intact at `at`;
/// returns the source `at` saw.
fn big_datagram(
    f: &mut Findings,
    what: &str,
    from: &UdpSocket,
    to: SocketAddrV4,
    at: &UdpSocket,
    len: usize,
    seed: u8,
) -> Option<SocketAddrV4> {
    let msg = payload(len, seed);
    let got = try_deliver(from, to, at, &msg, 4, ATTEMPT);
    if got.is_none() {
        f.fail(format!(
            "{what}: a {len}-byte datagram {:?} → {to} never arrived intact",
            from.local_addr().unwrap()
        ));
    }
    got
}

/// Fragmented datagrams between inside hosts through the hairpin: UDP
/// through NAPT mappings and to a static address, ping -s 3000 to static
/// addresses (the replies go to A's NAPT public address).
fn hairpin_fragments(tag: &str, mode: Ingress) {
    let t = HairpinTopo::attached(tag, mode, Filtering::EndpointIndependent);
    let mut f = Findings::new(format!("hairpinned fragments, ingress {}", mode.as_str()));
    let server = udp_bind(&t.srv, sa(SRV, 9000));

    // NAPT ↔ NAPT: A ↔ B through their public endpoints, 4000 bytes.
    let b = udp_bind(&t.b, sa(HOST_B, 5200));
    let a = udp_bind(&t.a, sa(HOST_A, 6200));
    if try_deliver(&b, sa(SRV, 9000), &server, b"B", 5, ATTEMPT).is_none() {
        f.fail("B never reached the server".to_string());
    }
    let b_pub = t.public_of("udp", sa(HOST_B, 5200));
    // A's mapping first, with a small datagram (not what is tested here).
    if try_deliver(&a, b_pub, &b, b"small", 4, ATTEMPT).is_none() {
        f.fail(format!(
            "A → B's public {b_pub}: even a small datagram never arrived"
        ));
    }
    let a_pub = t.public_of("udp", sa(HOST_A, 6200));
    if let Some(src) = big_datagram(&mut f, "UDP A → B (NAPT)", &a, b_pub, &b, 4000, 1) {
        f.check(src == a_pub, || {
            format!("B saw A's 4000 bytes from {src}, not {a_pub}")
        });
    }
    if let Some(src) = big_datagram(&mut f, "UDP B → A (NAPT)", &b, a_pub, &a, 4000, 2) {
        f.check(src == b_pub, || {
            format!("A saw B's 4000 bytes from {src}, not {b_pub}")
        });
    }

    // NAPT → static: A → E's 203.0.113.3 and back (to A's NAPT endpoint).
    let e = udp_bind(&t.b, sa(HOST_E, 5300));
    let a3 = udp_bind(&t.a, sa(HOST_A, 6300));
    if try_deliver(&a3, sa(PUB_E, 5300), &e, b"small", 4, ATTEMPT).is_none() {
        f.fail("A → E's static 203.0.113.3: even a small datagram never arrived".to_string());
    }
    let a3_pub = t.public_of("udp", sa(HOST_A, 6300));
    if let Some(src) = big_datagram(
        &mut f,
        "UDP A → E (static)",
        &a3,
        sa(PUB_E, 5300),
        &e,
        4000,
        3,
    ) {
        f.check(src == a3_pub, || {
            format!("E saw A from {src}, not {a3_pub}")
        });
    }
    if let Some(src) = big_datagram(
        &mut f,
        "UDP E (static) → A (NAPT)",
        &e,
        a3_pub,
        &a3,
        4000,
        4,
    ) {
        f.check(src == sa(PUB_E, 5300), || format!("A saw E from {src}"));
    }

    // ping -s 3000 to static hosts (same segment, across interfaces).
    for (what, target) in [
        ("E (same segment)", PUB_E),
        ("C (across interfaces)", PUB_C),
    ] {
        if let Err(e) = ping(
            &t.a,
            &[
                "-c",
                "2",
                "-i",
                "0.3",
                "-W",
                "2",
                "-s",
                "3000",
                &target.to_string(),
            ],
        ) {
            f.fail(format!("ping -s 3000 A → {what}: {e}"));
        }
    }
    let unknown = t.counter("drop_fragment_unknown");
    f.check(unknown == 0, || {
        format!("drop_fragment_unknown = {unknown}: hairpinned fragments were dropped")
    });
    f.finish(&t);
}

#[test]
fn hairpin_fragments_tc() {
    hairpin_fragments("hfr", Ingress::Tc);
}

#[test]
fn hairpin_fragments_xdp() {
    hairpin_fragments("hfr", Ingress::Xdp);
}

// ---------------------------------------------------------------- fragments in order

/// 4000-byte UDP datagrams and 3000-byte pings across the NAT both ways
/// over MTU-1500 links: outbound from an inside host and the server's
/// replies, a port-forwarded inbound datagram, static 1:1 both ways.
fn fragments(tag: &str, mode: Ingress) {
    let t = HairpinTopo::attached(tag, mode, Filtering::Address);
    let mut f = Findings::new(format!("fragments in order, ingress {}", mode.as_str()));
    let ext = t.ext.clone();
    for (ns, dev) in [
        (&t.a, "eth0"),
        (&t.b, "eth0"),
        (&t.c, "eth0"),
        (&t.srv, "eth0"),
        (&t.nat, "int0"),
        (&t.nat, "int1"),
        (&t.nat, ext.as_str()),
    ] {
        let mtu = link_mtu(ns, dev);
        assert_eq!(mtu, 1500, "MTU of {dev} in {}", ns.name());
    }
    let translated_before = counter_or_zero(&t, "fragments_translated");

    // NAPT outbound, and the server's reply.
    let step = "UDP 4000 bytes A 10.0.0.2:41000 ↔ server";
    if let Some(seen) = f.step(step, || {
        udp_exchange(
            &t.a,
            &t.srv,
            sa(HOST_A, 41000),
            sa(SRV, 9300),
            sa(SRV, 9300),
            4000,
        )
    }) {
        let a_pub = t.public_of("udp", sa(HOST_A, 41000));
        f.check(v4(seen.server_saw_src) == a_pub, || {
            format!(
                "{step}: the server saw {}, not {a_pub}",
                seen.server_saw_src
            )
        });
        f.check(v4(seen.client_saw_src) == sa(SRV, 9300), || {
            format!("{step}: A saw the reply from {}", seen.client_saw_src)
        });
    }

    // ping -s 3000 from A; the server must see the pool address.
    let filter = format!("icmp[icmptype] == icmp-echo and src {POOL_ADDR}");
    let mut dump = Topology::tcpdump(&t.srv, "eth0", 1, &filter);
    if let Err(e) = ping(
        &t.a,
        &["-c", "2", "-i", "0.3", "-W", "2", "-s", "3000", "192.0.2.2"],
    ) {
        f.fail(format!("ping -s 3000 A → server: {e}"));
    }
    if dump.wait_exit_within(Duration::from_secs(3)).is_none() {
        f.fail("the server never saw A's echo request from the pool address".to_string());
    }

    // A port-forwarded inbound datagram and B's reply.
    t.xnat_ok(&[
        "forward",
        "add",
        "udp",
        "198.51.100.1:7100",
        "10.0.0.3:7100",
    ]);
    let step = "UDP 4000 bytes server → forward 198.51.100.1:7100 → B";
    if let Some(seen) = f.step(step, || {
        udp_exchange(
            &t.srv,
            &t.b,
            sa(SRV, 9400),
            sa(HOST_B, 7100),
            sa(POOL_ADDR, 7100),
            4000,
        )
    }) {
        f.check(v4(seen.server_saw_src) == sa(SRV, 9400), || {
            format!("{step}: B saw {}", seen.server_saw_src)
        });
        f.check(v4(seen.client_saw_src) == sa(POOL_ADDR, 7100), || {
            format!(
                "{step}: the server saw B's reply from {}",
                seen.client_saw_src
            )
        });
    }

    // Static 1:1: every fragment is translated by address alone.
    if let Err(e) = ping(
        &t.srv,
        &[
            "-c",
            "2",
            "-i",
            "0.3",
            "-W",
            "2",
            "-s",
            "3000",
            "203.0.113.2",
        ],
    ) {
        f.fail(format!("ping -s 3000 server → C's static 203.0.113.2: {e}"));
    }
    let step = "UDP 4000 bytes C (static) ↔ server";
    if let Some(seen) = f.step(step, || {
        udp_exchange(
            &t.c,
            &t.srv,
            sa(HOST_C, 41100),
            sa(SRV, 9500),
            sa(SRV, 9500),
            4000,
        )
    }) {
        f.check(v4(seen.server_saw_src) == sa(PUB_C, 41100), || {
            format!("{step}: the server saw {}", seen.server_saw_src)
        });
    }

    // Counted: at least the later fragments of the NAPT datagrams above
    // (UDP 4000 → 3 fragments, ICMP 3008 → 3 fragments; 2 later ones each:
    // UDP 2×2, pings 2×2×2, forward 2×2).
    let translated = counter_or_zero(&t, "fragments_translated") - translated_before;
    f.check(translated >= 16, || {
        format!("fragments_translated grew by {translated}, expected ≥ 16")
    });
    for c in ["drop_fragment_unknown", "ingress_passed_fragment"] {
        let n = t.counter(c);
        f.check(n == 0, || format!("{c} = {n} with every fragment in order"));
    }
    f.finish(&t);
}

#[test]
fn fragments_tc() {
    fragments("frg", Ingress::Tc);
}

#[test]
fn fragments_xdp() {
    fragments("frg", Ingress::Xdp);
}

// ---------------------------------------------------------------- fragments out of order

/// The fragments of `p` (a whole datagram), 1480 bytes of payload each (what
/// fits an MTU-1500 link).
fn fragments_of(p: &frame::Packet) -> Vec<Vec<u8>> {
    let total = p.l4_bytes().len();
    let mut v = Vec::new();
    let mut off = 0;
    while off < total {
        let len = 1480.min(total - off);
        v.push(p.fragment(off, len, off + len < total).ip_bytes());
        off += len;
    }
    v
}

/// Outbound: fragments crafted with a raw socket in A, sent in reverse (and
/// other) orders, reach the server reassembled from A's public endpoint.
#[test]
fn fragments_reverse_order_outbound_tc() {
    let t = HairpinTopo::attached("rvo", Ingress::Tc, Filtering::Address);
    let mut f = Findings::new("outbound fragments out of order, ingress tc");
    let server = udp_bind(&t.srv, sa(SRV, 9600));
    let raw = RawIp::open(&t.a);
    // (order, IP id): the first datagram creates A's mapping with its
    // (last-arriving) first fragment; the others use the existing one.
    let cases: [(&[usize], u16); 3] = [
        (&[2, 1, 0], 0x4101),
        (&[1, 2, 0], 0x4102),
        (&[1, 0, 2], 0x4103),
    ];
    for (i, (order, id)) in cases.iter().enumerate() {
        let data = payload(3000, 0x30 + i as u8);
        let p = frame::Packet::udp(HOST_A, SRV, Udp::new(41500, 9600, &data)).with_id(*id);
        let frags = fragments_of(&p);
        assert_eq!(frags.len(), 3);
        let before = t.counters();
        for &k in order.iter() {
            raw.send(&frags[k])
                .unwrap_or_else(|e| panic!("raw send of fragment {k}: {e}"));
        }
        match expect_datagram(&server, &data, Duration::from_secs(2)) {
            Some(src) => {
                let a_pub = t.public_of("udp", sa(HOST_A, 41500));
                f.check(src == a_pub, || {
                    format!("order {order:?}: the server saw the datagram from {src}, not {a_pub}")
                });
            }
            None => {
                let after = t.counters();
                let delta: Vec<_> = after
                    .iter()
                    .filter(|(k, v)| before.get(*k) != Some(v))
                    .map(|(k, v)| format!("{k} +{}", v - before.get(k).copied().unwrap_or(0)))
                    .collect();
                f.fail(format!(
                    "order {order:?} (id {id:#x}): the server never received the reassembled 3000-byte datagram; counters: {delta:?}"
                ));
            }
        }
    }
    f.finish(&t);
}

/// Inbound: the server sends the fragments of a datagram for A's mapping in
/// reverse order; A receives it reassembled.
#[test]
fn fragments_reverse_order_inbound_tc() {
    let t = HairpinTopo::attached("rvi", Ingress::Tc, Filtering::Address);
    let mut f = Findings::new("inbound fragments out of order, ingress tc");
    let server = udp_bind(&t.srv, sa(SRV, 9700));
    let a = udp_bind(&t.a, sa(HOST_A, 41600));
    assert!(
        try_deliver(&a, sa(SRV, 9700), &server, b"hello", 5, ATTEMPT).is_some(),
        "A never reached the server"
    );
    let a_pub = t.public_of("udp", sa(HOST_A, 41600));
    let raw = RawIp::open(&t.srv);
    let cases: [(&[usize], u16); 2] = [(&[2, 1, 0], 0x5101), (&[1, 0, 2], 0x5102)];
    for (i, (order, id)) in cases.iter().enumerate() {
        let data = payload(3000, 0x50 + i as u8);
        let p =
            frame::Packet::udp(SRV, *a_pub.ip(), Udp::new(9700, a_pub.port(), &data)).with_id(*id);
        let frags = fragments_of(&p);
        let before = t.counters();
        for &k in order.iter() {
            raw.send(&frags[k])
                .unwrap_or_else(|e| panic!("raw send of fragment {k}: {e}"));
        }
        match expect_datagram(&a, &data, Duration::from_secs(2)) {
            Some(src) => f.check(src == sa(SRV, 9700), || {
                format!("order {order:?}: A saw the datagram from {src}")
            }),
            None => {
                let after = t.counters();
                let delta: Vec<_> = after
                    .iter()
                    .filter(|(k, v)| before.get(*k) != Some(v))
                    .map(|(k, v)| format!("{k} +{}", v - before.get(k).copied().unwrap_or(0)))
                    .collect();
                f.fail(format!(
                    "order {order:?} (id {id:#x}) to {a_pub}: A never received the reassembled 3000-byte datagram; counters: {delta:?}"
                ));
            }
        }
    }
    f.finish(&t);
}

// ---------------------------------------------------------------- stray-fragment flood

/// Where the flood's first fragments go: resolved by the gateway to the
/// server, which does not own it and does not forward.
const SINK: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);

/// Stray fragments per phase of the flood test.
const FLOOD: u32 = 20_000;

/// Polls `cond` until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `n` datagrams made by `make(i, id)` with random IP IDs, pacing
/// a little so the veth backlog never overflows.
fn flood(raw: &RawIp, n: u32, seed: u64, make: impl Fn(u16) -> Vec<u8>) {
    let mut rng = XorShift(seed);
    let start = Instant::now();
    for i in 0..n {
        let id = (rng.next_u64() >> 17) as u16;
        raw.send(&make(id))
            .unwrap_or_else(|e| panic!("raw send #{i}: {e}"));
        if i % 500 == 499 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    eprintln!("flood of {n} sent in {:?}", start.elapsed());
}

/// A stray later fragment (no first fragment anywhere) from `src` to `dst`.
fn stray_later(src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Vec<u8> {
    let mut p = frame::Packet::raw(src, dst, frame::proto::UDP, &[0x5a; 64]).with_id(id);
    p.ip.flags = 0;
    p.ip.frag_offset = 185; // 1480 bytes in
    p.ip_bytes()
}

#[test]
fn stray_fragment_flood_tc() {
    let t = HairpinTopo::attached("fld", Ingress::Tc, Filtering::Address);
    let mut f = Findings::new("stray-fragment flood, ingress tc");
    // A stray is counted whether it is held for a while (TC) or dropped /
    // passed at once.
    let want = u64::from(FLOOD) - u64::from(FLOOD) / 100;
    let grew = |before: &BTreeMap<String, u64>, names: &[&str]| -> u64 {
        let now = t.counters();
        names
            .iter()
            .map(|n| now.get(*n).copied().unwrap_or(0) - before.get(*n).copied().unwrap_or(0))
            .sum()
    };

    // 1. Outbound: later fragments from A with random IDs. None may leave
    //    (translated or not): the server must receive nothing at all.
    let before = t.counters();
    let srv_in0 = snmp(&t.srv, "Ip", "InReceives");
    let raw_a = RawIp::open(&t.a);
    flood(&raw_a, FLOOD, 0x1234_5678, |id| {
        stray_later(HOST_A, SRV, id)
    });
    let names = ["drop_fragment_unknown", "fragments_held"];
    if !eventually(Duration::from_secs(5), || grew(&before, &names) >= want) {
        f.fail(format!(
            "outbound strays: {names:?} grew by {}, sent {FLOOD}",
            grew(&before, &names)
        ));
    }
    let leaked = snmp(&t.srv, "Ip", "InReceives") - srv_in0;
    f.check(leaked == 0, || {
        format!("the server received {leaked} IPv4 packets during the outbound stray flood")
    });

    // 2. Inbound: later fragments from the server to the pool address.
    let before = t.counters();
    let raw_s = RawIp::open(&t.srv);
    flood(&raw_s, FLOOD, 0x8765_4321, |id| {
        stray_later(SRV, POOL_ADDR, id)
    });
    let names = ["ingress_passed_fragment", "fragments_held"];
    if !eventually(Duration::from_secs(5), || grew(&before, &names) >= want) {
        f.fail(format!(
            "inbound strays: {names:?} grew by {}, sent {FLOOD}",
            grew(&before, &names)
        ));
    }
    // Passed to the gateway's own stack: its reassembly memory is bounded.
    // (The kernel checks the threshold before adding a fragment, so it may
    // overshoot by a fragment or so.)
    let (queues, mem) = frag_memory(&t.nat);
    let high = sysctl_u64(&t.nat, "net.ipv4.ipfrag_high_thresh");
    f.check(mem <= high + high / 64, || {
        format!(
            "gateway reassembly memory {mem} B ({queues} queues) above ipfrag_high_thresh {high}"
        )
    });

    // 3. Outbound first fragments with random IDs: each remembered in
    //    FRAGS_OUT, which must stay within its bound.
    //    They go to SINK, an address the gateway resolves to the server,
    //    which does not forward: it drops them without queueing them for
    //    reassembly (20k reassembly queues would block its own reassembly
    //    for 30 s, which is not what this test is about).
    let srv_link = t.srv.ip(&["-o", "link", "show", "dev", "eth0"]);
    let srv_mac = srv_link
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC in {srv_link:?}"))
        .to_string();
    let ext = t.ext.clone();
    let sink = SINK.to_string();
    t.nat.ip(&[
        "neigh",
        "replace",
        &sink,
        "lladdr",
        &srv_mac,
        "dev",
        &ext,
        "nud",
        "permanent",
    ]);
    let before = t.counters();
    flood(&raw_a, FLOOD, 0x0bad_cafe, |id| {
        let p = frame::Packet::udp(HOST_A, SINK, Udp::new(42000, 9, &[0x11; 1472])).with_id(id);
        p.fragment(0, 64, true).ip_bytes()
    });
    let firsts = grew(&before, &["egress_translated_packets"]);
    f.check(firsts >= want, || {
        format!("only {firsts} of {FLOOD} first fragments were translated")
    });

    // Every map stays within its bound; fragment state is small.
    let maps = t.pinned_maps();
    for m in &maps {
        if let Some(n) = m.entries {
            f.check(n <= u64::from(m.max_entries), || {
                format!(
                    "map {} holds {n} entries, max_entries {}",
                    m.name, m.max_entries
                )
            });
        }
        if m.name.contains("FRAG") {
            f.check(m.max_bytes() <= 64 << 20, || {
                format!("map {} may hold {} bytes", m.name, m.max_bytes())
            });
        }
    }
    let frags = maps
        .iter()
        .find(|m| m.name == nat_common::MAP_FRAGS_OUT)
        .unwrap_or_else(|| panic!("no FRAGS_OUT map pinned: {maps:?}"));
    eprintln!("pinned maps after the flood: {maps:#?}");
    f.check(frags.entries.is_some_and(|n| n > 0), || {
        format!("FRAGS_OUT is empty after {FLOOD} first fragments: {frags:?}")
    });

    // 4. Normal traffic still works, fragmented too.
    let (srv_queues, srv_mem) = frag_memory(&t.srv);
    eprintln!("server reassembly: {srv_queues} queues, {srv_mem} B");
    let step = "UDP 4000 bytes A ↔ server after the flood";
    if let Some(seen) = f.step(step, || {
        udp_exchange(
            &t.a,
            &t.srv,
            sa(HOST_A, 43000),
            sa(SRV, 9800),
            sa(SRV, 9800),
            4000,
        )
    }) {
        let a_pub = t.public_of("udp", sa(HOST_A, 43000));
        f.check(v4(seen.server_saw_src) == a_pub, || {
            format!("{step}: the server saw {}", seen.server_saw_src)
        });
    }
    let step = "UDP 100 bytes B ↔ server after the flood";
    f.step(step, || {
        udp_exchange(
            &t.b,
            &t.srv,
            sa(HOST_B, 43001),
            sa(SRV, 9801),
            sa(SRV, 9801),
            100,
        )
    });
    // Out-of-order fragments are still delivered (a hold map full of
    // strays must not stop REQ-14).
    let server = udp_bind(&t.srv, sa(SRV, 9802));
    let data = payload(3000, 0x99);
    let p = frame::Packet::udp(HOST_A, SRV, Udp::new(43002, 9802, &data)).with_id(0x4444);
    let frags = fragments_of(&p);
    for k in [2, 1, 0] {
        raw_a
            .send(&frags[k])
            .unwrap_or_else(|e| panic!("raw send of fragment {k}: {e}"));
    }
    f.check(
        expect_datagram(&server, &data, Duration::from_secs(2)).is_some(),
        || "a datagram sent in reverse order after the flood never arrived".to_string(),
    );
    f.finish(&t);
}
