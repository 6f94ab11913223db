//! The end-to-end topology for dynamic NAPT, and socket helpers the NAPT
//! tests need beyond [`crate::traffic`]:
//!
//! ```text
//!  a                     nat                              rtr                       srv
//!  eth0 10.0.0.2 ─┐
//!                 ├ int0 (bridge) 10.0.0.1/24
//!  b              │      EXT 192.0.2.1/24          ─ eth0 192.0.2.2/24
//!  eth0 10.0.0.3 ─┘          198.51.100.1-4/32        eth1 203.0.113.1/24 ── eth0 203.0.113.10/24
//!       10.0.0.4             (the NAPT pool)          (MTU 1280)               203.0.113.11/24
//!       10.0.0.5                                                               203.0.113.12/24
//! ```
//!
//! Two inside namespaces (`a` is one host, `b` holds three more inside
//! addresses) sit on a bridge `int0` in the gateway `nat`, which runs
//! `xnat attach EXT --pool ...`. The router `rtr` routes the pool prefix
//! 198.51.100.0/24 to the gateway and has *no* route to 10/8, so nothing
//! from the inside gets anywhere untranslated. Its server-side link has MTU
//! 1280 (for the PMTU test; harmless elsewhere). The server namespace `srv`
//! holds three server addresses: two for endpoint-independent mapping, the
//! third for the filtering tests.
//!
//! Like [`crate::topology`], EXT gets a unique name (`n<pid36><tag><mode>`)
//! because xnat pins its state under a directory named after the interface.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::agent::{Agent, Xnat};
use crate::net::Net;
use crate::netns::{BgChild, Netns};
use crate::topology::{Ingress, attached, pins_for, remove_stale_pins};

/// Inside host A (namespace `a`).
pub const HOST_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Inside host B (namespace `b`).
pub const HOST_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
/// A third inside address (namespace `b`).
pub const HOST_C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 4);
/// The inside server of the port-forward tests (namespace `b`).
pub const HOST_FWD: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
/// The gateway's inside address.
pub const GW_INT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The gateway's own outside address.
pub const GW_EXT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The router's address facing the gateway.
pub const RTR_EXT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The router's address facing the servers.
pub const RTR_SRV: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// Server addresses (all in namespace `srv`).
pub const SRV1: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const SRV2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 11);
pub const SRV3: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 12);
/// The pool addresses assigned to EXT; most tests use only the first.
pub const POOL: [Ipv4Addr; 4] = [
    Ipv4Addr::new(198, 51, 100, 1),
    Ipv4Addr::new(198, 51, 100, 2),
    Ipv4Addr::new(198, 51, 100, 3),
    Ipv4Addr::new(198, 51, 100, 4),
];
/// MTU of the router's server-side link.
pub const SRV_LINK_MTU: u32 = 1280;

/// Bound for socket operations of the helpers below.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// One row of `xnat flows --json`.
#[derive(Clone, Debug)]
pub struct Flow {
    pub proto: String,
    pub state: String,
    pub inside: SocketAddrV4,
    pub public: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub age_s: u64,
    pub idle_s: u64,
    pub expires_in_s: u64,
    pub packets_out: u64,
    pub packets_in: u64,
    /// The raw JSON object, for messages.
    pub raw: Value,
}

impl Flow {
    fn parse(v: &Value) -> Flow {
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
        let n = |k: &str| -> u64 {
            v.get(k)
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("flow without number {k:?}: {v}"))
        };
        Flow {
            proto: s("proto"),
            state: s("state"),
            inside: ep("inside"),
            public: ep("public"),
            remote: ep("remote"),
            age_s: n("age_s"),
            idle_s: n("idle_s"),
            expires_in_s: n("expires_in_s"),
            packets_out: n("packets_out"),
            packets_in: n("packets_in"),
            raw: v.clone(),
        }
    }
}

/// Renders flows for messages, one per line.
pub fn show_flows(flows: &[Flow]) -> String {
    flows
        .iter()
        .map(|f| format!("  {}\n", f.raw))
        .collect::<String>()
}

