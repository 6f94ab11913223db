//! A small frame builder and checker for the packet tests.
//!
//! Everything here builds packets **from scratch**: every checksum is a full
//! recomputation over the final bytes, never an incremental update. The tests
//! use it as an oracle independent of the data plane: they build the input
//! frame, build the expected output frame with the translated addresses, and
//! compare the program's output with it byte for byte. [`check_checksums`]
//! validates every checksum of a frame on its own, and [`assert_frame_eq`]
//! prints both frames as hex with the first differing offset.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use nat_common::csum::{checksum, fold, l4_checksum, sum_be};

/// Length of an Ethernet header without VLAN tags.
pub const ETH_HLEN: usize = 14;

/// Ethertypes used by the tests.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86dd;
}

/// IP protocol numbers used by the tests.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const GRE: u8 = 47;
    /// IPv6 next headers.
    pub const HOPOPTS: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ICMPV6: u8 = 58;
    pub const DSTOPTS: u8 = 60;
}

/// ICMP types and codes used by the tests.
pub mod icmp {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACH: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
    /// Destination unreachable codes.
    pub const PORT_UNREACH: u8 = 3;
    pub const FRAG_NEEDED: u8 = 4;
}

/// ICMPv6 types and codes used by the tests.
pub mod icmpv6 {
    pub const DEST_UNREACH: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Destination unreachable codes.
    pub const NO_ROUTE: u8 = 0;
    pub const ADMIN_PROHIBITED: u8 = 1;
    pub const ADDR_UNREACH: u8 = 3;
    pub const PORT_UNREACH: u8 = 4;
    /// Parameter problem code: unrecognized next header.
    pub const UNKNOWN_NEXT_HEADER: u8 = 1;
}

/// TCP flag bits.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// IPv4 "don't fragment" flag (in the flags/fragment-offset word).
pub const IP_DF: u16 = 0x4000;
/// IPv4 "more fragments" flag.
pub const IP_MF: u16 = 0x2000;

/// Destination MAC of every test frame (the gateway's interface).
pub const MAC_GW: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Source MAC of every test frame (a neighbour).
pub const MAC_PEER: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

/// An Ethernet frame (no FCS) around `payload`.
pub fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_HLEN + payload.len());
    f.extend_from_slice(&MAC_GW);
    f.extend_from_slice(&MAC_PEER);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An 802.1Q-tagged Ethernet frame around `payload`.
pub fn ethernet_vlan(vid: u16, inner_ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut tagged = Vec::with_capacity(4 + payload.len());
    tagged.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    tagged.extend_from_slice(&inner_ethertype.to_be_bytes());
    tagged.extend_from_slice(payload);
    ethernet(ethertype::VLAN, &tagged)
}

/// An ARP request "who has `target`? tell `sender`".
pub fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    p.extend_from_slice(&ethertype::IPV4.to_be_bytes());
    p.push(6);
    p.push(4);
    p.extend_from_slice(&1u16.to_be_bytes()); // request
    p.extend_from_slice(&MAC_PEER);
    p.extend_from_slice(&sender.octets());
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&target.octets());
    let mut f = ethernet(ethertype::ARP, &p);
    f[0..6].copy_from_slice(&[0xff; 6]);
    f
}

/// A minimal IPv6 UDP frame (the UDP checksum is not meaningful here: the
/// programs must not look past the ethertype).
pub fn ipv6_udp(payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.push(proto::UDP);
    p.push(64);
    // 2001:db8::2 -> 2001:db8::1
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    let mut dst = src;
    src[15] = 2;
    dst[15] = 1;
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&1234u16.to_be_bytes());
    p.extend_from_slice(&53u16.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34]);
    p.extend_from_slice(payload);
    ethernet(ethertype::IPV6, &p)
}

/// IPv4 header fields. The protocol comes from the [`L4`] part of a
/// [`Packet`]; the header length, total length and checksum are computed.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub tos: u8,
    pub id: u16,
    /// Flag bits ([`IP_DF`], [`IP_MF`]); the fragment offset is separate.
    pub flags: u16,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
    pub ttl: u8,
    /// Raw option bytes; padded with zeros (EOL) to a multiple of 4.
    pub options: Vec<u8>,
}

impl Ipv4 {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        Ipv4 {
            src,
            dst,
            tos: 0,
            id: 0x1c46,
            flags: IP_DF,
            frag_offset: 0,
            ttl: 64,
            options: Vec::new(),
        }
    }

    /// Header length in bytes (20 + padded options).
    pub fn header_len(&self) -> usize {
        20 + self.options.len().div_ceil(4) * 4
    }

    /// The header for a payload of `payload_len` bytes, checksum included.
    pub fn header(&self, proto: u8, payload_len: usize) -> Vec<u8> {
        let hlen = self.header_len();
        assert!(hlen <= 60, "IPv4 options longer than 40 bytes");
        let total = hlen + payload_len;
        assert!(total <= 0xffff, "IPv4 packet too long");
        let mut h = Vec::with_capacity(hlen);
        h.push(0x40 | (hlen / 4) as u8);
        h.push(self.tos);
        h.extend_from_slice(&(total as u16).to_be_bytes());
        h.extend_from_slice(&self.id.to_be_bytes());
        h.extend_from_slice(&(self.flags | (self.frag_offset & 0x1fff)).to_be_bytes());
        h.push(self.ttl);
        h.push(proto);
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&self.src.octets());
        h.extend_from_slice(&self.dst.octets());
        h.extend_from_slice(&self.options);
        h.resize(hlen, 0);
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }
}

