//! The end-to-end topology for hairpinning and IP fragments
//! (`tests/e2e_hairpin_frag.rs`), and the helpers those tests need beyond
//! [`crate::traffic`]: raw IPv4 senders (for crafted fragments), pinned-map
//! usage, the kernel's SNMP and fragment-memory counters.
//!
//! ```text
//!  a                      nat                                   srv
//!  eth0 10.0.0.2 ── ia ─┐
//!                       ├ int0 (bridge) 10.0.0.1/24
//!  b                    │
//!  eth0 10.0.0.3 ── ib ─┘
//!       10.0.0.4 (static ↔ 203.0.113.3)
//!                         EXT 192.0.2.1/24                 ── eth0 192.0.2.2/24
//!                             198.51.100.1/32 (NAPT pool)
//!  c                          203.0.113.2-3/32 (static)
//!  eth0 10.0.1.2 ───────── int1 10.0.1.1/24
//!       (static ↔ 203.0.113.2)
//!       10.0.1.3
//! ```
//!
//! Every link has MTU 1500 (set explicitly). `nat` runs `xnat attach EXT --pool 198.51.100.1
//! --map 10.0.1.2=203.0.113.2 --map 10.0.0.4=203.0.113.3 --inside
//! int0,int1`: A and B are two hosts on the *same* inside segment (a bridge,
//! so the hairpinned packet leaves through the interface it came in on),
//! A and D sit behind *different* inside interfaces. The server `srv` routes
//! the pool and the static public prefix to the gateway and has no route to
//! 10/8. The gateway ignores pings to itself (so a ping to a public address
//! only succeeds when it is translated) and does not rate-limit ICMP errors.
//!
//! EXT gets a unique name (`h<pid36><tag><mode>`) because xnat pins its
//! state under a directory named after the interface.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use nat_userspace::tables::Tables;
pub use nat_userspace::tables::usage::MapUsage;
use serde_json::Value;

// The socket helpers are the NAPT harness's; the tests import them from here.
use crate::agent::{Agent, Xnat};
pub use crate::napt_topo::{udp_bind, v4};
use crate::net::Net;
use crate::netns::{BgChild, Netns};
use crate::topology::{Ingress, attached, remove_stale_pins};
use crate::wait::SOON;

/// Inside host A (namespace `a`, behind int0).
pub const HOST_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Inside host B (namespace `b`, same segment as A).
pub const HOST_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
/// Inside host E (namespace `b`), statically mapped to [`PUB_E`].
pub const HOST_E: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 4);
/// Inside host C (namespace `c`, behind int1), statically mapped to [`PUB_C`].
pub const HOST_C: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
/// Inside host D (namespace `c`, behind int1), NAPT.
pub const HOST_D: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 3);
/// The gateway's own outside address.
pub const GW_EXT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The server beyond the gateway.
pub const SRV: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The NAPT pool (one address: every NAPT host shares it).
pub const POOL_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// Static public address of [`HOST_C`].
pub const PUB_C: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// Static public address of [`HOST_E`].
pub const PUB_E: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 3);

/// The filtering modes of `--filtering` (RFC 4787 §5): the product's type.
pub use nat_userspace::settings::napt::Filtering;

/// One row of `xnat flows --json` (the fields these tests use).
#[derive(Clone, Debug)]
pub struct FlowRow {
    pub proto: String,
    pub inside: SocketAddrV4,
    pub public: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub raw: Value,
}

fn parse_flow(v: &Value) -> FlowRow {
    let s = |k: &str| -> String {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("flow without string {k:?}: {v}"))
            .to_string()
    };
    let ep = |k: &str| -> SocketAddrV4 {
        s(k).parse()
            .unwrap_or_else(|e| panic!("flow field {k:?} is not ADDR:PORT ({e}): {v}"))
    };
    FlowRow {
        proto: s("proto"),
        inside: ep("inside"),
        public: ep("public"),
        remote: ep("remote"),
        raw: v.clone(),
    }
}

