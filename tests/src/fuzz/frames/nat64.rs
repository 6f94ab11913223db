//! IPv6 frames on an inside interface, for NAT64 (`xnat_inside_tc` hands
//! them to `xnat_nat64_out_tc`): TCP, UDP and ICMPv6 echo from IPv6 hosts
//! to IPv4 addresses under the epoch's prefix (often a binding's flow, now
//! and then too big for the external link, longer than 1260 bytes as
//! IPv4, to a non-global address, to the gateway's own, outside the
//! prefix); ICMPv6 errors about a packet a host received through a binding
//! (every type RFC 7915 maps and some it does not, quotes whole or cut,
//! quoting an address outside the prefix, a host without a stand-in, an
//! extension header, no IPv6 header at all); extension headers, other
//! ICMPv6 types, unspecified, multicast and link-local sources; hop limits
//! 0 to 2; then byte-level damage (payload length lies, cuts, version,
//! checksums, padding).

use std::net::{Ipv4Addr, Ipv6Addr};

use rand::Rng;

use super::{Case, Generator, pick, sorted};
use crate::bpf::Hook;
use crate::frame::{ETH_HLEN, ethernet, ethertype};
use crate::fuzz::world::{
    BAD_SOURCES6, HOSTS6, INSIDE, NOT_INTERNAL, OTHER_PUBLIC, POOL, REMOTES, STATIC, STATIC64,
};
use crate::model::State;
use crate::model::csum;
use crate::model::nat64::{embed, is_stand_in, pseudo6};
use crate::napt_maps::ip;

/// Share of the frames that are IPv6 on an inside interface.
pub(super) const SHARE: f64 = 0.15;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMPV6: u8 = 58;

/// IPv4 destinations NAT64 may be asked for, besides the remotes: the
/// gateway's own addresses, an inside host, and non-global ones
/// (private, shared, loopback, link-local, multicast).
const ODD_DESTINATIONS: [Ipv4Addr; 7] = [
    INSIDE[0],
    NOT_INTERNAL,
    Ipv4Addr::new(100, 64, 0, 1),
    Ipv4Addr::new(127, 0, 0, 1),
    Ipv4Addr::new(169, 254, 1, 1),
    Ipv4Addr::new(224, 0, 0, 5),
    OTHER_PUBLIC,
];

/// An IPv6 datagram as the generator builds it: the transport bytes
/// (their checksum already computed) after a fixed header.
#[derive(Clone, Debug)]
pub struct Packet6 {
    pub tclass: u8,
    pub flow: u32,
    pub next: u8,
    pub hop_limit: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub payload: Vec<u8>,
}

impl Packet6 {
    fn new(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: Vec<u8>) -> Packet6 {
        Packet6 {
            tclass: 0,
            flow: 0,
            next,
            hop_limit: 64,
            src,
            dst,
            payload,
        }
    }

    /// The datagram: header and payload.
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(40 + self.payload.len());
        let first = 0x6000_0000 | u32::from(self.tclass) << 20 | (self.flow & 0xf_ffff);
        b.extend_from_slice(&first.to_be_bytes());
        b.extend_from_slice(&(self.payload.len() as u16).to_be_bytes());
        b.push(self.next);
        b.push(self.hop_limit);
        b.extend_from_slice(&self.src.octets());
        b.extend_from_slice(&self.dst.octets());
        b.extend_from_slice(&self.payload);
        b
    }

    pub fn frame(&self) -> Vec<u8> {
        ethernet(ethertype::IPV6, &self.bytes())
    }
}

/// `seg` with its checksum (at `at`) over the IPv6 pseudo-header; a UDP
/// checksum computing to 0 is sent as 0xffff.
fn with_checksum(src: Ipv6Addr, dst: Ipv6Addr, next: u8, mut seg: Vec<u8>, at: usize) -> Vec<u8> {
    seg[at] = 0;
    seg[at + 1] = 0;
    let sum = pseudo6(&src.octets(), &dst.octets(), seg.len(), next) + u64::from(csum::sum(&seg));
    let mut c = !csum::fold(sum);
    if next == UDP && c == 0 {
        c = 0xffff;
    }
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
    seg
}

/// Puts `p`'s payload behind a fragment header (RFC 8200 section 4.5).
fn fragment6(p: &mut Packet6, offset: u16, more: bool, id: u32) {
    let mut h = vec![p.next, 0];
    h.extend_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.append(&mut p.payload);
    p.payload = h;
    p.next = 44;
}