/// The network of the diagram above (see [`crate::net`]).
const NET: &str = "
    hosts a b nat rtr srv
    link a:eth0 nat:ia
    link b:eth0 nat:ib
    link nat:EXT rtr:eth0
    link rtr:eth1 srv:eth0
    # The inside on a bridge (STP off, so its ports forward at once).
    bridge nat:int0 ia ib
    mtu 1280 rtr:eth1 srv:eth0   # SRV_LINK_MTU
    addr a:eth0 10.0.0.2/24
    addr b:eth0 10.0.0.3/24 10.0.0.4/24 10.0.0.5/24
    addr nat:int0 10.0.0.1/24
    addr nat:EXT 192.0.2.1/24 198.51.100.1/32 198.51.100.2/32 198.51.100.3/32 198.51.100.4/32
    addr rtr:eth0 192.0.2.2/24
    addr rtr:eth1 203.0.113.1/24
    addr srv:eth0 203.0.113.10/24 203.0.113.11/24 203.0.113.12/24
    route a default via 10.0.0.1
    route b default via 10.0.0.1
    route nat default via 192.0.2.2
    # The router: no route to 10/8, only the pool prefix via the gateway.
    route rtr 198.51.100.0/24 via 192.0.2.1
    route srv default via 203.0.113.1
    sysctl net.ipv4.ip_forward=1 nat rtr
    # ICMP errors are rate limited per destination (1/s, burst 6), and
    # every inside host shares the public address the router and the
    # servers answer to: lift the limit so traceroutes from two hosts and
    # the ECONNREFUSED/PMTU probes never lose an error to it.
    sysctl net.ipv4.icmp_ratelimit=0 nat rtr srv
";

/// The NAPT topology of one test. Dropping it stops the children (the
/// agent with SIGTERM, so it detaches), removes pins a failed agent may have
/// left and deletes the namespaces, also when the test panicked.
pub struct NaptTopo {
    pub mode: Ingress,
    /// The NAT's external interface (in `nat`).
    pub ext: String,
    /// Inside host A (10.0.0.2).
    pub a: Netns,
    /// Inside hosts B (10.0.0.3), 10.0.0.4 and 10.0.0.5.
    pub b: Netns,
    pub nat: Netns,
    pub rtr: Netns,
    pub srv: Netns,
    pub(crate) agent: Option<Agent>,
    bg: Vec<BgChild>,
}

impl NaptTopo {
    /// Builds the topology for test `tag` (≤ 4 alphanumerics, unique among
    /// the tests of the binary) in ingress `mode`, without attaching xnat.
    pub fn new(tag: &str, mode: Ingress) -> NaptTopo {
        let mut net = Net::build("xn", "n", tag, mode, NET);
        NaptTopo {
            mode,
            ext: net.ext.clone(),
            a: net.take("a"),
            b: net.take("b"),
            nat: net.take("nat"),
            rtr: net.take("rtr"),
            srv: net.take("srv"),
            agent: None,
            bg: Vec::new(),
        }
    }

    /// Starts `xnat attach EXT --ingress MODE ARGS...` in `nat`, waits
    /// until it is ready and checks its programs are on EXT.
    pub fn attach(&mut self, args: &[&str]) {
        self.start_agent(args);
        let agent = self.agent.as_ref().expect("agent started");
        agent.assert_programs(&self.nat, self.mode);
    }

    /// Starts `xnat attach EXT --ingress MODE ARGS...` in `nat` and waits
    /// until it is ready; returns its ready line.
    pub fn start_agent(&mut self, args: &[&str]) -> String {
        assert!(self.agent.is_none(), "an agent is already running");
        let agent = Agent::attach(&self.nat, &self.ext, self.mode, args);
        let line = agent.ready_line().to_string();
        self.agent = Some(agent);
        line
    }

    /// The running agent.
    pub fn agent(&mut self) -> &mut Agent {
        self.agent.as_mut().expect("no agent running")
    }

    /// Takes the agent out (e.g. to wait for it to exit on its own).
    pub fn take_agent(&mut self) -> Agent {
        self.agent.take().expect("no agent running")
    }