/// The network of the diagram above (see [`crate::net`]).
const NET: &str = "
    hosts a b c nat srv
    link a:eth0 nat:ia
    link b:eth0 nat:ib
    link c:eth0 nat:int1
    link nat:EXT srv:eth0
    # The first inside segment on a bridge (STP off, so its ports forward
    # at once), a plain veth for the second.
    bridge nat:int0 ia ib
    mtu 1500 a:eth0 b:eth0 c:eth0 nat:ia nat:ib nat:int1 nat:EXT srv:eth0
    addr a:eth0 10.0.0.2/24
    addr b:eth0 10.0.0.3/24 10.0.0.4/24
    addr c:eth0 10.0.1.2/24 10.0.1.3/24
    addr nat:int0 10.0.0.1/24
    addr nat:int1 10.0.1.1/24
    # The pool (POOL_ADDR) and the static public addresses (PUB_C, PUB_E).
    addr nat:EXT 192.0.2.1/24 198.51.100.1/32 203.0.113.2/32 203.0.113.3/32
    addr srv:eth0 192.0.2.2/24
    route a default via 10.0.0.1
    route b default via 10.0.0.1
    route c default via 10.0.1.1
    # The server: routes to the public prefixes only (no route to 10/8).
    route srv 198.51.100.0/24 via 192.0.2.1
    route srv 203.0.113.0/24 via 192.0.2.1
    sysctl net.ipv4.ip_forward=1 nat
    # A ping to a public address must only succeed when xnat translated it
    # to the inside host, never because the gateway answered itself.
    sysctl net.ipv4.icmp_echo_ignore_all=1 nat
    # ICMP errors are rate limited per destination; every NAPT host shares
    # one public address. Lift the limit where errors are made.
    sysctl net.ipv4.icmp_ratelimit=0 nat srv b c
";

/// The hairpin/fragment topology of one test. Dropping it stops the
/// children (the agent with SIGTERM, so it detaches), removes pins a failed
/// agent may have left and deletes the namespaces, also when the test
/// panicked.
pub struct HairpinTopo {
    pub mode: Ingress,
    /// The NAT's external interface (in `nat`).
    pub ext: String,
    /// Inside host A.
    pub a: Netns,
    /// Inside hosts B and E (same segment as A).
    pub b: Netns,
    /// Inside hosts C and D (behind the second inside interface).
    pub c: Netns,
    pub nat: Netns,
    pub srv: Netns,
    agent: Option<Agent>,
    bg: Vec<BgChild>,
}

impl HairpinTopo {
    /// Builds the topology for test `tag` (≤ 4 alphanumerics, unique among
    /// the tests of the binary) in ingress `mode`, without attaching xnat.
    pub fn new(tag: &str, mode: Ingress) -> HairpinTopo {
        let mut net = Net::build("xh", "h", tag, mode, NET);
        HairpinTopo {
            mode,
            ext: net.ext.clone(),
            a: net.take("a"),
            b: net.take("b"),
            c: net.take("c"),
            nat: net.take("nat"),
            srv: net.take("srv"),
            agent: None,
            bg: Vec::new(),
        }
    }

    /// [`HairpinTopo::new`] plus [`HairpinTopo::attach`] with `filtering`.
    pub fn attached(tag: &str, mode: Ingress, filtering: Filtering) -> HairpinTopo {
        let mut t = HairpinTopo::new(tag, mode);
        t.attach(filtering, &[]);
        t
    }

    /// Starts `xnat attach EXT --ingress MODE --pool 198.51.100.1 --map
    /// 10.0.1.2=203.0.113.2 --map 10.0.0.4=203.0.113.3 --inside int0,int1
    /// --filtering F EXTRA...` in `nat`, waits until it is ready and checks
    /// its programs are on EXT and both inside interfaces.
    pub fn attach(&mut self, filtering: Filtering, extra: &[&str]) {
        assert!(self.agent.is_none(), "agent already running");
        let pool = POOL_ADDR.to_string();
        let map_c = format!("{HOST_C}={PUB_C}");
        let map_e = format!("{HOST_E}={PUB_E}");
        let mut v = vec![
            "--pool",
            &pool,
            "--internal",
            "10.0.0.0/8",
            "--map",
            &map_c,
            "--map",
            &map_e,
            "--inside",
            "int0,int1",
            "--filtering",
            filtering.name(),
        ];
        v.extend_from_slice(extra);
        let agent = Agent::attach(&self.nat, &self.ext, self.mode, &v);
        agent.assert_programs(&self.nat, self.mode);
        for inside in ["int0", "int1"] {
            let a = attached(&self.nat, inside);
            assert!(
                a.tc.iter().any(|l| l.contains("ingress")),
                "agent ready but no tc ingress program on inside interface {inside}:\n{}",
                a.raw
            );
        }
        self.agent = Some(agent);
    }