impl Generator {
    /// The next IPv6 frame for an inside interface.
    pub(super) fn next_nat64(&mut self, st: &State) -> Case {
        let mut what = vec!["IPv6 on an inside interface".to_string()];
        let mut p = match self.rng.random_range(0..100) {
            0..=17 => self.error6(st, &mut what),
            18..=25 => self.odd6(st, &mut what),
            _ => self.datagram6(st, &mut what),
        };
        if self.rng.random_bool(0.08) {
            p.hop_limit = self.rng.random_range(0..3);
            what.push(format!("hop limit {}", p.hop_limit));
        }
        if self.rng.random_bool(0.2) {
            p.tclass = self.rng.random();
            p.flow = self.rng.random();
        }
        let base_frame = p.frame();
        let frame = self.mutate6(base_frame.clone(), &mut what);
        // Now and then to the XDP program in front of TC (NAT64's fast
        // path for established flows; the rest passes to TC).
        let hook = if self.rng.random_bool(0.25) {
            what.push("inside XDP".into());
            Hook::InsideXdp
        } else {
            Hook::InsideTc
        };
        Case {
            hook,
            frame,
            base: None,
            base_frame,
            what,
        }
    }

    /// The IPv6 address of `v4` under the epoch's prefix; now and then one
    /// just outside it (the last bit of the prefix flipped).
    fn embedded(&mut self, st: &State, v4: Ipv4Addr, what: &mut Vec<String>) -> Ipv6Addr {
        let mut a = embed(&st.nat64, v4.octets());
        // (A reload that switched NAT64 off zeroed the prefix.)
        if st.nat64.prefix_len != 0 && self.rng.random_bool(0.04) {
            let last = usize::from(st.nat64.prefix_len) - 1;
            a[last / 8] ^= 0x80 >> (last % 8);
            what.push("outside the prefix".into());
        }
        Ipv6Addr::from(a)
    }

    /// An IPv6 host, its port (or echo identifier), and the IPv4 remote
    /// endpoint it talks to: often a NAT64 binding's flow (its host, port
    /// and a remote one of its sessions), else a host of the world and a
    /// remote of any kind.
    fn flow6(&mut self, st: &State, proto: u8) -> ((Ipv6Addr, u16), (Ipv4Addr, u16)) {
        let proto4 = if proto == ICMPV6 { 1 } else { proto };
        let bindings = sorted(st.napt_out.iter().filter_map(|(k, m)| {
            let host = st.nat64_ids.get(&k.addr)?;
            (k.proto == proto4 && is_stand_in(k.addr)).then(|| {
                let remote = if m.first.live != 0 {
                    (m.first.remote_addr, m.first.remote_port)
                } else {
                    st.sessions
                        .keys()
                        .filter(|s| s.inside_addr == k.addr && s.inside_port == k.port)
                        .map(|s| (s.remote_addr, s.remote_port))
                        .min()
                        .unwrap_or((u32::from_ne_bytes(REMOTES[0].octets()), k.port))
                };
                (host.addr, k.port, remote.0, remote.1)
            })
        }));
        if !bindings.is_empty() && self.rng.random_bool(0.5) {
            let (h, port, ra, rp) = pick(&mut self.rng, &bindings);
            return (
                (Ipv6Addr::from(h), u16::from_be(port)),
                (ip(ra), u16::from_be(rp)),
            );
        }
        let host = if self.rng.random_bool(0.15) {
            STATIC64.0
        } else {
            pick(&mut self.rng, &HOSTS6)
        };
        if self.rng.random_bool(0.1) {
            // To one of our public endpoints: hairpinned (to an IPv6
            // host's, or an IPv4 one's).
            let public = self.public_endpoint(st, proto4);
            return ((host, self.port()), public);
        }
        let remote = match self.rng.random_range(0..20) {
            0..=13 => pick(&mut self.rng, &REMOTES),
            14 => pick(&mut self.rng, &POOL),
            15 => pick(&mut self.rng, &STATIC).1,
            _ => pick(&mut self.rng, &ODD_DESTINATIONS),
        };
        ((host, self.port()), (remote, self.port()))
    }

    /// A payload: the usual sizes, or one that makes an IPv4 packet
    /// longer than 1260 bytes (and maybe beyond an MTU).
    fn payload6(&mut self) -> Vec<u8> {
        if self.rng.random_bool(0.12) {
            let n = self.rng.random_range(1230..1480);
            (0..n).map(|_| self.rng.random()).collect()
        } else {
            self.payload()
        }
    }