    /// Stops the agent with SIGTERM and checks it exited 0 and left no
    /// program and no pin behind.
    pub fn stop_agent(&mut self) {
        self.take_agent().stop();
        let a = attached(&self.nat, &self.ext);
        assert!(a.is_empty(), "programs left on {}:\n{}", self.ext, a.raw);
        let pins = pins_for(&self.ext);
        assert!(pins.is_empty(), "pins left for {}: {pins:?}", self.ext);
    }

    /// The agent's output so far (stdout + stderr), for messages.
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

    /// Runs `xnat ARGS -i EXT` in `nat`; panics unless it succeeds; returns
    /// stdout.
    pub fn xnat_ok(&self, args: &[&str]) -> String {
        self.verbs().on_ok(args)
    }

    fn json(&self, args: &[&str]) -> Value {
        self.verbs().on_json(args)
    }

    /// `xnat flows --json FILTER...`, parsed.
    pub fn flows(&self, filter: &[&str]) -> Vec<Flow> {
        let mut args = vec!["flows", "--json"];
        args.extend_from_slice(filter);
        let v = self.json(&args);
        v.as_array()
            .unwrap_or_else(|| panic!("`xnat flows --json` is not an array: {v}"))
            .iter()
            .map(Flow::parse)
            .collect()
    }

    /// `xnat stats --json`.
    pub fn stats(&self) -> Value {
        self.verbs().stats()
    }

    /// A counter of `xnat stats --json` by name.
    pub fn counter(&self, name: &str) -> u64 {
        self.verbs().counter(name)
    }

    /// A counter of `xnat stats --json` by name, `None` if this build has
    /// no such counter (a test of a counter still being added can then fail
    /// on the behaviour it checks rather than on the name).
    pub fn try_counter(&self, name: &str) -> Option<u64> {
        self.verbs().try_counter(name)
    }

    /// A number under `napt` in `xnat stats --json` (`mappings`, `sessions`).
    pub fn napt_stat(&self, name: &str) -> u64 {
        let v = self.stats();
        v["napt"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("`xnat stats --json` has no napt.{name}: {v}"))
    }

    /// `napt.pool_ports_in_use[addr]` of `xnat stats --json`.
    pub fn ports_in_use(&self, addr: Ipv4Addr) -> u64 {
        let v = self.stats();
        v["napt"]["pool_ports_in_use"][addr.to_string()]
            .as_u64()
            .unwrap_or_else(|| panic!("`xnat stats --json` has no pool_ports_in_use[{addr}]: {v}"))
    }

    /// `xnat forward list --json` as (proto, public, inside) strings.
    pub fn forward_list(&self) -> Vec<(String, String, String)> {
        let v = self.json(&["forward", "list", "--json"]);
        let s = |e: &Value, k: &str| -> String {
            e[k].as_str()
                .unwrap_or_else(|| panic!("forward list entry without {k:?}: {e}"))
                .to_string()
        };
        v.as_array()
            .unwrap_or_else(|| panic!("`xnat forward list --json` is not an array: {v}"))
            .iter()
            .map(|e| (s(e, "proto"), s(e, "public"), s(e, "inside")))
            .collect()
    }
}

impl Drop for NaptTopo {
    fn drop(&mut self) {
        // Children first (the agent gets SIGTERM and detaches), then pins a
        // misbehaving agent may have left, then (field drops) the namespaces.
        self.bg.clear();
        self.agent = None;
        remove_stale_pins(&self.ext);
    }
}

/// `SocketAddrV4::new` shorthand.
/// `xnat attach` arguments every NAPT test starts with: a pool of the first
/// pool address and the inside network, then `extra`.
pub fn napt_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--pool", "198.51.100.1", "--internal", "10.0.0.0/8"];
    v.extend_from_slice(extra);
    v
}

pub fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// The IPv4 socket address of `a` (panics on IPv6).
pub fn v4(a: SocketAddr) -> SocketAddrV4 {
    match a {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(a) => panic!("unexpected IPv6 address {a}"),
    }
}

