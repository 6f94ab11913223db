//! End-to-end tests of binding sync (root): one gateway under
//! deterministic allocation whose sync peer is the test itself, a UDP
//! socket in the gateway's namespace that receives its announcements and
//! sends crafted ones.
//!
//! * the gateway announces the mappings it makes (a UDP and a TCP flow of
//!   the client) with their public endpoint, and announces them again every
//!   refresh period without new traffic;
//! * a mapping the peer announces is installed as a peer mapping (`xnat
//!   flows --json`: `"peer": true`, the announced public endpoint), kept by
//!   a new announcement (`xnat_sync_refreshed_total`), never announced back
//!   while unused here, and it carries an inbound-first datagram from the
//!   server to the inside host;
//! * datagrams from an address that is no peer, with a bad MAC, and
//!   records outside the host's deterministic range or colliding with a
//!   mapping are rejected and counted by reason, and install nothing;
//! * bad sync settings (listen without peers, block allocation, a short or
//!   world-readable key) get a one-line error and attach nothing; a reload
//!   that changes them is refused and the agent runs on.
//!
//! Topology: `xnat_tests::topology` (cli 10.0.0.2 — nat — rtr — srv
//! 198.51.100.2), NAPT of 10.0.0.0/24 behind 203.0.113.2.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use nat_userspace::agent::sync::wire::{self, Record};
use serde_json::Value;
use xnat_tests::daemon_topo::{DaemonTopo, METRICS, POOL, sample};
use xnat_tests::netns::describe;
use xnat_tests::topology::{CLI, Ingress, SRV, error_lines};
use xnat_tests::traffic::sa;
use xnat_tests::wait::{SOON, wait_for, wait_until};

/// The gateway's sync socket, the test's (the peer), and an address on
/// the same loopback that is no peer.
const GW_SYNC: &str = "127.0.0.1:47901";
const PEER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const PEER_PORT: u16 = 47902;
const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const KEY: &[u8] = b"a shared secret of the two gateways";
const REFRESH_S: u64 = 2;
/// 256 inside addresses on one pool address: 64512 / 256 = 252 ports
/// each; host n of 10.0.0.0/24 has 1024 + 252 n ..= 1024 + 252 n + 251.
const PORTS_EACH: u16 = 252;

fn range_of(n: u8) -> std::ops::RangeInclusive<u16> {
    let lo = 1024 + u16::from(n) * PORTS_EACH;
    lo..=lo + PORTS_EACH - 1
}

fn host(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, n)
}

fn be(a: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(a.octets())
}

fn record(proto: u8, inside: Ipv4Addr, iport: u16, public: Ipv4Addr, pport: u16) -> Record {
    Record {
        proto,
        inside_addr: be(inside),
        inside_port: iport.to_be(),
        public_addr: be(public),
        public_port: pport.to_be(),
    }
}

/// (proto, inside, public) of a record, readable.
fn show(r: &Record) -> (u8, String, String) {
    let a = |x: u32| Ipv4Addr::from(x.to_ne_bytes());
    (
        r.proto,
        format!("{}:{}", a(r.inside_addr), u16::from_be(r.inside_port)),
        format!("{}:{}", a(r.public_addr), u16::from_be(r.public_port)),
    )
}

fn key_file(d: &DaemonTopo, name: &str, text: &[u8], mode: u32) -> String {
    let p = d.dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p.to_str().unwrap().to_string()
}

fn config(d: &DaemonTopo, napt_extra: &str, sync: &str) -> String {
    d.config(
        &format!("metrics = \"{METRICS}\""),
        &format!("allocation = \"deterministic\"\n{napt_extra}\n\n[sync]\n{sync}"),
    )
}