    /// The transport bytes of a TCP, UDP or ICMPv6 echo packet (`echo`:
    /// its type) from `src` to `dst`.
    #[allow(clippy::too_many_arguments)]
    fn transport6(
        &mut self,
        src: (Ipv6Addr, u16),
        dst: (Ipv6Addr, u16),
        proto: u8,
        echo: u8,
        what: &mut Vec<String>,
    ) -> Vec<u8> {
        let data = self.payload6();
        match proto {
            TCP => {
                let mut t = Vec::with_capacity(20 + data.len());
                t.extend_from_slice(&src.1.to_be_bytes());
                t.extend_from_slice(&dst.1.to_be_bytes());
                t.extend_from_slice(&self.rng.random::<u32>().to_be_bytes());
                t.extend_from_slice(&self.rng.random::<u32>().to_be_bytes());
                t.push(0x50);
                t.push(pick(
                    &mut self.rng,
                    &[0x02u8, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14],
                ));
                t.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
                t.extend_from_slice(&data);
                with_checksum(src.0, dst.0, TCP, t, 16)
            }
            UDP => {
                let mut u = Vec::with_capacity(8 + data.len());
                u.extend_from_slice(&src.1.to_be_bytes());
                u.extend_from_slice(&dst.1.to_be_bytes());
                u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
                u.extend_from_slice(&[0, 0]);
                u.extend_from_slice(&data);
                if self.rng.random_bool(0.05) {
                    what.push("UDP without checksum".into());
                    return u;
                }
                with_checksum(src.0, dst.0, UDP, u, 6)
            }
            _ => {
                let id = if echo == 128 { src.1 } else { dst.1 };
                let mut i = vec![echo, 0, 0, 0];
                i.extend_from_slice(&id.to_be_bytes());
                i.extend_from_slice(&self.rng.random::<u16>().to_be_bytes());
                i.extend_from_slice(&data);
                with_checksum(src.0, dst.0, ICMPV6, i, 2)
            }
        }
    }

    /// A TCP, UDP or ICMPv6 echo packet from an IPv6 host to the prefix;
    /// now and then behind a fragment header: an atomic fragment, the
    /// first or a later fragment of it, a later fragment of a datagram
    /// whose first fragment went through (or the first fragment of one
    /// whose later fragments wait).
    fn datagram6(&mut self, st: &State, what: &mut Vec<String>) -> Packet6 {
        if self.rng.random_bool(0.06)
            && let Some(p) = self.known_fragment6(st, what)
        {
            return p;
        }
        let proto = pick(&mut self.rng, &[TCP, TCP, UDP, UDP, ICMPV6]);
        let ((host, hport), (remote, rport)) = self.flow6(st, proto);
        let dst = self.embedded(st, remote, what);
        let echo = pick(&mut self.rng, &[128u8, 128, 128, 129]);
        what.push(format!(
            "[{host}]:{hport} -> {remote}:{rport} proto {proto}"
        ));
        let payload = self.transport6((host, hport), (dst, rport), proto, echo, what);
        let mut p = Packet6::new(host, dst, proto, payload);
        let id = self.rng.random::<u32>() & 0xffff_0003;
        match self.rng.random_range(0..100) {
            0..=4 => {
                what.push("atomic fragment".into());
                fragment6(&mut p, 0, false, id);
            }
            5..=9 => {
                let n = p.payload.len();
                let k = self.rng.random_range(3..=(n / 8).max(3));
                p.payload.truncate((k * 8).min(n));
                what.push(format!("first fragment ({} of {n} bytes)", p.payload.len()));
                fragment6(&mut p, 0, true, id);
            }
            10..=14 => {
                let n = p.payload.len();
                let offset = self.rng.random_range(1..=(n / 8).max(1));
                let more = self.rng.random_bool(0.5);
                p.payload = p.payload.split_off((offset * 8).min(n));
                if p.payload.is_empty() {
                    p.payload = vec![0x5a; 8];
                }
                what.push(format!("later fragment at {}", offset * 8));
                fragment6(&mut p, offset as u16, more, id);
            }
            _ => {}
        }
        p
    }

