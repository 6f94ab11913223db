//! The end-to-end topology of the fast-path tests (`--fast-path`), built on
//! the static topology of [`crate::topology`]:
//!
//! ```text
//!  cli                nat                          rtr                         srv
//!  eth0 10.0.0.2/24 ─ int0 10.0.0.1/24   (--inside int0)
//!       10.0.0.3/24   EXT  192.0.2.1/24        ─  eth0 192.0.2.2/24
//!                          203.0.113.1/32          eth1 198.51.100.1/24    ─  eth0 198.51.100.2/24
//!                          203.0.113.2/32
//! ```
//!
//! The gateway runs `xnat attach EXT --map 10.0.0.2=203.0.113.1 --pool
//! 203.0.113.2 --internal 10.0.0.0/24 --inside int0 [--fast-path]`: the
//! client's first address is statically mapped, its second one ([`CLI2`])
//! is masqueraded (NAPT) behind the pool address [`POOL`]. Inbound, the
//! fast path redirects from EXT to `int0` (TC mode only, see below);
//! outbound, from `int0` to EXT.
//!
//! In XDP ingress mode the inbound fast path redirects only to devices in
//! the `XDP_TARGETS` map, which the agent fills with the devices running
//! its XDP programs and those named by `--xdp-redirect`: `int0` is a veth
//! with the TC program only, so unless named it is not there and inbound
//! translated packets go to the stack (`fast_path_inbound` stays 0), while
//! the outbound fast path (TC on `int0`) works in both modes. No XDP
//! program is attached to the inside host: traffic must work without one.
//! [`NoopXdp`] lets a test build the cases where an XDP redirect into a
//! veth delivers (the peer has an XDP program). As
//! everywhere in XDP mode, the outside peer of EXT sends complete checksums
//! (tx checksum offload off, DESIGN §2).
//!
//! ICMP error rate limits are lifted in `nat`, `rtr` and `srv`: traceroutes
//! and ICMP errors must never be lost to them.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aya::Ebpf;
use aya::programs::{Xdp, XdpMode};
use nat_common::{
    FAST_PATH_EXT_IFINDEX, FAST_PATH_ON, MAP_FAST_PATH, MAP_XDP_TARGETS, PROG_NOOP_XDP,
};
use nat_userspace::tables::Tables;

use crate::napt_topo::{tcp_connect, tcp_listen, udp_bind, v4};
use crate::netns::Netns;
use crate::topology::{Ingress, STATIC_MAP, Topology, pin_dir};
use crate::traffic::{accept_within, payload};

pub use crate::topology::{CLI, CLI2, GW_EXT, GW_INT, PUB1, RTR_EXT, RTR_SRV, SRV};

/// The NAPT pool (one address, assigned to EXT by [`Topology`]).
pub const POOL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);

/// The counters the fast-path tests watch, read together from one
/// `xnat stats --json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FpCounters {
    /// `fast_path_inbound`.
    pub fp_in: u64,
    /// `fast_path_outbound`.
    pub fp_out: u64,
    /// `ingress_translated_packets` (every inbound translation, fast or not).
    pub ingress: u64,
    /// `egress_translated_packets` (every outbound translation, fast or not).
    pub egress: u64,
    /// `passed_not_ours` (anything the programs looked at and left alone).
    pub not_ours: u64,
}

impl FpCounters {
    /// `self - before`, counter by counter.
    pub fn since(&self, before: &FpCounters) -> FpCounters {
        FpCounters {
            fp_in: self.fp_in - before.fp_in,
            fp_out: self.fp_out - before.fp_out,
            ingress: self.ingress - before.ingress,
            egress: self.egress - before.egress,
            not_ours: self.not_ours - before.not_ours,
        }
    }
}

/// `xnat_noop_xdp` attached to an interface of a namespace (what makes a
/// veth accept XDP redirects into its peer); detached when dropped (or when
/// the interface goes away with its namespace).
pub struct NoopXdp {
    _ebpf: Ebpf,
}