/// Every record the peer socket receives within `for_`, decoded with the
/// key (a datagram that does not decode fails the test).
fn collect(peer: &UdpSocket, for_: Duration) -> Vec<Record> {
    let deadline = Instant::now() + for_;
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((n, from)) = peer.recv_from(&mut buf) {
            let d = wire::decode(&buf[..n], Some(KEY))
                .unwrap_or_else(|e| panic!("undecodable datagram from {from}: {e:?}"));
            out.extend(d);
        }
    }
    out
}

/// Waits for a record announced to the peer that `pred` accepts.
fn announced(peer: &UdpSocket, what: &str, mut pred: impl FnMut(&Record) -> bool) -> Record {
    let mut seen = Vec::new();
    let deadline = Instant::now() + SOON;
    while Instant::now() < deadline {
        for r in collect(peer, Duration::from_millis(200)) {
            if pred(&r) {
                return r;
            }
            seen.push(show(&r));
        }
    }
    panic!("no announcement of {what} within {SOON:?}; saw {seen:?}");
}

fn metric(d: &DaemonTopo, name: &str, labels: &[&str]) -> f64 {
    sample(&d.scrape("/metrics").1, name, labels).unwrap_or(0.0)
}

fn wait_metric(d: &DaemonTopo, name: &str, labels: &[&str], at_least: f64) {
    wait_until(SOON, &format!("{name}{labels:?} >= {at_least}"), || {
        metric(d, name, labels) >= at_least
    });
}

/// The flows listed for inside endpoint `inside`.
fn flows_of(d: &DaemonTopo, inside: &str) -> Vec<Value> {
    let ext = d.ext().to_string();
    match d.json(&["flows", "-i", &ext, "--json"]) {
        Value::Array(a) => a.into_iter().filter(|f| f["inside"] == inside).collect(),
        other => panic!("flows: {other}"),
    }
}

