//! The NAT64 topology (issue 19) and its traffic: an IPv6-only client, the
//! gateway (IPv6 inside, IPv4 outside, `xnat attach EXT --masquerade
//! --inside in0 --nat64 ...`), an IPv4 router whose far link has a smaller
//! MTU, and an IPv4-only server.
//!
//! ```text
//!   c6 ── in0 [gw] EXT ──── eth0 [rtr] eth1 ──── eth0 srv
//!  2001:db8:64::2/64    198.51.100.0/24       203.0.113.0/24
//!                       MTU 1450              MTU 1400
//! ```
//!
//! The gateway routes the NAT64 prefix to EXT, so that the packets xnat
//! leaves to its stack (hop limit 1, too big for EXT) get their Time
//! Exceeded and Packet Too Big (README, "NAT64").

use std::io::{Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV6, TcpListener, TcpStream,
    UdpSocket,
};
use std::time::Duration;

use nat_common::nat64::{Nat64Config, WELL_KNOWN_PREFIX};

use crate::agent::Agent;
use crate::net::Net;
use crate::netns::Netns;
use crate::topology::Ingress;
use crate::traffic::{IO_TIMEOUT, accept_within, payload, recv_within};

pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0, 2);
pub const GW6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x64, 0, 0, 0, 0, 1);
/// The gateway's external address: the NAPT pool (`--masquerade`).
pub const POOL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const RTR_EXT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);
pub const RTR_SRV: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const SRV: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// MTU of the gateway's external link.
pub const EXT_MTU: u32 = 1450;
/// MTU of the router's link to the server.
pub const SRV_LINK_MTU: u32 = 1400;

const SPEC: &str = "
hosts c6 gw rtr srv
link c6:eth0 gw:in0
link gw:EXT rtr:eth0
link rtr:eth1 srv:eth0
mtu 1450 gw:EXT rtr:eth0
mtu 1400 rtr:eth1 srv:eth0
addr c6:eth0 2001:db8:64::2/64
addr gw:in0 2001:db8:64::1/64
addr gw:EXT 198.51.100.1/24
addr rtr:eth0 198.51.100.254/24
addr rtr:eth1 203.0.113.1/24
addr srv:eth0 203.0.113.2/24
route c6 default via 2001:db8:64::1
route gw default via 198.51.100.254
route srv default via 203.0.113.1
sysctl net.ipv4.ip_forward=1 gw rtr
sysctl net.ipv6.conf.all.forwarding=1 gw
";

/// The topology with xnat attached on the gateway.
pub struct Nat64Topo {
    pub agent: Agent,
    /// How the prefix embeds IPv4 addresses.
    pub prefix: Nat64Config,
    pub net: Net,
}

impl Nat64Topo {
    /// The well-known prefix.
    pub fn start(tag: &str, mode: Ingress) -> Nat64Topo {
        Nat64Topo::with_prefix(tag, mode, "64:ff9b::/96")
    }

    /// NAT64 with `prefix` (an RFC 6052 prefix, `ADDR/LEN`).
    pub fn with_prefix(tag: &str, mode: Ingress, prefix: &str) -> Nat64Topo {
        Nat64Topo::with_args(tag, mode, prefix, &[])
    }

    /// The same with more flags. A `--nat64-map`'s public address is added
    /// to EXT, so that the router's ARP finds the gateway.
    pub fn with_args(tag: &str, mode: Ingress, prefix: &str, more: &[&str]) -> Nat64Topo {
        Nat64Topo::with_setup(tag, mode, prefix, more, |_| {})
    }