impl NoopXdp {
    /// Loads the object and attaches `xnat_noop_xdp` to `iface` in `ns`
    /// (`XdpMode::Default`: native mode on a veth).
    pub fn attach(ns: &Netns, iface: &str) -> NoopXdp {
        let iface = iface.to_string();
        let ebpf = ns.in_ns(move || -> Result<Ebpf, String> {
            let mut ebpf = aya::EbpfLoader::new()
                .load(nat_userspace::ebpf_object())
                .map_err(|e| format!("loading xnat's BPF object: {e}"))?;
            let prog: &mut Xdp = ebpf
                .program_mut(PROG_NOOP_XDP)
                .ok_or_else(|| format!("no program {PROG_NOOP_XDP}"))?
                .try_into()
                .map_err(|e| format!("{PROG_NOOP_XDP}: {e}"))?;
            prog.load()
                .map_err(|e| format!("loading {PROG_NOOP_XDP}: {e}"))?;
            prog.attach(&iface, XdpMode::Default)
                .map_err(|e| format!("attaching {PROG_NOOP_XDP} to {iface}: {e}"))?;
            Ok(ebpf)
        });
        NoopXdp {
            _ebpf: ebpf.unwrap_or_else(|e| panic!("in {}: {e}", ns.name())),
        }
    }
}

/// The fast-path topology of one test. Dropping it stops the agent and
/// deletes the namespaces (also on panic).
pub struct FastTopo {
    pub t: Topology,
}

impl FastTopo {
    /// [`tcp_bulk`] from the client's address `from` to the server's port
    /// `port`, `bytes` each way.
    pub fn tcp_to_server(&self, from: Ipv4Addr, port: u16, bytes: usize) -> Bulk {
        let srv = SocketAddrV4::new(SRV, port);
        tcp_bulk(
            &self.t.cli,
            SocketAddrV4::new(from, 0),
            &self.t.srv,
            srv,
            srv,
            bytes,
            bytes,
        )
    }

    /// Builds the topology for test `tag` (≤ 4 alphanumerics, unique in
    /// the test binary) in ingress `mode`, without attaching xnat.
    pub fn new(tag: &str, mode: Ingress) -> FastTopo {
        let t = Topology::new(tag, mode);
        for ns in [&t.nat, &t.rtr, &t.srv] {
            ns.sysctl("net.ipv4.icmp_ratelimit", "0");
        }
        FastTopo { t }
    }

    /// The running attachment's pin directory (`PIN_ROOT/EXT@ns<inode>`).
    pub fn pin_dir(&self) -> PathBuf {
        pin_dir(&self.t.ext)
    }

    /// The pinned `FAST_PATH` array: `[on, external ifindex]`.
    pub fn fast_path_map(&self) -> [u32; 2] {
        let a = Tables::at(&self.pin_dir())
            .fast_path()
            .unwrap_or_else(|e| panic!("{MAP_FAST_PATH}: {e:#}"));
        [FAST_PATH_ON, FAST_PATH_EXT_IFINDEX].map(|i| {
            a.get(&i, 0)
                .unwrap_or_else(|e| panic!("{MAP_FAST_PATH}[{i}]: {e}"))
        })
    }

    /// The pinned `XDP_TARGETS` devmap as (key, target ifindex), sorted.
    pub fn xdp_targets(&self) -> Vec<(u32, u32)> {
        let m = Tables::at(&self.pin_dir())
            .xdp_targets()
            .unwrap_or_else(|e| panic!("{MAP_XDP_TARGETS}: {e:#}"));
        let mut v: Vec<(u32, u32)> = m
            .iter()
            .map(|r| {
                let (k, val) = r.unwrap_or_else(|e| panic!("iterating {MAP_XDP_TARGETS}: {e}"));
                (k, val.if_index)
            })
            .collect();
        v.sort();
        v
    }