#[test]
fn peers_learn_mappings_and_strangers_are_refused() {
    xnat_tests::netns::require_root();
    let mut d = DaemonTopo::new("sync", Ingress::Tc);
    let key = key_file(&d, "sync.key", KEY, 0o600);
    let cfg = config(
        &d,
        "filtering = \"endpoint-independent\"",
        &format!(
            "listen = \"{GW_SYNC}\"\npeers = [\"{PEER}:{PEER_PORT}\"]\nkey-file = \"{key}\"\n\
             refresh = {REFRESH_S}\n"
        ),
    );
    let path = d.write("sync.toml", &cfg);
    let peer =
        d.t.nat
            .in_ns(|| UdpSocket::bind(sa(PEER, PEER_PORT)))
            .expect("binding the peer's socket");
    peer.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let stranger =
        d.t.nat
            .in_ns(|| UdpSocket::bind(sa(STRANGER, 0)))
            .expect("binding the stranger's socket");
    let ready = d.start(&["attach", "--config", path.to_str().unwrap()]);
    assert!(
        ready.contains(&format!(
            "binding sync on {GW_SYNC} with {PEER}:{PEER_PORT}"
        )),
        "{ready}"
    );
    let gw: SocketAddr = GW_SYNC.parse().unwrap();
    wait_until(SOON, "the agent's binding sync start line", || {
        d.agent().stderr().contains(&format!(
            "binding sync: listening on {GW_SYNC}, peers {PEER}:{PEER_PORT}"
        ))
    });

    // Mappings made here are announced, with the public endpoint of the
    // client's deterministic range: a UDP flow...
    let client =
        d.t.cli
            .in_ns(|| UdpSocket::bind(sa(CLI, 5000)))
            .expect("binding the client");
    let server =
        d.t.srv
            .in_ns(|| UdpSocket::bind(sa(SRV, 6100)))
            .expect("binding the server");
    client.send_to(b"hello", sa(SRV, 6100)).unwrap();
    let udp = announced(&peer, "the client's UDP mapping", |r| {
        r.proto == 17 && r.inside_addr == be(CLI) && u16::from_be(r.inside_port) == 5000
    });
    assert_eq!(udp.public_addr, be(POOL), "{:?}", show(&udp));
    assert!(
        range_of(2).contains(&u16::from_be(udp.public_port)),
        "{:?} outside host 2's range {:?}",
        show(&udp),
        range_of(2)
    );
    // ... and a TCP connection.
    let listener =
        d.t.srv
            .in_ns(|| TcpListener::bind(sa(SRV, 6200)))
            .expect("binding the TCP server");
    let conn =
        d.t.cli
            .in_ns(|| TcpStream::connect_timeout(&SocketAddr::from(sa(SRV, 6200)), SOON))
            .expect("connecting through the gateway");
    let tcp_port = conn.local_addr().unwrap().port();
    let tcp = announced(&peer, "the client's TCP mapping", |r| {
        r.proto == 6 && r.inside_addr == be(CLI) && u16::from_be(r.inside_port) == tcp_port
    });
    assert!(range_of(2).contains(&u16::from_be(tcp.public_port)));
    wait_metric(&d, "xnat_sync_announced_total", &[], 2.0);

    // A mapping the peer announces is installed as a peer mapping.
    let learned_port = *range_of(5).start() + 3;
    let learned = record(17, host(5), 7000, POOL, learned_port);
    peer.send_to(&wire::encode(&[learned], Some(KEY)), gw)
        .unwrap();
    let f = wait_for(SOON, "the learned mapping in `xnat flows`", || {
        flows_of(&d, "10.0.0.5:7000").pop()
    });
    assert_eq!(f["public"], format!("{POOL}:{learned_port}"), "{f}");
    assert_eq!(f["peer"], true, "{f}");
    assert_eq!(f["remote"], "-", "{f}");
    wait_metric(&d, "xnat_sync_installed_total", &[], 1.0);
    // The gateway's own mappings are not peer mappings.
    let own = flows_of(&d, "10.0.0.2:5000");
    assert!(
        !own.is_empty() && own.iter().all(|f| f["peer"] == false),
        "{own:?}"
    );

    // A new announcement refreshes it; and over two refresh periods the
    // gateway announces its own mappings again without new traffic, but
    // never the peer's copy it does not use.
    peer.send_to(&wire::encode(&[learned], Some(KEY)), gw)
        .unwrap();
    wait_metric(&d, "xnat_sync_refreshed_total", &[], 1.0);
    let _ = collect(&peer, Duration::from_millis(100));
    let again = collect(&peer, Duration::from_secs(2 * REFRESH_S + 1));
    let again: HashSet<_> = again.iter().map(show).collect();
    assert!(
        again.contains(&show(&udp)) && again.contains(&show(&tcp)),
        "not announced again: {:?} / {:?} in {again:?}",
        show(&udp),
        show(&tcp)
    );
    assert!(
        !again.contains(&show(&learned)),
        "the unused peer copy was announced back: {again:?}"
    );

    // The learned mapping carries an inbound-first datagram to the inside
    // host (endpoint-independent filtering admits it).
    d.t.cli.ip(&["addr", "add", "10.0.0.5/24", "dev", "eth0"]);
    let inside =
        d.t.cli
            .in_ns(|| UdpSocket::bind(sa(host(5), 7000)))
            .expect("binding the learned mapping's inside endpoint");
    inside
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    wait_until(SOON, "a datagram through the learned mapping", || {
        let _ = server.send_to(b"first", sa(POOL, learned_port));
        matches!(inside.recv_from(&mut buf), Ok((5, _)))
    });

    // Rejections, each counted by its reason and installing nothing.
    let stray = record(17, host(6), 7000, POOL, *range_of(6).start());
    stranger
        .send_to(&wire::encode(&[stray], Some(KEY)), gw)
        .unwrap();
    wait_metric(&d, "xnat_sync_rejected_total", &["reason=\"peer\""], 1.0);
    peer.send_to(&wire::encode(&[stray], Some(b"not the shared secret!")), gw)
        .unwrap();
    peer.send_to(&wire::encode(&[stray], None), gw).unwrap();
    wait_metric(&d, "xnat_sync_rejected_total", &["reason=\"mac\""], 2.0);
    let outside = record(17, host(7), 7000, POOL, *range_of(8).start());
    let taken = record(17, host(5), 7001, POOL, learned_port);
    peer.send_to(&wire::encode(&[outside, taken], Some(KEY)), gw)
        .unwrap();
    wait_metric(&d, "xnat_sync_rejected_total", &["reason=\"range\""], 1.0);
    wait_metric(
        &d,
        "xnat_sync_rejected_total",
        &["reason=\"conflict\""],
        1.0,
    );
    for inside in ["10.0.0.6:7000", "10.0.0.7:7000", "10.0.0.5:7001"] {
        assert!(
            flows_of(&d, inside).is_empty(),
            "{inside} was installed: {:?}",
            flows_of(&d, inside)
        );
    }
    assert!(metric(&d, "xnat_sync_received_total", &[]) >= 4.0);

    // A reload cannot change the sync settings: refused, naming them, and
    // the agent runs on with its mappings.
    let ext = d.ext().to_string();
    d.write(
        "sync.toml",
        &cfg.replace(&format!("refresh = {REFRESH_S}"), "refresh = 9"),
    );
    let out = d.xnat(&["reload", "-i", &ext]);
    let lines = error_lines(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{lines:?}");
    assert!(
        lines.len() == 1 && lines[0].contains("a reload cannot change them"),
        "{lines:?}"
    );
    assert!(d.agent().try_exit().is_none(), "agent died on the reload");
    assert!(!flows_of(&d, "10.0.0.5:7000").is_empty());
    drop(conn);
    drop(listener);
    d.stop();
    d.t.assert_clean("after the sync agent's SIGTERM");
}

#[test]
fn bad_sync_settings_attach_nothing() {
    xnat_tests::netns::require_root();
    let d = DaemonTopo::new("synb", Ingress::Tc);
    let short = key_file(&d, "short.key", b"too short\n", 0o600);
    let open = key_file(&d, "open.key", KEY, 0o644);
    let peers = format!("peers = [\"{PEER}:{PEER_PORT}\"]\n");
    let listen = format!("listen = \"{GW_SYNC}\"\n");
    let cases = [
        (
            "nopeer.toml",
            config(&d, "", &listen),
            "sync.listen: binding sync needs at least one peer",
        ),
        (
            "nolisten.toml",
            config(&d, "", &peers),
            "sync.peers[0]: binding sync needs this gateway's own sync address",
        ),
        (
            "block.toml",
            config(&d, "", &format!("{listen}{peers}"))
                .replace("allocation = \"deterministic\"", "allocation = \"block\""),
            "binding sync does not support block allocation yet",
        ),
        (
            "short.toml",
            config(&d, "", &format!("{listen}{peers}key-file = \"{short}\"\n")),
            "the sync key has 9 bytes, at least 16 are needed",
        ),
        (
            "open.toml",
            config(&d, "", &format!("{listen}{peers}key-file = \"{open}\"\n")),
            "the sync key is readable or writable by every user",
        ),
    ];
    for (name, text, expect) in &cases {
        d.assert_config_refused(name, text, expect);
    }
    // The same from flags.
    let ext = d.ext().to_string();
    let out = d.xnat(&[
        "attach",
        &ext,
        "--pool",
        &POOL.to_string(),
        "--internal",
        "10.0.0.0/24",
        "--sync-listen",
        GW_SYNC,
    ]);
    let lines = error_lines(&out.stderr);
    assert!(
        out.status.code() == Some(1)
            && lines.len() == 1
            && lines[0].contains("--sync-listen: binding sync needs at least one peer"),
        "{}: {lines:?}",
        describe(out.status)
    );
    d.t.assert_clean("after `xnat attach --sync-listen` without peers");
}