    /// A fragment of a datagram NAT64 met before (its IPv4 twin's first
    /// fragment remembered, or later ones held): from the stand-in's host
    /// to the remote under the prefix, the identification's low 16 bits
    /// the IPv4 one.
    fn known_fragment6(&mut self, st: &State, what: &mut Vec<String>) -> Option<Packet6> {
        let held = |k: &nat_common::FragKey| st.held.keys().any(|(h, _)| h == k);
        let known = sorted(
            st.frags
                .keys()
                .chain(st.held.keys().map(|(k, _)| k))
                .filter_map(|k| {
                    let host = st.nat64_ids.get(&k.src)?;
                    (k.inbound == 0 && matches!(k.proto, TCP | UDP)).then_some((
                        host.addr,
                        k.dst,
                        k.id,
                        k.proto,
                        held(k),
                    ))
                }),
        );
        if known.is_empty() {
            return None;
        }
        let (host, dst, id, proto, held) = pick(&mut self.rng, &known);
        let (host, dst) = (Ipv6Addr::from(host), self.embedded(st, ip(dst), what));
        let low = u16::from_be_bytes(id.to_ne_bytes());
        let id = (self.rng.random::<u32>() & 0xffff_0000) | u32::from(low);
        let ports = (self.port(), self.port());
        let payload = self.transport6((host, ports.0), (dst, ports.1), proto, 128, what);
        let mut p = Packet6::new(host, dst, proto, payload);
        if held && self.rng.random_bool(0.6) {
            what.push("first fragment of a datagram with held fragments".into());
            let n = p.payload.len().min(24);
            p.payload.truncate(n.max(8) / 8 * 8);
            fragment6(&mut p, 0, true, id);
        } else {
            what.push("later fragment of a known datagram".into());
            let offset = self.rng.random_range(1..200);
            fragment6(&mut p, offset, self.rng.random_bool(0.5), id);
        }
        Some(p)
    }

    /// What NAT64 does not translate: extension headers and other next
    /// headers, ICMPv6 types without an ICMP twin, sources that never
    /// leave their link.
    fn odd6(&mut self, st: &State, what: &mut Vec<String>) -> Packet6 {
        let ((host, hport), (remote, rport)) = self.flow6(st, UDP);
        let dst = self.embedded(st, remote, what);
        match self.rng.random_range(0..3) {
            0 => {
                let next = pick(&mut self.rng, &[0u8, 43, 44, 60, 47, 50]);
                what.push(format!("next header {next}"));
                let n = self.rng.random_range(8..48);
                let bytes = (0..n).map(|_| self.rng.random()).collect();
                Packet6::new(host, dst, next, bytes)
            }
            1 => {
                let t = pick(&mut self.rng, &[130u8, 133, 135, 143, 200, 127]);
                what.push(format!("ICMPv6 type {t}"));
                let mut i = vec![t, 0, 0, 0, 0, 0, 0, 0];
                i.extend((0..self.rng.random_range(0..48)).map(|_| self.rng.random::<u8>()));
                Packet6::new(host, dst, ICMPV6, with_checksum(host, dst, ICMPV6, i, 2))
            }
            _ => {
                let src = pick(&mut self.rng, &BAD_SOURCES6);
                what.push(format!("from {src}"));
                let payload = self.transport6((src, hport), (dst, rport), UDP, 128, what);
                Packet6::new(src, dst, UDP, payload)
            }
        }
    }

