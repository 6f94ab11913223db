//! Seeing what a host's kernel receives, without tcpdump: a raw IPv4
//! socket of one protocol (ICMP or TCP) made inside a namespace gets a copy
//! of every datagram of that protocol delivered to the namespace's own
//! addresses, IPv4 header included, whether or not a socket wants it. Plus
//! parsers for what the tests look at (ICMP errors and the datagram they
//! quote, TCP segments) with an RFC 1071 checksum of their own, so every
//! checksum verdict is computed from the received bytes alone and owes
//! nothing to the data plane's arithmetic.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::netns::Netns;

/// IP protocol numbers a capture can be opened for.
pub const IPPROTO_ICMP: i32 = libc::IPPROTO_ICMP;
pub const IPPROTO_TCP: i32 = libc::IPPROTO_TCP;

/// A raw socket (`SOCK_RAW`, one protocol) inside a namespace.
pub struct RawCapture {
    fd: OwnedFd,
    what: String,
}

impl RawCapture {
    /// Opens the capture for `proto` ([`IPPROTO_ICMP`], [`IPPROTO_TCP`]) in
    /// `ns`; it sees datagrams that arrive from now on.
    pub fn open(ns: &Netns, proto: i32) -> RawCapture {
        let fd = ns.in_ns(move || {
            // SAFETY: plain socket(2); ownership moves into OwnedFd at once.
            let fd = unsafe {
                libc::socket(
                    libc::AF_INET,
                    libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    proto,
                )
            };
            assert!(fd >= 0, "raw socket: {}", io::Error::last_os_error());
            // SAFETY: a fresh fd we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // Room for a burst (a flood, a scan) before the test reads it.
            let size: libc::c_int = 4 << 20;
            // SAFETY: valid fd, a live int and its length.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            fd
        });
        RawCapture {
            fd,
            what: format!("raw socket (protocol {proto}) in {}", ns.name()),
        }
    }

    /// A packet socket (`AF_PACKET`, every protocol) bound to the device
    /// `ifindex` of `ns`: it sees every frame the device receives or sends
    /// from now on, Ethernet header included (what a TC program's
    /// `bpf_clone_redirect` re-injects at the device's ingress shows here
    /// too, as received).
    pub fn open_link(ns: &Netns, ifindex: u32) -> RawCapture {
        let fd = ns.in_ns(move || {
            let proto = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: plain socket(2); ownership moves into OwnedFd at once.
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    proto as i32,
                )
            };
            assert!(fd >= 0, "packet socket: {}", io::Error::last_os_error());
            // SAFETY: a fresh fd we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: a zeroed sockaddr_ll is valid; filled below.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex as i32;
            // SAFETY: valid fd and a live sockaddr_ll of that length.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            assert!(
                r == 0,
                "binding the packet socket: {}",
                io::Error::last_os_error()
            );
            fd
        });
        RawCapture {
            fd,
            what: format!("packet socket on ifindex {ifindex} in {}", ns.name()),
        }
    }

    /// The next datagram (IPv4 header included) within `timeout`.
    pub fn recv_within(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: valid fd and buffer.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                buf.truncate(n as usize);
                return Some(buf);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted {
                panic!("recv on the {}: {e}", self.what);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, 100) as libc::c_int;
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, ms) };
        }
    }

    /// Every datagram that arrives within `window`.
    pub fn collect_for(&self, window: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return got;
            }
            if let Some(d) = self.recv_within(left) {
                got.push(d);
            }
        }
    }

    /// Reads datagrams until `f` returns `Some` for one (returned), or
    /// `timeout` passes (`None`). Every datagram read is appended to `seen`.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        seen: &mut Vec<Vec<u8>>,
        mut f: impl FnMut(&[u8]) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let d = self.recv_within(left)?;
            let hit = f(&d);
            seen.push(d);
            if hit.is_some() {
                return hit;
            }
        }
    }
}

/// The RFC 1071 Internet checksum of `data` (the value to store: the
/// complement of the folded one's-complement sum). Over data that holds
/// its own checksum, a correct one gives 0.
pub fn inet_checksum(data: &[u8]) -> u16 {
    !fold(sum16(0, data))
}