    /// The agent's output so far, for messages.
    pub fn agent_output(&self) -> String {
        match &self.agent {
            Some(a) => a.output(),
            None => "(no agent)".into(),
        }
    }

    /// Keeps a background child alive until the topology is dropped.
    pub fn keep(&mut self, child: BgChild) {
        self.bg.push(child);
    }

    /// `xnat` verbs in `nat` about EXT.
    pub fn verbs(&self) -> Xnat {
        Xnat::new(&self.nat, &self.ext)
    }

    /// Runs `xnat ARGS -i EXT` in `nat`, whatever the result.
    pub fn xnat(&self, args: &[&str]) -> Output {
        self.verbs().on(args)
    }

    /// Runs `xnat ARGS -i EXT` in `nat`; panics unless it succeeds.
    pub fn xnat_ok(&self, args: &[&str]) -> String {
        self.verbs().on_ok(args)
    }

    /// `xnat flows --json`, parsed.
    pub fn flows(&self) -> Vec<FlowRow> {
        let v = self.verbs().on_json(&["flows", "--json"]);
        v.as_array()
            .unwrap_or_else(|| panic!("`xnat flows --json` is not an array: {v}"))
            .iter()
            .map(parse_flow)
            .collect()
    }

    /// The public endpoint `xnat flows` shows for inside endpoint `inside`
    /// of protocol `proto` ("udp", "tcp", "icmp"), waiting (bounded) for it.
    pub fn public_of(&self, proto: &str, inside: SocketAddrV4) -> SocketAddrV4 {
        let deadline = Instant::now() + SOON;
        loop {
            let flows = self.flows();
            if let Some(f) = flows
                .iter()
                .find(|f| f.proto == proto && f.inside == inside)
            {
                return f.public;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no {proto} flow of {inside} in `xnat flows --json`:\n{}",
                    show_flows(&flows)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// All counters of `xnat stats --json`, by name.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.verbs().counters()
    }

    /// One counter of `xnat stats --json` by name.
    pub fn counter(&self, name: &str) -> u64 {
        self.verbs().counter(name)
    }

    /// The pin directory of EXT (`/sys/fs/bpf/xnat/EXT@ns<inode>`).
    pub fn pin_dir(&self) -> PathBuf {
        crate::topology::pin_dir(&self.ext)
    }

    /// Usage of every map pinned for EXT.
    pub fn pinned_maps(&self) -> Vec<MapUsage> {
        let dir = self.pin_dir();
        let mut v = Tables::at(&dir)
            .usage()
            .unwrap_or_else(|e| panic!("map usage in {}: {e:#}", dir.display()));
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

impl Drop for HairpinTopo {
    fn drop(&mut self) {
        // Children first (the agent gets SIGTERM and detaches), then pins a
        // misbehaving agent may have left, then (field drops) the namespaces.
        self.bg.clear();
        self.agent = None;
        remove_stale_pins(&self.ext);
    }
}

/// Renders flows for messages, one per line.
pub fn show_flows(flows: &[FlowRow]) -> String {
    flows.iter().map(|f| format!("  {}\n", f.raw)).collect()
}

// ------------------------------------------------------------------ kernel counters

/// A counter of `/proc/net/snmp` in `ns`, e.g. ("Icmp", "OutDestUnreachs").
pub fn snmp(ns: &Netns, group: &str, field: &str) -> u64 {
    let text = ns.run_ok(&["cat", "/proc/net/snmp"]);
    let prefix = format!("{group}:");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert!(
        lines.len() >= 2,
        "no {group} lines in /proc/net/snmp:\n{text}"
    );
    let names: Vec<&str> = lines[0].split_whitespace().skip(1).collect();
    let values: Vec<&str> = lines[1].split_whitespace().skip(1).collect();
    let i = names
        .iter()
        .position(|n| *n == field)
        .unwrap_or_else(|| panic!("no {group} {field} in /proc/net/snmp:\n{text}"));
    values[i]
        .parse()
        .unwrap_or_else(|e| panic!("{group} {field} = {:?}: {e}", values[i]))
}

/// IP reassembly state of `ns` from `/proc/net/sockstat`: (queues in use,
/// memory in bytes).
pub fn frag_memory(ns: &Netns) -> (u64, u64) {
    let text = ns.run_ok(&["cat", "/proc/net/sockstat"]);
    let line = text
        .lines()
        .find(|l| l.starts_with("FRAG:"))
        .unwrap_or_else(|| panic!("no FRAG line in /proc/net/sockstat:\n{text}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    let get = |k: &str| -> u64 {
        let i = w
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("no {k} in {line:?}"));
        w[i + 1].parse().unwrap()
    };
    (get("inuse"), get("memory"))
}

/// A sysctl of `ns` as a number.
pub fn sysctl_u64(ns: &Netns, key: &str) -> u64 {
    let out = ns.run_ok(&["sysctl", "-n", key]);
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("sysctl {key} = {out:?}: {e}"))
}

// ------------------------------------------------------------------ sockets

/// Receives one datagram within `timeout`: `Ok(None)` if nothing came,
/// `Err` for a socket error (e.g. ECONNREFUSED on a connected socket).
pub fn recv_one(
    sock: &UdpSocket,
    timeout: Duration,
) -> io::Result<Option<(Vec<u8>, SocketAddrV4)>> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        sock.set_read_timeout(Some(left.min(Duration::from_millis(100))))?;
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => return Ok(Some((buf[..n].to_vec(), v4(from)))),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Waits up to `timeout` for a datagram with contents `msg` on `sock`
/// (skipping others); returns its source.
pub fn expect_datagram(sock: &UdpSocket, msg: &[u8], timeout: Duration) -> Option<SocketAddrV4> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        match recv_one(sock, left) {
            Ok(Some((d, src))) if d == msg => return Some(src),
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => panic!("recv on {:?}: {e}", sock.local_addr()),
        }
    }
}

/// Sends `msg` from `from` to `to` up to `attempts` times until `at`
/// receives it; returns the source `at` saw, or `None` if it never came.
pub fn try_deliver(
    from: &UdpSocket,
    to: SocketAddrV4,
    at: &UdpSocket,
    msg: &[u8],
    attempts: u32,
    each: Duration,
) -> Option<SocketAddrV4> {
    for _ in 0..attempts {
        from.send_to(msg, to)
            .unwrap_or_else(|e| panic!("send_to {to} from {:?}: {e}", from.local_addr()));
        if let Some(src) = expect_datagram(at, msg, each) {
            return Some(src);
        }
    }
    None
}

/// A send on a connected UDP socket, retried until a receive reports an
/// error within `timeout`; returns that error, or `None`.
pub fn udp_error_within(sock: &UdpSocket, msg: &[u8], timeout: Duration) -> Option<io::Error> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Err(e) = sock.send(msg) {
            return Some(e);
        }
        match recv_one(sock, Duration::from_millis(300)) {
            Err(e) => return Some(e),
            Ok(Some((d, from))) => panic!(
                "{:?} got an answer from {from} ({} bytes) instead of an error",
                sock.local_addr(),
                d.len()
            ),
            Ok(None) => {}
        }
    }
    None
}