/// The addresses a transport checksum's pseudo-header holds.
#[derive(Clone, Copy, Debug)]
enum Pseudo {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

impl Pseudo {
    /// The full checksum of `segment` (checksum field zero) under this
    /// pseudo-header.
    fn checksum(self, proto: u8, segment: &[u8]) -> u16 {
        match self {
            Pseudo::V4(s, d) => l4_checksum(s.octets(), d.octets(), proto, segment),
            Pseudo::V6(s, d) => l6_checksum(s.octets(), d.octets(), proto, segment),
        }
    }
}

/// Full checksum of an upper-layer `segment` (checksum field zero) over
/// the IPv6 pseudo-header (RFC 8200 section 8.1: source, destination,
/// upper-layer length as 32 bits, three zero bytes and the next header),
/// big-endian: TCP, UDP and ICMPv6 alike.
pub fn l6_checksum(src: [u8; 16], dst: [u8; 16], next: u8, segment: &[u8]) -> u16 {
    let mut acc = sum_be(&src, 0);
    acc = sum_be(&dst, acc);
    acc = sum_be(&(segment.len() as u32).to_be_bytes(), acc);
    acc = sum_be(&[0, 0, 0, next], acc);
    !fold(sum_be(segment, acc))
}

/// A TCP segment.
#[derive(Clone, Debug)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub urgent: u16,
    /// Raw option bytes; padded with zeros to a multiple of 4.
    pub options: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Tcp {
    /// A SYN with the options Linux sends (MSS, SACK-permitted, timestamps,
    /// window scale).
    pub fn syn(sport: u16, dport: u16) -> Self {
        Tcp {
            sport,
            dport,
            seq: 0x3a5c_7e01,
            ack: 0,
            flags: tcp_flags::SYN,
            window: 64240,
            urgent: 0,
            options: vec![
                0x02, 0x04, 0x05, 0xb4, // MSS 1460
                0x04, 0x02, // SACK permitted
                0x08, 0x0a, 0x00, 0x01, 0xe2, 0x40, 0x00, 0x00, 0x00, 0x00, // timestamps
                0x01, // NOP
                0x03, 0x03, 0x07, // window scale 7
            ],
            payload: Vec::new(),
        }
    }

    /// An ACK+PSH segment carrying `payload`.
    pub fn data(sport: u16, dport: u16, payload: &[u8]) -> Self {
        Tcp {
            sport,
            dport,
            seq: 0x0102_0304,
            ack: 0x0a0b_0c0d,
            flags: tcp_flags::ACK | tcp_flags::PSH,
            window: 502,
            urgent: 0,
            options: Vec::new(),
            payload: payload.to_vec(),
        }
    }

    fn bytes(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        self.bytes_for(Pseudo::V4(src, dst))
    }

    fn bytes_for(&self, pseudo: Pseudo) -> Vec<u8> {
        let hlen = 20 + self.options.len().div_ceil(4) * 4;
        assert!(hlen <= 60, "TCP options longer than 40 bytes");
        let mut s = Vec::with_capacity(hlen + self.payload.len());
        s.extend_from_slice(&self.sport.to_be_bytes());
        s.extend_from_slice(&self.dport.to_be_bytes());
        s.extend_from_slice(&self.seq.to_be_bytes());
        s.extend_from_slice(&self.ack.to_be_bytes());
        s.push(((hlen / 4) as u8) << 4);
        s.push(self.flags);
        s.extend_from_slice(&self.window.to_be_bytes());
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(&self.urgent.to_be_bytes());
        s.extend_from_slice(&self.options);
        s.resize(hlen, 0);
        s.extend_from_slice(&self.payload);
        let c = pseudo.checksum(proto::TCP, &s);
        s[16..18].copy_from_slice(&c.to_be_bytes());
        s
    }
}

/// A UDP datagram.
#[derive(Clone, Debug)]
pub struct Udp {
    pub sport: u16,
    pub dport: u16,
    pub payload: Vec<u8>,
    /// Send a checksum of 0 ("no checksum") instead of computing one.
    pub no_checksum: bool,
}

impl Udp {
    pub fn new(sport: u16, dport: u16, payload: &[u8]) -> Self {
        Udp {
            sport,
            dport,
            payload: payload.to_vec(),
            no_checksum: false,
        }
    }

    /// The same datagram sent without a checksum.
    pub fn without_checksum(mut self) -> Self {
        self.no_checksum = true;
        self
    }

    fn bytes(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        self.bytes_for(Pseudo::V4(src, dst))
    }