    /// The same, with `setup` run on the namespaces before the attach
    /// (`EXT` in `more` stands for the external interface, also within a
    /// flag's value: `in0,EXT`).
    pub fn with_setup(
        tag: &str,
        mode: Ingress,
        prefix: &str,
        more: &[&str],
        setup: impl FnOnce(&Net),
    ) -> Nat64Topo {
        let net = Net::build("n64", "x64", tag, mode, SPEC);
        setup(&net);
        let gw = net.ns("gw");
        gw.ip(&["-6", "route", "add", prefix, "dev", &net.ext]);
        for pair in more.windows(2).filter(|w| w[0] == "--nat64-map") {
            let (_, public) = pair[1].split_once('=').expect("IPV6=IPV4");
            gw.ip(&["addr", "add", &format!("{public}/32"), "dev", &net.ext]);
        }
        let mut args = vec!["--masquerade", "--inside", "in0", "--nat64", prefix];
        // `EXT` in the flags stands for the external interface's name.
        let more: Vec<String> = more.iter().map(|a| a.replace("EXT", &net.ext)).collect();
        args.extend(more.iter().map(String::as_str));
        let agent = Agent::attach(gw, &net.ext, mode, &args);
        let (addr, len) = prefix.split_once('/').expect("ADDR/LEN");
        let addr: Ipv6Addr = addr.parse().expect("an IPv6 prefix");
        let prefix = Nat64Config::new(addr.octets(), len.parse().expect("a length"))
            .expect("an RFC 6052 prefix");
        Nat64Topo { agent, prefix, net }
    }

    pub fn ns(&self, host: &str) -> &Netns {
        self.net.ns(host)
    }

    /// The IPv6 address the client uses for `v4`.
    pub fn synth(&self, v4: Ipv4Addr) -> Ipv6Addr {
        Ipv6Addr::from(self.prefix.embed(v4.octets()))
    }
}

/// `64:ff9b::a.b.c.d`.
pub fn well_known(v4: Ipv4Addr) -> Ipv6Addr {
    let cfg = Nat64Config::new(WELL_KNOWN_PREFIX, 96).expect("the well-known prefix");
    Ipv6Addr::from(cfg.embed(v4.octets()))
}

/// A 64-bit FNV-1a hash: enough to tell two byte streams apart.
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a TCP transfer saw.
pub struct Transfer {
    /// The client's address as the server saw it.
    pub server_saw_peer: SocketAddr,
}