// ------------------------------------------------------------------ raw IPv4

/// A raw IPv4 socket (`IPPROTO_RAW`, so `IP_HDRINCL`) made inside a
/// namespace: sends complete IPv4 datagrams as built, fragments included
/// (the kernel fills in only the header checksum and the total length).
pub struct RawIp {
    fd: OwnedFd,
}

impl RawIp {
    pub fn open(ns: &Netns) -> RawIp {
        let fd = ns.in_ns(|| {
            // SAFETY: plain socket(2); ownership moves into OwnedFd at once.
            let fd = unsafe {
                libc::socket(
                    libc::AF_INET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::IPPROTO_RAW,
                )
            };
            assert!(fd >= 0, "raw socket: {}", io::Error::last_os_error());
            // SAFETY: a fresh fd we own.
            unsafe { OwnedFd::from_raw_fd(fd) }
        });
        RawIp { fd }
    }

    /// Sends one IPv4 datagram (header included) to its destination.
    pub fn send(&self, datagram: &[u8]) -> io::Result<()> {
        assert!(datagram.len() >= 20, "not an IPv4 datagram");
        let dst: [u8; 4] = datagram[16..20].try_into().unwrap();
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(dst),
            },
            sin_zero: [0; 8],
        };
        loop {
            // SAFETY: valid fd, buffer and sockaddr for the call.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    datagram.as_ptr().cast(),
                    datagram.len(),
                    0,
                    (&sin as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            // A full device queue: wait a little and retry.
            if e.raw_os_error() == Some(libc::ENOBUFS) {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            return Err(e);
        }
    }
}