    fn bytes_for(&self, pseudo: Pseudo) -> Vec<u8> {
        let len = 8 + self.payload.len();
        let mut s = Vec::with_capacity(len);
        s.extend_from_slice(&self.sport.to_be_bytes());
        s.extend_from_slice(&self.dport.to_be_bytes());
        s.extend_from_slice(&(len as u16).to_be_bytes());
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(&self.payload);
        if !self.no_checksum {
            // A computed 0 is sent as 0xffff (RFC 768, RFC 8200 8.1).
            let c = match pseudo.checksum(proto::UDP, &s) {
                0 => 0xffff,
                c => c,
            };
            s[6..8].copy_from_slice(&c.to_be_bytes());
        }
        s
    }
}

/// The UDP checksum of `segment` (checksum field zero) as transmitted: a
/// computed 0 is sent as 0xffff (RFC 768).
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> u16 {
    match l4_checksum(src.octets(), dst.octets(), proto::UDP, segment) {
        0 => 0xffff,
        c => c,
    }
}

/// An ICMP message: type, code, the 4 "rest of header" bytes and the data.
/// The checksum covers all of it.
#[derive(Clone, Debug)]
pub struct Icmp {
    pub typ: u8,
    pub code: u8,
    pub rest: [u8; 4],
    pub data: Vec<u8>,
}

impl Icmp {
    pub fn echo_request(id: u16, seq: u16, data: &[u8]) -> Self {
        Self::echo(icmp::ECHO_REQUEST, id, seq, data)
    }

    pub fn echo_reply(id: u16, seq: u16, data: &[u8]) -> Self {
        Self::echo(icmp::ECHO_REPLY, id, seq, data)
    }

    /// An echo message of type `typ` (ICMP 8 and 0; ICMPv6 128 and 129).
    pub fn echo(typ: u8, id: u16, seq: u16, data: &[u8]) -> Self {
        let mut rest = [0u8; 4];
        rest[..2].copy_from_slice(&id.to_be_bytes());
        rest[2..].copy_from_slice(&seq.to_be_bytes());
        Icmp {
            typ,
            code: 0,
            rest,
            data: data.to_vec(),
        }
    }

    /// An ICMP error quoting `quoted` (the start of the offending IPv4
    /// packet, as built by [`Packet::ip_bytes`] and possibly cut).
    pub fn error(typ: u8, code: u8, rest: [u8; 4], quoted: &[u8]) -> Self {
        Icmp {
            typ,
            code,
            rest,
            data: quoted.to_vec(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        self.bytes_for(None)
    }

    /// The message with its checksum: ICMP's over the message alone
    /// (`pseudo` `None`), ICMPv6's over the IPv6 pseudo-header too.
    fn bytes_for(&self, pseudo: Option<Pseudo>) -> Vec<u8> {
        let mut m = Vec::with_capacity(8 + self.data.len());
        m.push(self.typ);
        m.push(self.code);
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&self.rest);
        m.extend_from_slice(&self.data);
        let c = match pseudo {
            Some(p) => p.checksum(proto::ICMPV6, &m),
            None => checksum(&m),
        };
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }
}

/// The part of a [`Packet`] after the IPv4 header.
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp(Tcp),
    Udp(Udp),
    Icmp(Icmp),
    /// Any protocol, bytes used as they are (other protocols, fragments).
    Raw {
        proto: u8,
        bytes: Vec<u8>,
    },
}

impl L4 {
    pub fn proto(&self) -> u8 {
        match self {
            L4::Tcp(_) => proto::TCP,
            L4::Udp(_) => proto::UDP,
            L4::Icmp(_) => proto::ICMP,
            L4::Raw { proto, .. } => *proto,
        }
    }
}

/// An IPv4 packet (and the Ethernet frame carrying it).
#[derive(Clone, Debug)]
pub struct Packet {
    pub ip: Ipv4,
    pub l4: L4,
}

impl Packet {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, l4: L4) -> Self {
        Packet {
            ip: Ipv4::new(src, dst),
            l4,
        }
    }

    pub fn tcp(src: Ipv4Addr, dst: Ipv4Addr, tcp: Tcp) -> Self {
        Self::new(src, dst, L4::Tcp(tcp))
    }

    pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, udp: Udp) -> Self {
        Self::new(src, dst, L4::Udp(udp))
    }

    pub fn icmp(src: Ipv4Addr, dst: Ipv4Addr, icmp: Icmp) -> Self {
        Self::new(src, dst, L4::Icmp(icmp))
    }

    pub fn raw(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, bytes: &[u8]) -> Self {
        Self::new(
            src,
            dst,
            L4::Raw {
                proto,
                bytes: bytes.to_vec(),
            },
        )
    }

    /// An ICMP error from `src` to `dst` quoting the first `quote` bytes of
    /// `offending` (all of it if `None`).
    pub fn icmp_error(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        typ: u8,
        code: u8,
        rest: [u8; 4],
        offending: &Packet,
        quote: Option<usize>,
    ) -> Self {
        let inner = offending.ip_bytes();
        let n = quote.unwrap_or(inner.len()).min(inner.len());
        Self::icmp(src, dst, Icmp::error(typ, code, rest, &inner[..n])).with_error_ip()
    }

    /// Makes the IPv4 header look like Linux's ICMP errors: DF clear and
    /// TOS 0xc0 (internetwork control).
    pub fn with_error_ip(mut self) -> Self {
        self.ip.flags = 0;
        self.ip.tos = 0xc0;
        self
    }

    pub fn with_src(mut self, src: Ipv4Addr) -> Self {
        self.ip.src = src;
        self
    }

    pub fn with_dst(mut self, dst: Ipv4Addr) -> Self {
        self.ip.dst = dst;
        self
    }

    pub fn with_ttl(mut self, ttl: u8) -> Self {
        self.ip.ttl = ttl;
        self
    }

    pub fn with_id(mut self, id: u16) -> Self {
        self.ip.id = id;
        self
    }

    pub fn with_ip_options(mut self, options: &[u8]) -> Self {
        self.ip.options = options.to_vec();
        self
    }

    /// The bytes after the IPv4 header, checksums computed for this
    /// packet's addresses.
    pub fn l4_bytes(&self) -> Vec<u8> {
        match &self.l4 {
            L4::Tcp(t) => t.bytes(self.ip.src, self.ip.dst),
            L4::Udp(u) => u.bytes(self.ip.src, self.ip.dst),
            L4::Icmp(i) => i.bytes(),
            L4::Raw { bytes, .. } => bytes.clone(),
        }
    }

    /// The IPv4 datagram (header + payload).
    pub fn ip_bytes(&self) -> Vec<u8> {
        let payload = self.l4_bytes();
        let mut p = self.ip.header(self.l4.proto(), payload.len());
        p.extend_from_slice(&payload);
        p
    }

    /// The Ethernet frame carrying this packet.
    pub fn frame(&self) -> Vec<u8> {
        ethernet(ethertype::IPV4, &self.ip_bytes())
    }

    /// The IPv4 total length of this packet.
    pub fn total_len(&self) -> u64 {
        (self.ip.header_len() + self.l4_bytes().len()) as u64
    }

    /// A fragment of this packet: `len` bytes of its payload (as computed
    /// for the whole datagram, checksum included) starting at `offset`
    /// (a multiple of 8), with MF set if `more`.
    pub fn fragment(&self, offset: usize, len: usize, more: bool) -> Packet {
        assert_eq!(offset % 8, 0, "fragment offset must be a multiple of 8");
        let payload = self.l4_bytes();
        let end = (offset + len).min(payload.len());
        let mut ip = self.ip.clone();
        ip.flags = if more { IP_MF } else { 0 };
        ip.frag_offset = (offset / 8) as u16;
        Packet {
            ip,
            l4: L4::Raw {
                proto: self.l4.proto(),
                bytes: payload[offset..end].to_vec(),
            },
        }
    }
}

/// IPv6 header fields (fixed header only; extension headers are the
/// [`L6::Raw`] bytes of a [`Packet6`]). The next header comes from the
/// [`L6`] part, the payload length is computed.
#[derive(Clone, Debug)]
pub struct Ipv6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub traffic_class: u8,
    /// 20 bits.
    pub flow_label: u32,
    pub hop_limit: u8,
}

impl Ipv6 {
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        Ipv6 {
            src,
            dst,
            traffic_class: 0,
            flow_label: 0,
            hop_limit: 64,
        }
    }

    /// The 40-byte header for a payload of `payload_len` bytes.
    pub fn header(&self, next: u8, payload_len: usize) -> Vec<u8> {
        assert!(payload_len <= 0xffff, "IPv6 payload too long");
        let word0 =
            6u32 << 28 | u32::from(self.traffic_class) << 20 | (self.flow_label & 0x000f_ffff);
        let mut h = Vec::with_capacity(40);
        h.extend_from_slice(&word0.to_be_bytes());
        h.extend_from_slice(&(payload_len as u16).to_be_bytes());
        h.push(next);
        h.push(self.hop_limit);
        h.extend_from_slice(&self.src.octets());
        h.extend_from_slice(&self.dst.octets());
        h
    }
}

/// The part of a [`Packet6`] after the fixed IPv6 header.
#[derive(Clone, Debug)]
pub enum L6 {
    Tcp(Tcp),
    Udp(Udp),
    /// ICMPv6 (checksum over the pseudo-header too).
    Icmp6(Icmp),
    /// Any next header, bytes used as they are (extension headers, other
    /// protocols).
    Raw {
        next: u8,
        bytes: Vec<u8>,
    },
}

impl L6 {
    pub fn next_header(&self) -> u8 {
        match self {
            L6::Tcp(_) => proto::TCP,
            L6::Udp(_) => proto::UDP,
            L6::Icmp6(_) => proto::ICMPV6,
            L6::Raw { next, .. } => *next,
        }
    }
}

/// An IPv6 packet (and the Ethernet frame carrying it), every checksum
/// computed from scratch over the IPv6 pseudo-header.
#[derive(Clone, Debug)]
pub struct Packet6 {
    pub ip: Ipv6,
    pub l4: L6,
}