/// A UDP socket bound to `local` inside `ns`.
///
/// "Address in use" is retried for a moment: a socket the test just closed
/// can live on in a child that another test thread is forking (until that
/// child execs), so rebinding its address right away can fail.
pub fn udp_bind(ns: &Netns, local: SocketAddrV4) -> UdpSocket {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match ns.in_ns(|| UdpSocket::bind(local)) {
            Ok(s) => return s,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("bind UDP {local} in {}: {e}", ns.name()),
        }
    }
}

/// A UDP socket bound to `local` inside `ns` and connected to `remote`.
pub fn udp_connected(ns: &Netns, local: SocketAddrV4, remote: SocketAddrV4) -> UdpSocket {
    let s = udp_bind(ns, local);
    s.connect(remote)
        .unwrap_or_else(|e| panic!("connect UDP {local} -> {remote}: {e}"));
    s
}

/// A TCP listener on `addr` inside `ns`.
pub fn tcp_listen(ns: &Netns, addr: SocketAddrV4) -> TcpListener {
    ns.in_ns(|| TcpListener::bind(addr))
        .unwrap_or_else(|e| panic!("listen TCP {addr} in {}: {e}", ns.name()))
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) {
    // SAFETY: valid fd and a live int for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt({level}, {opt}): {}",
        io::Error::last_os_error()
    );
}

/// A TCP connection from `local` (port 0: any) to `remote`, made inside
/// `ns`, with SO_REUSEADDR when `reuse` (so several connections can share
/// one local port). The connect is bounded by [`IO_TIMEOUT`]; reads and
/// writes of the returned stream too.
pub fn tcp_connect(
    ns: &Netns,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    reuse: bool,
) -> io::Result<TcpStream> {
    let s = ns.in_ns(move || -> io::Result<TcpStream> {
        // SAFETY: plain socket(2); ownership moves into OwnedFd at once.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        if reuse {
            setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
        }
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let l = sockaddr(local);
        // SAFETY: valid fd and sockaddr.
        if unsafe { libc::bind(fd.as_raw_fd(), (&l as *const libc::sockaddr_in).cast(), len) } != 0
        {
            return Err(io::Error::last_os_error());
        }
        let stream = TcpStream::from(fd);
        // A blocking connect honours SO_SNDTIMEO (EINPROGRESS on timeout).
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        let r = sockaddr(remote);
        // SAFETY: valid fd and sockaddr.
        let rc = unsafe {
            libc::connect(
                stream.as_raw_fd(),
                (&r as *const libc::sockaddr_in).cast(),
                len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stream)
    })?;
    Ok(s)
}

/// A TCP socket bound to `local` (SO_REUSEADDR) inside `ns` whose
/// connect to `remote` has been started but not waited for (non-blocking:
/// the SYN is on its way). [`connect_state`] tells how it went. For
/// simultaneous opens and for SYNs that must go unanswered.
pub fn tcp_connect_start(ns: &Netns, local: SocketAddrV4, remote: SocketAddrV4) -> TcpStream {
    ns.in_ns(move || -> io::Result<TcpStream> {
        // SAFETY: plain socket(2); ownership moves into OwnedFd at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let l = sockaddr(local);
        // SAFETY: valid fd and sockaddr.
        if unsafe { libc::bind(fd.as_raw_fd(), (&l as *const libc::sockaddr_in).cast(), len) } != 0
        {
            return Err(io::Error::last_os_error());
        }
        let r = sockaddr(remote);
        // SAFETY: valid fd and sockaddr.
        let rc =
            unsafe { libc::connect(fd.as_raw_fd(), (&r as *const libc::sockaddr_in).cast(), len) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
        }
        Ok(TcpStream::from(fd))
    })
    .unwrap_or_else(|e| panic!("TCP connect {local} -> {remote} in {}: {e}", ns.name()))
}

/// Where a connect started by [`tcp_connect_start`] stands.
#[derive(Debug)]
pub enum ConnectState {
    /// Still trying (SYN_SENT or SYN_RECV).
    Pending,
    /// Established.
    Connected,
    /// Failed: ECONNREFUSED for a reset, ETIMEDOUT, EHOSTUNREACH, ...
    Failed(io::Error),
}