fn sum16(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Whether a TCP or UDP segment (checksum field included) checks out over
/// the IPv4 pseudo-header of `src` → `dst`. A UDP checksum of 0 (none
/// sent) counts as valid.
pub fn l4_checksum_ok(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, segment: &[u8]) -> bool {
    if proto == 17 && segment.len() >= 8 && segment[6..8] == [0, 0] {
        return true;
    }
    let mut acc = sum16(0, &src.octets());
    acc = sum16(acc, &dst.octets());
    acc += u64::from(proto);
    acc += segment.len() as u64;
    acc = sum16(acc, segment);
    fold(acc) == 0xffff
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn addr(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// The fixed fields of an IPv4 header at the start of `b`.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Hdr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ttl: u8,
    /// Header length in bytes.
    pub ihl: usize,
    /// The total length field.
    pub total_len: usize,
    /// The header checksum verifies.
    pub checksum_ok: bool,
}

impl Ipv4Hdr {
    /// Parses the header at the start of `b` (`None` if it is not a whole
    /// IPv4 header).
    pub fn parse(b: &[u8]) -> Option<Ipv4Hdr> {
        if b.len() < 20 || b[0] >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(b[0] & 0x0f) * 4;
        if ihl < 20 || b.len() < ihl {
            return None;
        }
        Some(Ipv4Hdr {
            src: addr(b, 12),
            dst: addr(b, 16),
            proto: b[9],
            ttl: b[8],
            ihl,
            total_len: usize::from(be16(b, 2)),
            checksum_ok: inet_checksum(&b[..ihl]) == 0,
        })
    }
}

/// A TCP segment as received.
#[derive(Clone, Copy, Debug)]
pub struct TcpSeg {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload_len: usize,
}

impl TcpSeg {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;

    /// Parses an IPv4 datagram holding a TCP segment.
    pub fn parse(d: &[u8]) -> Option<TcpSeg> {
        let ip = Ipv4Hdr::parse(d)?;
        if ip.proto != 6 {
            return None;
        }
        let end = ip.total_len.min(d.len());
        let t = d.get(ip.ihl..end)?;
        if t.len() < 20 {
            return None;
        }
        let doff = usize::from(t[12] >> 4) * 4;
        Some(TcpSeg {
            src: SocketAddrV4::new(ip.src, be16(t, 0)),
            dst: SocketAddrV4::new(ip.dst, be16(t, 2)),
            seq: be32(t, 4),
            ack: be32(t, 8),
            flags: t[13],
            payload_len: t.len().saturating_sub(doff),
        })
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// One line for messages: `tcp A -> B [SA] seq S ack A len N`.
    pub fn describe(&self) -> String {
        let names = [
            (Self::SYN, 'S'),
            (Self::ACK, 'A'),
            (Self::FIN, 'F'),
            (Self::RST, 'R'),
        ];
        let flags: String = names
            .iter()
            .filter(|(f, _)| self.has(*f))
            .map(|(_, c)| *c)
            .collect();
        format!(
            "tcp {} -> {} [{flags}] seq {} ack {} len {}",
            self.src, self.dst, self.seq, self.ack, self.payload_len
        )
    }
}

/// An ICMP error as received, with the datagram it quotes.
#[derive(Clone, Debug)]
pub struct IcmpError {
    pub outer_src: Ipv4Addr,
    pub outer_dst: Ipv4Addr,
    pub typ: u8,
    pub code: u8,
    /// The four "rest of header" bytes (next-hop MTU in the last two for
    /// fragmentation needed).
    pub rest: [u8; 4],
    /// The ICMP checksum (over the whole ICMP message) verifies.
    pub icmp_checksum_ok: bool,
    /// The quoted IPv4 header.
    pub quoted: Ipv4Hdr,
    /// Bytes of the quoted datagram present (header included).
    pub quoted_present: usize,
    /// Quoted TCP/UDP ports (when the first 4 bytes of the transport
    /// header are quoted).
    pub quoted_sport: Option<u16>,
    pub quoted_dport: Option<u16>,
    /// Whether the quoted TCP/UDP checksum verifies over the quoted
    /// addresses; `None` when the datagram is not quoted whole (or is not
    /// TCP/UDP).
    pub quoted_l4_checksum_ok: Option<bool>,
}

impl IcmpError {
    pub const DEST_UNREACH: u8 = 3;
    pub const TIME_EXCEEDED: u8 = 11;

    /// Parses an IPv4 datagram holding an ICMP error (types 3, 11, 12).
    pub fn parse(d: &[u8]) -> Result<IcmpError, String> {
        let outer = Ipv4Hdr::parse(d).ok_or("not an IPv4 datagram")?;
        if outer.proto != 1 {
            return Err(format!("protocol {}, not ICMP", outer.proto));
        }
        let end = outer.total_len.min(d.len());
        let icmp = d
            .get(outer.ihl..end)
            .ok_or("IPv4 total length shorter than its header")?;
        if icmp.len() < 8 {
            return Err(format!("ICMP message of {} bytes", icmp.len()));
        }
        if !matches!(icmp[0], 3 | 11 | 12) {
            return Err(format!("ICMP type {} is not an error", icmp[0]));
        }
        let q = &icmp[8..];
        let quoted = Ipv4Hdr::parse(q).ok_or("the quoted IPv4 header is cut or invalid")?;
        if quoted.total_len < quoted.ihl {
            return Err(format!(
                "quoted total length {} < its header ({} bytes)",
                quoted.total_len, quoted.ihl
            ));
        }
        let present = q.len().min(quoted.total_len);
        let l4 = &q[quoted.ihl..present];
        let ports = (quoted.proto == 6 || quoted.proto == 17) && l4.len() >= 4;
        let whole = present == quoted.total_len;
        let l4_whole = whole
            && ((quoted.proto == 6 && l4.len() >= 20) || (quoted.proto == 17 && l4.len() >= 8));
        let l4_ok = l4_whole.then(|| l4_checksum_ok(quoted.src, quoted.dst, quoted.proto, l4));
        Ok(IcmpError {
            outer_src: outer.src,
            outer_dst: outer.dst,
            typ: icmp[0],
            code: icmp[1],
            rest: [icmp[4], icmp[5], icmp[6], icmp[7]],
            icmp_checksum_ok: inet_checksum(icmp) == 0,
            quoted,
            quoted_present: present,
            quoted_sport: ports.then(|| be16(l4, 0)),
            quoted_dport: ports.then(|| be16(l4, 2)),
            quoted_l4_checksum_ok: l4_ok,
        })
    }

    /// The quoted datagram's source endpoint (port 0 if not quoted).
    pub fn quoted_src(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.quoted.src, self.quoted_sport.unwrap_or(0))
    }

    /// The quoted datagram's destination endpoint (port 0 if not quoted).
    pub fn quoted_dst(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.quoted.dst, self.quoted_dport.unwrap_or(0))
    }

    /// The next-hop MTU of a fragmentation-needed error.
    pub fn next_hop_mtu(&self) -> u16 {
        u16::from_be_bytes([self.rest[2], self.rest[3]])
    }

    /// What is wrong with the three checksums (ICMP, quoted IPv4 header,
    /// quoted TCP/UDP when quoted whole); empty if nothing.
    pub fn checksum_problems(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if !self.icmp_checksum_ok {
            v.push("ICMP checksum wrong");
        }
        if !self.quoted.checksum_ok {
            v.push("quoted IPv4 header checksum wrong");
        }
        if self.quoted_l4_checksum_ok == Some(false) {
            v.push("quoted TCP/UDP checksum wrong");
        }
        v
    }

    /// One line for messages.
    pub fn describe(&self) -> String {
        format!(
            "ICMP {}/{} {} -> {} quoting {} {} -> {} (quoted {} of {} bytes; checksums: icmp {}, \
             quoted ip {}, quoted l4 {})",
            self.typ,
            self.code,
            self.outer_src,
            self.outer_dst,
            match self.quoted.proto {
                6 => "tcp".to_string(),
                17 => "udp".to_string(),
                p => format!("proto {p}"),
            },
            self.quoted_src(),
            self.quoted_dst(),
            self.quoted_present,
            self.quoted.total_len,
            ok(Some(self.icmp_checksum_ok)),
            ok(Some(self.quoted.checksum_ok)),
            ok(self.quoted_l4_checksum_ok),
        )
    }
}

fn ok(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "ok",
        Some(false) => "WRONG",
        None => "n/a",
    }
}