impl Packet6 {
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, l4: L6) -> Self {
        Packet6 {
            ip: Ipv6::new(src, dst),
            l4,
        }
    }

    pub fn tcp(src: Ipv6Addr, dst: Ipv6Addr, tcp: Tcp) -> Self {
        Self::new(src, dst, L6::Tcp(tcp))
    }

    pub fn udp(src: Ipv6Addr, dst: Ipv6Addr, udp: Udp) -> Self {
        Self::new(src, dst, L6::Udp(udp))
    }

    pub fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, icmp: Icmp) -> Self {
        Self::new(src, dst, L6::Icmp6(icmp))
    }

    pub fn raw(src: Ipv6Addr, dst: Ipv6Addr, next: u8, bytes: &[u8]) -> Self {
        Self::new(
            src,
            dst,
            L6::Raw {
                next,
                bytes: bytes.to_vec(),
            },
        )
    }

    /// An ICMPv6 error from `src` to `dst` quoting the first `quote` bytes
    /// of `offending` (all of it if `None`).
    pub fn icmp6_error(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        typ: u8,
        code: u8,
        rest: [u8; 4],
        offending: &Packet6,
        quote: Option<usize>,
    ) -> Self {
        let inner = offending.ip_bytes();
        let n = quote.unwrap_or(inner.len()).min(inner.len());
        Self::icmp6(src, dst, Icmp::error(typ, code, rest, &inner[..n]))
    }

    pub fn with_hop_limit(mut self, hop_limit: u8) -> Self {
        self.ip.hop_limit = hop_limit;
        self
    }

    pub fn with_traffic_class(mut self, tc: u8) -> Self {
        self.ip.traffic_class = tc;
        self
    }

    pub fn with_flow_label(mut self, label: u32) -> Self {
        self.ip.flow_label = label;
        self
    }

    pub fn with_src(mut self, src: Ipv6Addr) -> Self {
        self.ip.src = src;
        self
    }

    pub fn with_dst(mut self, dst: Ipv6Addr) -> Self {
        self.ip.dst = dst;
        self
    }

    /// The bytes after the fixed IPv6 header, checksums computed for this
    /// packet's addresses.
    pub fn l4_bytes(&self) -> Vec<u8> {
        let pseudo = Pseudo::V6(self.ip.src, self.ip.dst);
        match &self.l4 {
            L6::Tcp(t) => t.bytes_for(pseudo),
            L6::Udp(u) => u.bytes_for(pseudo),
            L6::Icmp6(i) => i.bytes_for(Some(pseudo)),
            L6::Raw { bytes, .. } => bytes.clone(),
        }
    }

    /// The IPv6 datagram (header + payload).
    pub fn ip_bytes(&self) -> Vec<u8> {
        let payload = self.l4_bytes();
        let mut p = self.ip.header(self.l4.next_header(), payload.len());
        p.extend_from_slice(&payload);
        p
    }

    /// The Ethernet frame carrying this packet.
    pub fn frame(&self) -> Vec<u8> {
        ethernet(ethertype::IPV6, &self.ip_bytes())
    }

    /// The IPv6 packet's length (40 + payload length).
    pub fn total_len(&self) -> u64 {
        (40 + self.l4_bytes().len()) as u64
    }
}