/// A small deterministic xorshift generator (random-looking IP IDs).
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

// ------------------------------------------------------------------ TCP

/// What a bounded TCP echo exchange observed.
#[derive(Debug)]
pub struct TcpEcho {
    /// The client's address as the server saw it.
    pub server_saw_peer: SocketAddrV4,
    /// The client socket's own address.
    pub client_local: SocketAddrV4,
    /// What the client connected to, as its socket reports it.
    pub client_peer: SocketAddrV4,
}

/// A TCP server in `server_ns` on `listen` echoes what a client in
/// `client_ns` connected to `connect_to` sends (`len` bytes); the client
/// checks it gets the same bytes back. Unlike [`crate::traffic::tcp_echo`],
/// the whole exchange is bounded by `deadline` (a transfer that crawls
/// through retransmissions fails instead of taking minutes).
pub fn tcp_echo_within(
    client_ns: &Netns,
    server_ns: &Netns,
    listen: SocketAddrV4,
    connect_to: SocketAddrV4,
    len: usize,
    deadline: Duration,
) -> Result<TcpEcho, String> {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};

    let start = Instant::now();
    let listener = server_ns
        .in_ns(|| TcpListener::bind(listen))
        .map_err(|e| format!("bind {listen}: {e}"))?;
    let client = client_ns
        .in_ns(|| TcpStream::connect_timeout(&connect_to.into(), Duration::from_secs(3)))
        .map_err(|e| format!("connect to {connect_to}: {e}"))?;
    let (server, peer) = crate::traffic::accept_within(&listener, Duration::from_secs(3));
    let seen = TcpEcho {
        server_saw_peer: v4(peer),
        client_local: v4(client.local_addr().unwrap()),
        client_peer: v4(client.peer_addr().unwrap()),
    };
    let step = Duration::from_millis(200);
    for s in [&client, &server] {
        s.set_read_timeout(Some(step)).unwrap();
        s.set_write_timeout(Some(step)).unwrap();
    }
    let over = || start.elapsed() >= deadline;
    let data = crate::traffic::payload(len, 0x77);
    let result = std::thread::scope(|sc| {
        // Server: echo until EOF (or the deadline).
        sc.spawn(|| {
            let mut buf = vec![0u8; 65536];
            let (mut r, mut w) = (&server, &server);
            'outer: while !over() {
                match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut done = 0;
                        while done < n {
                            match w.write(&buf[done..n]) {
                                Ok(m) => done += m,
                                Err(e) if is_timeout(&e) && !over() => {}
                                Err(_) => break 'outer,
                            }
                        }
                    }
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => break,
                }
            }
            let _ = server.shutdown(Shutdown::Write);
        });
        // Client writer.
        sc.spawn(|| {
            let mut w = &client;
            let mut done = 0;
            while done < data.len() && !over() {
                match w.write(&data[done..]) {
                    Ok(m) => done += m,
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => break,
                }
            }
            let _ = client.shutdown(Shutdown::Write);
        });
        // Client reader.
        let mut got = Vec::with_capacity(len);
        let mut buf = vec![0u8; 65536];
        let mut r = &client;
        let mut eof = false;
        while !over() {
            match r.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(format!("client read after {} bytes: {e}", got.len())),
            }
        }
        // Unblock the others if the deadline passed.
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        if !eof {
            return Err(format!(
                "echo of {len} bytes via {connect_to} not done within {deadline:?}: {} bytes back",
                got.len()
            ));
        }
        if got.len() != len {
            return Err(format!(
                "echo of {len} bytes via {connect_to}: {} bytes back within {deadline:?}",
                got.len()
            ));
        }
        if got != data {
            return Err(format!(
                "echo of {len} bytes via {connect_to}: contents differ"
            ));
        }
        Ok(())
    });
    result.map(|()| seen)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