/// Renders captured datagrams for messages: ICMP errors and TCP segments
/// parsed, anything else by length.
pub fn describe_all(datagrams: &[Vec<u8>]) -> String {
    if datagrams.is_empty() {
        return "  (nothing)\n".into();
    }
    datagrams
        .iter()
        .map(|d| {
            if let Ok(e) = IcmpError::parse(d) {
                format!("  {}\n", e.describe())
            } else if let Some(s) = TcpSeg::parse(d) {
                format!("  {}\n", s.describe())
            } else {
                match Ipv4Hdr::parse(d) {
                    Some(h) => format!(
                        "  {} -> {} proto {} ({} bytes)\n",
                        h.src,
                        h.dst,
                        h.proto,
                        d.len()
                    ),
                    None => format!("  ({} bytes, not IPv4)\n", d.len()),
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2 (complement 220d).
        assert_eq!(
            inet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
    }

    #[test]
    fn icmp_error_round_trip() {
        use crate::frame::{Packet, Udp};
        let a = Ipv4Addr::new(203, 0, 113, 10);
        let b = Ipv4Addr::new(198, 51, 100, 1);
        let inner = Packet::udp(a, b, Udp::new(7000, 40000, b"hello"));
        let err = Packet::icmp_error(Ipv4Addr::new(192, 0, 2, 1), a, 11, 0, [0; 4], &inner, None)
            .ip_bytes();
        let e = IcmpError::parse(&err).unwrap();
        assert_eq!(e.quoted_dst(), SocketAddrV4::new(b, 40000));
        assert_eq!(e.quoted_src(), SocketAddrV4::new(a, 7000));
        assert!(e.checksum_problems().is_empty(), "{}", e.describe());
        assert_eq!(e.quoted_l4_checksum_ok, Some(true));
        // A quoted address changed without fixing anything: all three break.
        let mut bad = err.clone();
        let q = 20 + 8;
        bad[q + 16] = 10;
        let e = IcmpError::parse(&bad).unwrap();
        assert_eq!(e.checksum_problems().len(), 3, "{}", e.describe());
    }
}