/// Polls (without waiting) a connect started by [`tcp_connect_start`].
pub fn connect_state(s: &TcpStream) -> ConnectState {
    let mut pfd = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no timeout.
    let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
    assert!(rc >= 0, "poll: {}", io::Error::last_os_error());
    if rc == 0 {
        return ConnectState::Pending;
    }
    match s.take_error() {
        Ok(None) => ConnectState::Connected,
        Ok(Some(e)) => ConnectState::Failed(e),
        Err(e) => panic!("getsockopt SO_ERROR: {e}"),
    }
}

/// Receives one datagram within `timeout`: `Ok(None)` if nothing came,
/// `Err` for a socket error (e.g. ECONNREFUSED on a connected socket).
pub fn recv_within(
    sock: &UdpSocket,
    timeout: Duration,
) -> io::Result<Option<(Vec<u8>, SocketAddr)>> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        sock.set_read_timeout(Some(left.min(Duration::from_millis(100))))?;
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => return Ok(Some((buf[..n].to_vec(), from))),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Everything `sock` receives within `window`, as (payload, source).
pub fn drain_for(sock: &UdpSocket, window: Duration) -> Vec<(Vec<u8>, SocketAddr)> {
    let deadline = Instant::now() + window;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return got;
        }
        match recv_within(sock, left) {
            Ok(Some(d)) => got.push(d),
            Ok(None) => return got,
            Err(e) => panic!("recv on {:?}: {e}", sock.local_addr()),
        }
    }
}

/// Sends `msg` (followed by a tag unique to the call) from `from` to `to`
/// until `at` (the receiving socket) receives it, retrying a few times
/// within a bounded time; returns the source address `at` saw. Datagrams
/// with other contents are skipped.
pub fn udp_deliver(from: &UdpSocket, to: SocketAddrV4, at: &UdpSocket, msg: &[u8]) -> SocketAddrV4 {
    // Every call's datagrams carry a tag of their own: on a slow machine a
    // resent datagram's first copy can arrive late, and the next call to
    // the same receiver must not take it for its own.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tagged = msg.to_vec();
    tagged.extend_from_slice(format!(" #{call}").as_bytes());
    let msg = tagged.as_slice();
    for _attempt in 0..5 {
        from.send_to(msg, to)
            .unwrap_or_else(|e| panic!("send_to {to} from {:?}: {e}", from.local_addr()));
        let deadline = Instant::now() + Duration::from_millis(800);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match recv_within(at, left) {
                Ok(Some((d, src))) if d == msg => return v4(src),
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => panic!("recv on {:?}: {e}", at.local_addr()),
            }
        }
    }
    panic!(
        "UDP {:?} -> {to}: {:?} never received it (5 attempts)",
        from.local_addr(),
        at.local_addr()
    );
}

/// A send on a connected UDP socket, retried until a receive reports an
/// error (an ICMP error the kernel matched to the socket) within `timeout`;
/// returns that error, or `None` if none came.
pub fn udp_error_within(sock: &UdpSocket, msg: &[u8], timeout: Duration) -> Option<io::Error> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Err(e) = sock.send(msg) {
            return Some(e);
        }
        match recv_within(sock, Duration::from_millis(300)) {
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

/// IP_MTU_DISCOVER = IP_PMTUDISC_DO: set DF and never fragment locally.
pub fn set_pmtudisc_do(sock: &UdpSocket) {
    setsockopt_int(
        sock.as_raw_fd(),
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DO,
    );
}

/// getsockopt IP_MTU of a connected socket: the path MTU the kernel knows.
pub fn ip_mtu(sock: &UdpSocket) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd, a live int and its length.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

/// Hop addresses of `traceroute -n -q 1` output (`None` for `*`).
pub fn hops(out: &str) -> Vec<Option<String>> {
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.next()?.parse::<u32>().ok()?;
            // With several probes per hop a line reads `2  * 192.0.2.2 0.1 ms
            // *`: the hop answered if any probe did.
            Some(
                w.find(|t| t.parse::<std::net::Ipv4Addr>().is_ok())
                    .map(str::to_string),
            )
        })
        .collect()
}