/// The first `len` bytes of `frame` (a truncated copy).
pub fn cut(frame: &[u8], len: usize) -> Vec<u8> {
    frame[..len.min(frame.len())].to_vec()
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Validates one IPv4 datagram found in `pkt` (which may be cut short when
/// `quoted`, i.e. inside an ICMP error). Checks the header checksum and,
/// where the whole datagram is present and it is not a fragment, the
/// TCP/UDP/ICMP checksum and, for ICMP errors, the quoted packet.
fn check_ipv4(pkt: &[u8], quoted: bool, depth: u32) -> Result<(), String> {
    let what = if quoted { "inner" } else { "outer" };
    if pkt.len() < 20 {
        return if quoted {
            Ok(())
        } else {
            Err(format!("{what} IPv4 header cut at {} bytes", pkt.len()))
        };
    }
    if pkt[0] >> 4 != 4 {
        return Err(format!("{what} IP version {}", pkt[0] >> 4));
    }
    let hlen = usize::from(pkt[0] & 0x0f) * 4;
    if hlen < 20 {
        return Err(format!("{what} IHL {}", hlen / 4));
    }
    if pkt.len() < hlen {
        return if quoted {
            Ok(())
        } else {
            Err(format!("{what} IPv4 header cut"))
        };
    }
    if checksum(&pkt[..hlen]) != 0 {
        return Err(format!(
            "{what} IPv4 header checksum 0x{:04x} is wrong (should be 0x{:04x})",
            be16(pkt, 10),
            {
                let mut h = pkt[..hlen].to_vec();
                h[10] = 0;
                h[11] = 0;
                checksum(&h)
            }
        ));
    }
    let total = usize::from(be16(pkt, 2));
    if total < hlen {
        return Err(format!("{what} IPv4 total length {total} < IHL"));
    }
    if !quoted && pkt.len() < total {
        return Err(format!(
            "{what} IPv4 total length {total} but only {} bytes present",
            pkt.len()
        ));
    }
    // Bytes after the datagram (Ethernet padding) are not part of it.
    let pkt = &pkt[..pkt.len().min(total)];
    let frag = be16(pkt, 6);
    if frag & 0x3fff != 0 {
        // A fragment: its L4 checksum covers bytes that are not here.
        return Ok(());
    }
    if pkt.len() < total {
        // Quoted partially: the L4 checksum cannot be verified.
        return Ok(());
    }
    let src: [u8; 4] = pkt[12..16].try_into().unwrap();
    let dst: [u8; 4] = pkt[16..20].try_into().unwrap();
    let l4 = &pkt[hlen..total];
    match pkt[9] {
        proto::TCP => {
            if l4.len() < 20 {
                return Err(format!("{what} TCP header cut"));
            }
            if l4_checksum(src, dst, proto::TCP, l4) != 0 {
                return Err(format!(
                    "{what} TCP checksum 0x{:04x} is wrong",
                    be16(l4, 16)
                ));
            }
        }
        proto::UDP => {
            if l4.len() < 8 {
                return Err(format!("{what} UDP header cut"));
            }
            if usize::from(be16(l4, 4)) != l4.len() {
                return Err(format!("{what} UDP length {} != {}", be16(l4, 4), l4.len()));
            }
            let c = be16(l4, 6);
            if c != 0 && l4_checksum(src, dst, proto::UDP, l4) != 0 {
                return Err(format!("{what} UDP checksum 0x{c:04x} is wrong"));
            }
        }
        proto::ICMP => {
            if l4.len() < 8 {
                return Err(format!("{what} ICMP header cut"));
            }
            if checksum(l4) != 0 {
                return Err(format!(
                    "{what} ICMP checksum 0x{:04x} is wrong",
                    be16(l4, 2)
                ));
            }
            let is_error = matches!(
                l4[0],
                icmp::DEST_UNREACH | icmp::TIME_EXCEEDED | icmp::PARAM_PROBLEM
            );
            if is_error && depth == 0 {
                check_ipv4(&l4[8..], true, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Independently validates every checksum of an Ethernet frame: the IPv4
/// header checksum, the TCP/UDP checksum over the pseudo-header (a UDP
/// checksum of 0 means none), the ICMP checksum, and for ICMP errors the
/// embedded IPv4 header checksum and, when the embedded datagram is quoted
/// in full, its L4 checksum. Bytes after the IPv4 total length (Ethernet
/// padding) are ignored; frames that are not IPv4 are accepted as they are.
pub fn check_checksums(frame: &[u8]) -> Result<(), String> {
    if frame.len() < ETH_HLEN {
        return Err(format!("frame of {} bytes", frame.len()));
    }
    if be16(frame, 12) != ethertype::IPV4 {
        return Ok(());
    }
    check_ipv4(&frame[ETH_HLEN..], false, 0)
}

/// Validates one IPv6 datagram found in `pkt` (which may be cut short when
/// `quoted`, i.e. inside an ICMPv6 error): version and payload length,
/// and, where the whole datagram is present, the TCP/UDP/ICMPv6 checksum
/// recomputed over the IPv6 pseudo-header (an IPv6 UDP checksum of 0 is an
/// error: RFC 8200 section 8.1) and, for ICMPv6 errors, the quoted packet.
/// Extension headers and other next headers carry no checksum checked
/// here.
fn check_ipv6(pkt: &[u8], quoted: bool, depth: u32) -> Result<(), String> {
    let what = if quoted { "inner" } else { "outer" };
    if pkt.len() < 40 {
        return if quoted {
            Ok(())
        } else {
            Err(format!("{what} IPv6 header cut at {} bytes", pkt.len()))
        };
    }
    if pkt[0] >> 4 != 6 {
        return Err(format!("{what} IP version {}", pkt[0] >> 4));
    }
    let total = 40 + usize::from(be16(pkt, 4));
    if !quoted && pkt.len() < total {
        return Err(format!(
            "{what} IPv6 payload length {} but only {} bytes present",
            total - 40,
            pkt.len() - 40
        ));
    }
    if pkt.len() < total {
        // Quoted partially: the transport checksum cannot be verified.
        return Ok(());
    }
    // Bytes after the datagram (Ethernet padding) are not part of it.
    let pkt = &pkt[..total];
    let src: [u8; 16] = pkt[8..24].try_into().unwrap();
    let dst: [u8; 16] = pkt[24..40].try_into().unwrap();
    let l4 = &pkt[40..];
    match pkt[6] {
        proto::TCP => {
            if l4.len() < 20 {
                return Err(format!("{what} TCP header cut"));
            }
            if l6_checksum(src, dst, proto::TCP, l4) != 0 {
                return Err(format!(
                    "{what} TCP checksum 0x{:04x} is wrong (IPv6)",
                    be16(l4, 16)
                ));
            }
        }
        proto::UDP => {
            if l4.len() < 8 {
                return Err(format!("{what} UDP header cut"));
            }
            if usize::from(be16(l4, 4)) != l4.len() {
                return Err(format!("{what} UDP length {} != {}", be16(l4, 4), l4.len()));
            }
            let c = be16(l4, 6);
            if c == 0 {
                return Err(format!("{what} IPv6 UDP checksum 0 (none)"));
            }
            if l6_checksum(src, dst, proto::UDP, l4) != 0 {
                return Err(format!("{what} UDP checksum 0x{c:04x} is wrong (IPv6)"));
            }
        }
        proto::ICMPV6 => {
            if l4.len() < 8 {
                return Err(format!("{what} ICMPv6 header cut"));
            }
            if l6_checksum(src, dst, proto::ICMPV6, l4) != 0 {
                return Err(format!(
                    "{what} ICMPv6 checksum 0x{:04x} is wrong",
                    be16(l4, 2)
                ));
            }
            // Types below 128 are errors, quoting the offending packet.
            if l4[0] < 128 && depth == 0 {
                check_ipv6(&l4[8..], true, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Independently validates every checksum of an IPv4 or IPv6 Ethernet
/// frame, each recomputed from scratch: for IPv4 what
/// [`check_checksums`] checks; for IPv6 the TCP, UDP and ICMPv6 checksums
/// over the IPv6 pseudo-header and, for ICMPv6 errors, the quoted IPv6
/// packet's. Unlike [`check_checksums`], a frame of any other type is an
/// error: the frame must carry IP.
pub fn check_ip_checksums(frame: &[u8]) -> Result<(), String> {
    if frame.len() < ETH_HLEN {
        return Err(format!("frame of {} bytes", frame.len()));
    }
    match be16(frame, 12) {
        ethertype::IPV4 => check_ipv4(&frame[ETH_HLEN..], false, 0),
        ethertype::IPV6 => check_ipv6(&frame[ETH_HLEN..], false, 0),
        t => Err(format!("Ethernet type 0x{t:04x}, neither IPv4 nor IPv6")),
    }
}

/// Hex dump of `data`, 16 bytes a line, with offsets, marking the line
/// that holds `mark`.
pub fn hex_dump(data: &[u8], mark: Option<usize>) -> String {
    let mut s = String::new();
    for (i, line) in data.chunks(16).enumerate() {
        let off = i * 16;
        let marked = mark.is_some_and(|m| m >= off && m < off + 16);
        let _ = write!(s, "{}{off:04x}:", if marked { "> " } else { "  " });
        for (j, b) in line.iter().enumerate() {
            let here = mark == Some(off + j);
            let _ = write!(s, "{}{b:02x}", if here { "[" } else { " " });
            if here {
                s.push(']');
            }
        }
        s.push('\n');
    }
    s
}

/// The first offset where `a` and `b` differ (including a length
/// difference), or `None` if they are equal.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// Asserts `got == expected`, printing both frames as hex with the first
/// differing offset otherwise.
#[track_caller]
pub fn assert_frame_eq(what: &str, got: &[u8], expected: &[u8]) {
    if let Some(at) = first_difference(got, expected) {
        panic!(
            "{what}: output differs from the expected frame at offset {at} (0x{at:x}); \
             got {} bytes, expected {}\n--- got:\n{}--- expected:\n{}",
            got.len(),
            expected.len(),
            hex_dump(got, Some(at)),
            hex_dump(expected, Some(at)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const B: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

    #[test]
    fn built_frames_validate() {
        let pkts = [
            Packet::tcp(A, B, Tcp::syn(40000, 80)),
            Packet::tcp(A, B, Tcp::data(40000, 80, b"hello, world")),
            Packet::udp(A, B, Udp::new(5000, 53, b"abc")),
            Packet::udp(A, B, Udp::new(5000, 53, b"abc").without_checksum()),
            Packet::icmp(A, B, Icmp::echo_request(7, 1, b"ping data")),
            Packet::raw(A, B, proto::GRE, &[0, 0, 0x08, 0, 1, 2, 3, 4]),
            Packet::udp(A, B, Udp::new(1, 2, b"x")).with_ip_options(&[0x94, 4, 0, 0]),
        ];
        for p in &pkts {
            let f = p.frame();
            check_checksums(&f).unwrap_or_else(|e| panic!("{e}\n{}", hex_dump(&f, None)));
        }
    }

    #[test]
    fn icmp_errors_validate_and_catch_bad_inner_headers() {
        let probe = Packet::udp(B, A, Udp::new(33434, 33435, &[0x40; 24])).with_ttl(1);
        for quote in [None, Some(28), Some(24)] {
            let e = Packet::icmp_error(A, B, icmp::TIME_EXCEEDED, 0, [0; 4], &probe, quote);
            check_checksums(&e.frame()).unwrap();
        }
        // Corrupt the inner header's checksum and fix the ICMP checksum: the
        // checker must still notice.
        let mut quoted = probe.ip_bytes();
        quoted[10] ^= 0x55;
        let e = Packet::icmp(A, B, Icmp::error(3, 3, [0; 4], &quoted));
        assert!(check_checksums(&e.frame()).is_err());
    }

    #[test]
    fn checker_catches_bad_checksums() {
        let f = Packet::tcp(A, B, Tcp::syn(1, 2)).frame();
        for at in [ETH_HLEN + 10, ETH_HLEN + 20 + 16, ETH_HLEN + 12] {
            let mut g = f.clone();
            g[at] ^= 1;
            assert!(check_checksums(&g).is_err(), "flip at {at}");
        }
    }

    #[test]
    fn udp_zero_is_sent_as_ffff() {
        // Search a source port that makes the checksum compute to 0.
        let sport = (0..=u16::MAX)
            .find(|&s| {
                let mut seg = Udp::new(s, 53, b"q").bytes(A, B);
                seg[6] = 0;
                seg[7] = 0;
                l4_checksum(A.octets(), B.octets(), proto::UDP, &seg) == 0
            })
            .unwrap();
        let seg = Udp::new(sport, 53, b"q").bytes(A, B);
        assert_eq!(be16(&seg, 6), 0xffff);
        check_checksums(&Packet::udp(A, B, Udp::new(sport, 53, b"q")).frame()).unwrap();
    }

    #[test]
    fn fragments_reassemble_to_the_datagram() {
        let p = Packet::udp(A, B, Udp::new(1000, 2000, &[7; 100]));
        let whole = p.l4_bytes();
        let f1 = p.fragment(0, 64, true);
        let f2 = p.fragment(64, 1000, false);
        let mut joined = f1.l4_bytes();
        joined.extend(f2.l4_bytes());
        assert_eq!(joined, whole);
        check_checksums(&f1.frame()).unwrap();
        check_checksums(&f2.frame()).unwrap();
        assert_eq!(f2.frame()[ETH_HLEN + 6..ETH_HLEN + 8], [0x00, 0x08]);
    }

    const A6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);
    const B6: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xc633, 0x6402);

    fn ipv6_packets() -> Vec<Packet6> {
        vec![
            Packet6::tcp(A6, B6, Tcp::syn(40000, 80)),
            Packet6::tcp(A6, B6, Tcp::data(40000, 80, b"hello, world")),
            Packet6::udp(A6, B6, Udp::new(5000, 53, b"abc")),
            Packet6::icmp6(A6, B6, Icmp::echo(icmpv6::ECHO_REQUEST, 7, 1, b"ping")),
            Packet6::raw(A6, B6, proto::HOPOPTS, &[proto::UDP, 0, 1, 4, 0, 0, 0, 0]),
            Packet6::udp(A6, B6, Udp::new(1, 2, b"x"))
                .with_traffic_class(0xb8)
                .with_flow_label(0x12345)
                .with_hop_limit(3),
        ]
    }

    #[test]
    fn ipv6_frames_validate() {
        for p in ipv6_packets() {
            let f = p.frame();
            check_ip_checksums(&f).unwrap_or_else(|e| panic!("{e}\n{}", hex_dump(&f, None)));
        }
        let h = Packet6::udp(A6, B6, Udp::new(1, 2, b"x"))
            .with_traffic_class(0xb8)
            .with_flow_label(0x12345)
            .ip
            .header(proto::UDP, 9);
        assert_eq!(h[..8], [0x6b, 0x81, 0x23, 0x45, 0, 9, proto::UDP, 64]);
    }

    /// A known answer: an ICMPv6 echo request ::1 -> ::1, identifier 0,
    /// sequence 0, no data. Sum: 1 + 1 (addresses) + 8 (length) + 58
    /// (next header) + 0x8000 (type 128) = 0x8044, so the checksum is
    /// !0x8044 = 0x7fbb.
    #[test]
    fn icmpv6_checksum_known_answer() {
        let p = Packet6::icmp6(
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::LOCALHOST,
            Icmp::echo(icmpv6::ECHO_REQUEST, 0, 0, b""),
        );
        assert_eq!(p.l4_bytes(), [128, 0, 0x7f, 0xbb, 0, 0, 0, 0]);
    }

    #[test]
    fn ipv6_checker_catches_bad_checksums() {
        for p in ipv6_packets().into_iter().take(4) {
            let f = p.frame();
            // The transport checksum field, a byte of each address, the
            // last byte of the message.
            let csum_at = ETH_HLEN + 40 + if matches!(p.l4, L6::Tcp(_)) { 16 } else { 2 };
            for at in [csum_at, ETH_HLEN + 8, ETH_HLEN + 39, f.len() - 1] {
                let mut g = f.clone();
                g[at] ^= 1;
                assert!(check_ip_checksums(&g).is_err(), "{p:?}: flip at {at}");
            }
        }
        let zero = Packet6::udp(A6, B6, Udp::new(5000, 53, b"abc").without_checksum());
        assert!(
            check_ip_checksums(&zero.frame()).is_err(),
            "IPv6 UDP checksum 0"
        );
        let cut_frame = cut(&Packet6::udp(A6, B6, Udp::new(1, 2, b"abc")).frame(), 60);
        assert!(check_ip_checksums(&cut_frame).is_err(), "cut IPv6 frame");
        assert!(check_ip_checksums(&arp_request(A, B)).is_err(), "ARP");
        check_ip_checksums(&Packet::udp(A, B, Udp::new(1, 2, b"v4")).frame()).unwrap();
    }

    #[test]
    fn icmpv6_errors_validate_and_catch_bad_quotes() {
        let probe = Packet6::udp(A6, B6, Udp::new(33434, 33435, &[0x40; 24]));
        for quote in [None, Some(48), Some(44)] {
            let e = Packet6::icmp6_error(B6, A6, icmpv6::TIME_EXCEEDED, 0, [0; 4], &probe, quote);
            check_ip_checksums(&e.frame()).unwrap();
        }
        // A quoted datagram with a wrong UDP checksum, the ICMPv6 checksum
        // right: the checker must still notice.
        let mut quoted = probe.ip_bytes();
        quoted[40 + 6] ^= 0x55;
        let e = Packet6::icmp6(B6, A6, Icmp::error(1, 4, [0; 4], &quoted));
        assert!(check_ip_checksums(&e.frame()).is_err());
    }

    #[test]
    fn first_difference_reports_offsets() {
        assert_eq!(first_difference(&[1, 2, 3], &[1, 2, 3]), None);
        assert_eq!(first_difference(&[1, 2, 3], &[1, 9, 3]), Some(1));
        assert_eq!(first_difference(&[1, 2], &[1, 2, 3]), Some(2));
    }
}