    /// The attach arguments: static map, NAPT pool, inside interface, and
    /// `--fast-path` when `fast`.
    pub fn attach_args(fast: bool) -> Vec<&'static str> {
        let mut v = vec![
            "--map",
            STATIC_MAP,
            "--pool",
            "203.0.113.2",
            "--internal",
            "10.0.0.0/24",
            "--inside",
            "int0",
        ];
        if fast {
            v.push("--fast-path");
        }
        v
    }

    /// `xnat attach` with [`FastTopo::attach_args`].
    pub fn attach(&mut self, fast: bool) {
        self.t.attach(&Self::attach_args(fast));
    }

    /// The fast-path counters and the translation counters, now.
    pub fn counters(&self) -> FpCounters {
        let v = self.t.stats();
        let c = |name: &str| {
            crate::topology::json_counter(&v["counters"], name)
                .unwrap_or_else(|| panic!("`xnat stats --json` has no counter {name:?}: {v}"))
        };
        FpCounters {
            fp_in: c("fast_path_inbound"),
            fp_out: c("fast_path_outbound"),
            ingress: c("ingress_translated_packets"),
            egress: c("egress_translated_packets"),
            not_ours: c("passed_not_ours"),
        }
    }
}

/// The ifindex of `iface` in `ns`.
pub fn ifindex(ns: &Netns, iface: &str) -> u32 {
    let out = ns.ip(&["-o", "link", "show", "dev", iface]);
    out.split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ifindex for {iface} in {}: {out:?}", ns.name()))
}

// ------------------------------------------------------------------ traffic

/// A 64-bit FNV-1a hash, for messages about big payloads.
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a [`tcp_bulk`] transfer observed.
#[derive(Debug)]
pub struct Bulk {
    /// The client as the server saw it.
    pub server_saw: SocketAddrV4,
}

fn read_exact_len(s: &mut TcpStream, len: usize, what: &str) -> Vec<u8> {
    let mut got = Vec::with_capacity(len);
    let mut buf = vec![0u8; 256 * 1024];
    while got.len() < len {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{what}: read after {} of {len} bytes: {e}", got.len()),
        }
    }
    got
}

fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    assert!(
        got.len() == want.len() && got == want,
        "{what}: got {} bytes (fnv {:016x}), want {} bytes (fnv {:016x}){}",
        got.len(),
        fnv(got),
        want.len(),
        fnv(want),
        match got.iter().zip(want).position(|(a, b)| a != b) {
            Some(i) => format!(", first difference at byte {i}"),
            None => String::new(),
        }
    );
}

/// One TCP connection from `client_ns` (bound to `bind`, port 0 = any) to
/// `connect_to`, accepted by a listener on `listen` in `server_ns`: first
/// the client uploads `up` bytes (the server checks them), then the server
/// sends `down` bytes and closes (the client checks them, and that nothing
/// follows).
pub fn tcp_bulk(
    client_ns: &Netns,
    bind: SocketAddrV4,
    server_ns: &Netns,
    listen: SocketAddrV4,
    connect_to: SocketAddrV4,
    up: usize,
    down: usize,
) -> Bulk {
    let listener = tcp_listen(server_ns, listen);
    let mut client = tcp_connect(client_ns, bind, connect_to, false)
        .unwrap_or_else(|e| panic!("TCP connect {bind} -> {connect_to}: {e}"));
    let (mut server, peer) = accept_within(&listener, Duration::from_secs(5));
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    server
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let up_data = payload(up, 0x3c);
    let down_data = payload(down, 0xc3);
    std::thread::scope(|sc| {
        let srv = sc.spawn(|| {
            let got = read_exact_len(&mut server, up, "server (upload)");
            assert_same(&format!("upload {bind} -> {connect_to}"), &got, &up_data);
            server.write_all(&down_data).expect("server write");
            server.shutdown(Shutdown::Write).unwrap();
        });
        client.write_all(&up_data).expect("client write");
        let mut got = Vec::with_capacity(down);
        client
            .read_to_end(&mut got)
            .unwrap_or_else(|e| panic!("client read (download) after {} bytes: {e}", got.len()));
        srv.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        assert_same(
            &format!("download {connect_to} -> {bind}"),
            &got,
            &down_data,
        );
    });
    Bulk {
        server_saw: v4(peer),
    }
}