/// `len` bytes over TCP from `from` to `to` through a connection the
/// client (in `client`) opens to `connect_to` on the server (in `server`,
/// listening on `listen`): `upload` sends client -> server, otherwise
/// server -> client. Panics unless every byte arrives intact.
pub fn tcp_transfer(
    client: &Netns,
    server: &Netns,
    listen: SocketAddr,
    connect_to: SocketAddr,
    len: usize,
    upload: bool,
) -> Transfer {
    let listener = server
        .in_ns(|| TcpListener::bind(listen))
        .unwrap_or_else(|e| panic!("bind {listen} in {}: {e}", server.name()));
    let c = client
        .in_ns(|| TcpStream::connect_timeout(&connect_to, IO_TIMEOUT))
        .unwrap_or_else(|e| panic!("TCP connect to {connect_to}: {e}"));
    let (s, server_saw_peer) = accept_within(&listener, IO_TIMEOUT);
    for sock in [&c, &s] {
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        sock.set_write_timeout(Some(Duration::from_secs(20)))
            .unwrap();
    }
    let data = payload(len, if upload { 0x36 } else { 0x63 });
    let (tx, rx) = if upload { (&c, &s) } else { (&s, &c) };
    let got = std::thread::scope(|sc| {
        sc.spawn(|| {
            let mut w = tx;
            w.write_all(&data).expect("TCP write");
            w.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::with_capacity(len);
        let mut r = rx;
        r.read_to_end(&mut got)
            .unwrap_or_else(|e| panic!("TCP read after {} bytes: {e}", got.len()));
        got
    });
    assert_eq!(
        (got.len(), fnv(&got)),
        (len, fnv(&data)),
        "TCP {} via {connect_to}: bytes lost or changed",
        if upload { "upload" } else { "download" }
    );
    Transfer { server_saw_peer }
}

/// One UDP request and its answer: the client (bound to `bind`) sends to
/// `send_to`, the server (bound to `listen`) answers the source it saw.
/// Returns (the source the server saw, the source the client saw).
pub fn udp_exchange(
    client: &Netns,
    server: &Netns,
    bind: SocketAddr,
    listen: SocketAddr,
    send_to: SocketAddr,
) -> (SocketAddr, SocketAddr) {
    let srv = server.in_ns(|| UdpSocket::bind(listen)).expect("bind");
    let cli = client.in_ns(|| UdpSocket::bind(bind)).expect("bind");
    let (req, resp) = (payload(600, 1), payload(900, 2));
    let mut buf = vec![0u8; 2048];
    // Bounded retries: a first datagram may meet a neighbour being resolved.
    for _ in 0..5 {
        cli.send_to(&req, send_to).expect("send_to");
        let Some((n, seen)) = recv_within(&srv, &mut buf, Duration::from_millis(800)) else {
            continue;
        };
        assert_eq!(&buf[..n], &req[..], "UDP request changed");
        srv.send_to(&resp, seen).expect("send_to");
        let Some((n, back)) = recv_within(&cli, &mut buf, Duration::from_millis(800)) else {
            continue;
        };
        assert_eq!(&buf[..n], &resp[..], "UDP answer changed");
        return (seen, back);
    }
    panic!("UDP exchange to {send_to} failed 5 times");
}

/// The IPv4 address of a socket address (panics on IPv6).
pub fn v4_of(a: SocketAddr) -> Ipv4Addr {
    match a.ip() {
        IpAddr::V4(v) => v,
        IpAddr::V6(v) => panic!("expected IPv4, got {v}"),
    }
}

/// A raw IPv6 socket (`IPPROTO_RAW`: the caller writes the IPv6 header) in
/// a namespace, to send packets the stack would not make (fragments out
/// of order).
pub struct RawIp6 {
    fd: std::os::fd::OwnedFd,
}

impl RawIp6 {
    pub fn open(ns: &Netns) -> RawIp6 {
        use std::os::fd::FromRawFd as _;
        let fd = ns.in_ns(|| {
            // SAFETY: plain socket(2); ownership moves into OwnedFd at once.
            let fd = unsafe {
                libc::socket(
                    libc::AF_INET6,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::IPPROTO_RAW,
                )
            };
            assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            // SAFETY: a fresh fd we own.
            unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
        });
        RawIp6 { fd }
    }

    /// Sends one IPv6 packet (header included) to its destination.
    pub fn send(&self, packet: &[u8]) -> std::io::Result<()> {
        use std::os::fd::AsRawFd as _;
        assert!(packet.len() >= 40, "not an IPv6 packet");
        // SAFETY: all-zero is a valid sockaddr_in6.
        let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sin6.sin6_addr.s6_addr.copy_from_slice(&packet[24..40]);
        // SAFETY: valid fd, buffer and sockaddr for the call.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&sin6 as *const libc::sockaddr_in6).cast(),
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The IPv6 fragments (header included, hop limit 64) of a UDP datagram
/// from `src` to `dst` carrying `data`, `chunk` bytes (a multiple of 8) of
/// the datagram in each but the last, fragment identification `id`.
pub fn udp6_fragments(
    src: SocketAddrV6,
    dst: SocketAddrV6,
    data: &[u8],
    id: u32,
    chunk: usize,
) -> Vec<Vec<u8>> {
    assert_eq!(chunk % 8, 0, "fragment payloads are multiples of 8 bytes");
    let mut seg = Vec::with_capacity(8 + data.len());
    seg.extend_from_slice(&src.port().to_be_bytes());
    seg.extend_from_slice(&dst.port().to_be_bytes());
    seg.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    seg.extend_from_slice(&[0, 0]);
    seg.extend_from_slice(data);
    let c = crate::frame::l6_checksum(src.ip().octets(), dst.ip().octets(), 17, &seg);
    seg[6..8].copy_from_slice(&c.to_be_bytes());
    seg.chunks(chunk)
        .enumerate()
        .map(|(i, part)| {
            let off = i * chunk;
            let more = off + part.len() < seg.len();
            let mut p = vec![0x60, 0, 0, 0];
            p.extend_from_slice(&((8 + part.len()) as u16).to_be_bytes());
            p.extend_from_slice(&[44, 64]);
            p.extend_from_slice(&src.ip().octets());
            p.extend_from_slice(&dst.ip().octets());
            let off_m = ((off / 8) as u16) << 3 | more as u16;
            p.extend_from_slice(&[17, 0]);
            p.extend_from_slice(&off_m.to_be_bytes());
            p.extend_from_slice(&id.to_be_bytes());
            p.extend_from_slice(part);
            p
        })
        .collect()
}