    /// An ICMPv6 error from inside about a packet an IPv6 host received
    /// from a remote endpoint (through a binding, mostly).
    fn error6(&mut self, st: &State, what: &mut Vec<String>) -> Packet6 {
        let qproto = pick(&mut self.rng, &[TCP, UDP, ICMPV6]);
        let ((host, hport), (remote, rport)) = self.flow6(st, qproto);
        let from = self.embedded(st, remote, what);
        // The packet the host received: from the remote (under the prefix)
        // to the host, now and then to a host without a stand-in.
        let to = if self.rng.random_bool(0.05) {
            what.push("quoting a packet to another host".into());
            pick(&mut self.rng, &HOSTS6)
        } else {
            host
        };
        let echo = if self.rng.random_bool(0.8) { 129 } else { 128 };
        let payload = self.transport6((from, rport), (to, hport), qproto, echo, what);
        let mut quoted = Packet6::new(from, to, qproto, payload);
        if self.rng.random_bool(0.05) {
            quoted.next = pick(&mut self.rng, &[0u8, 44, 47]);
            what.push(format!("quoted next header {}", quoted.next));
        }
        if self.rng.random_bool(0.2) {
            quoted.tclass = self.rng.random();
            quoted.hop_limit = self.rng.random();
        }
        let mut q = quoted.bytes();
        let cut = match self.rng.random_range(0..10) {
            0..=3 => q.len(),
            4 => 48,
            5 => 40 + self.rng.random_range(0..8),
            6 => self.rng.random_range(0..40),
            _ => self.rng.random_range(40..=q.len()),
        };
        q.truncate(cut);
        if q.len() >= 40 && self.rng.random_bool(0.04) {
            q[0] = (q[0] & 0x0f) | (self.rng.random_range(0..16u8) << 4);
            what.push(format!("quoted version {}", q[0] >> 4));
        }
        let (t, c) = pick(
            &mut self.rng,
            &[
                (1u8, 0u8),
                (1, 1),
                (1, 2),
                (1, 3),
                (1, 4),
                (1, 5),
                (2, 0),
                (2, 0),
                (3, 0),
                (3, 1),
                (4, 0),
                (4, 1),
                (4, 2),
                (100, 0),
            ],
        );
        let rest: u32 = match (t, c) {
            (2, 0) => pick(&mut self.rng, &[1280u32, 1500, 1500, 9000, 0x1_2345, 10]),
            (4, _) => self.rng.random_range(0..48),
            _ => 0,
        };
        what.push(format!(
            "ICMPv6 error {t}/{c} quoting {} of {} bytes",
            q.len(),
            quoted.bytes().len()
        ));
        let mut i = vec![t, c, 0, 0];
        i.extend_from_slice(&rest.to_be_bytes());
        i.extend_from_slice(&q);
        // From the host (or a router inside) back to the remote.
        let src = if self.rng.random_bool(0.8) {
            host
        } else {
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0xfe)
        };
        let mut p = Packet6::new(src, from, ICMPV6, with_checksum(src, from, ICMPV6, i, 2));
        if self.rng.random_bool(0.04) {
            // A whole datagram all the same (RFC 8021).
            what.push("atomic fragment".into());
            fragment6(&mut p, 0, false, self.rng.random());
        }
        p
    }

    /// Byte-level damage to an IPv6 frame: the payload length made 0,
    /// shorter (the rest becomes padding) or longer than the frame, the
    /// version changed, a checksum field or a bit changed, the frame cut
    /// (never inside the 40-byte header: the skb test run refuses those),
    /// Ethernet padding.
    fn mutate6(&mut self, mut f: Vec<u8>, what: &mut Vec<String>) -> Vec<u8> {
        let ip = ETH_HLEN;
        let l4 = ip + 40;
        let real = f.len() - l4;
        if self.rng.random_bool(0.06) {
            let n: usize = match self.rng.random_range(0..4) {
                0 => 0,
                1 => real + self.rng.random_range(1..40),
                2 => real.saturating_sub(self.rng.random_range(1..30)),
                _ => self.rng.random_range(0..24),
            };
            f[ip + 4..ip + 6].copy_from_slice(&(n as u16).to_be_bytes());
            what.push(format!("payload length {n} (of {real})"));
        }
        if self.rng.random_bool(0.01) {
            f[ip] = (f[ip] & 0x0f) | (self.rng.random_range(0..16u8) << 4);
            what.push("IP version changed".into());
        }
        if self.rng.random_bool(0.05) {
            let at = pick(&mut self.rng, &[l4 + 2, l4 + 6, l4 + 16]);
            if at + 1 < f.len() {
                let r = self.rng.random();
                let v: u16 = pick(&mut self.rng, &[0, 0xffff, r]);
                f[at..at + 2].copy_from_slice(&v.to_be_bytes());
                what.push(format!("checksum-ish field at {at} set to {v:#06x}"));
            }
        }
        if self.rng.random_bool(0.02) {
            let at = self.rng.random_range(0..f.len());
            f[at] ^= 1 << self.rng.random_range(0..8);
            what.push(format!("bit flipped at {at}"));
        }
        if self.rng.random_bool(0.04) {
            let cut = l4 + self.rng.random_range(0..=real);
            f.truncate(cut);
            what.push(format!("cut at {cut}"));
        }
        if self.rng.random_bool(0.03) {
            let n = self.rng.random_range(1..20);
            f.extend(std::iter::repeat_n(0u8, n));
            what.push(format!("{n} bytes of Ethernet padding"));
        }
        f
    }
}