/// A UDP client/server pair for request/response exchanges.
pub struct UdpPair {
    pub client: UdpSocket,
    pub server: UdpSocket,
    /// Where the client sends (the server's address as the client knows it).
    pub to: SocketAddrV4,
    seq: u32,
}

/// What one request/response exchange observed.
#[derive(Clone, Copy, Debug)]
pub struct Exchange {
    /// The client as the server saw it.
    pub server_saw: SocketAddrV4,
    /// The source of the reply at the client.
    pub client_saw: SocketAddrV4,
    /// Requests sent before the exchange completed (1 = no loss).
    pub attempts: u32,
}

impl UdpPair {
    /// A client bound to `bind` in `client_ns` and a server bound to
    /// `listen` in `server_ns`; the client sends to `to`.
    pub fn new(
        client_ns: &Netns,
        bind: SocketAddrV4,
        server_ns: &Netns,
        listen: SocketAddrV4,
        to: SocketAddrV4,
    ) -> UdpPair {
        UdpPair {
            client: udp_bind(client_ns, bind),
            server: udp_bind(server_ns, listen),
            to,
            seq: 0,
        }
    }

    /// One request of `len` bytes (≥ 4), answered by the server with `len`
    /// bytes to the source it saw; both checked byte for byte. Lost
    /// datagrams are retried up to `tries` times, each waiting `wait`.
    /// `None` if it never completed.
    pub fn try_exchange(&mut self, len: usize, tries: u32, wait: Duration) -> Option<Exchange> {
        self.seq += 1;
        let tag = self.seq.to_be_bytes();
        let mut req = payload(len, 0x11);
        req[..4].copy_from_slice(&tag);
        let mut resp = payload(len, 0x22);
        resp[..4].copy_from_slice(&tag);
        let mut buf = vec![0u8; 65536];
        for attempt in 1..=tries {
            self.client
                .send_to(&req, self.to)
                .unwrap_or_else(|e| panic!("send_to {}: {e}", self.to));
            let Some((n, from)) = recv_tagged(&self.server, &mut buf, &tag, wait) else {
                continue;
            };
            assert_same(&format!("UDP request to {}", self.to), &buf[..n], &req);
            self.server.send_to(&resp, from).expect("server send_to");
            let Some((n, src)) = recv_tagged(&self.client, &mut buf, &tag, wait) else {
                continue;
            };
            assert_same(&format!("UDP reply from {}", self.to), &buf[..n], &resp);
            return Some(Exchange {
                server_saw: v4(from),
                client_saw: v4(src),
                attempts: attempt,
            });
        }
        None
    }

    /// [`UdpPair::try_exchange`] with 5 tries of 1 s; panics if it fails.
    pub fn exchange(&mut self, len: usize) -> Exchange {
        let seq = self.seq + 1;
        self.try_exchange(len, 5, Duration::from_secs(1))
            .unwrap_or_else(|| {
                panic!(
                    "UDP exchange #{seq} ({len} bytes) {:?} -> {} failed 5 times",
                    self.client.local_addr(),
                    self.to
                )
            })
    }
}

/// Receives datagrams until one starts with `tag` (older, retried ones are
/// skipped) or `timeout` passes.
fn recv_tagged(
    sock: &UdpSocket,
    buf: &mut [u8],
    tag: &[u8; 4],
    timeout: Duration,
) -> Option<(usize, SocketAddr)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        sock.set_read_timeout(Some(left.min(Duration::from_millis(100))))
            .unwrap();
        match sock.recv_from(buf) {
            Ok((n, from)) if n >= 4 && buf[..4] == tag[..] => return Some((n, from)),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("recv on {:?}: {e}", sock.local_addr()),
        }
    }
}
