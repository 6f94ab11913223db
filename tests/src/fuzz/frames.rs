//! Seeded, deterministic frame generation: valid TCP/UDP/ICMP (echo and
//! errors) for known and unknown flows both ways, built with
//! [`crate::frame`], then sometimes broken: cut at header boundaries, IHL
//! and total length lies, IPv4 options, fragments, bad and zero
//! checksums, nested or cut ICMP quotes, VLAN tags, other ethertypes,
//! TTL 0/1, stray bytes; IPv6 frames for NAT64 on the inside TC hook
//! ([`nat64`]), and IPv4 ones to NAT64 bindings.

mod inside;
mod nat64;

use std::net::Ipv4Addr;

use rand::seq::IndexedRandom;
use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;

use nat_common::napt::FRAG_HOLD_BYTES;

use super::world::{INSIDE, NOT_INTERNAL, OTHER_PUBLIC, POOL, PORTS, REMOTES, STATIC, STATIC64};
use crate::bpf::Hook;
use crate::frame::{
    ETH_HLEN, IP_DF, Icmp, L4, Packet, Tcp, Udp, arp_request, ethernet, ethernet_vlan, ethertype,
    ipv6_udp, tcp_flags,
};
use crate::model::State;
use crate::napt_maps::ip;

/// One generated frame and how it was made.
#[derive(Clone, Debug)]
pub struct Case {
    pub hook: Hook,
    pub frame: Vec<u8>,
    /// The packet before the byte-level mutations, if it is an IPv4 one
    /// built with [`crate::frame`] (for the repro).
    pub base: Option<Packet>,
    /// The frame `base` builds (or the whole frame for non-IPv4 ones).
    pub base_frame: Vec<u8>,
    /// What was done, for reports.
    pub what: Vec<String>,
}

pub struct Generator {
    pub rng: ChaCha8Rng,
    /// Whether frames go to the inside interfaces' programs too (not
    /// while the agent's code runs: a reload rewrites the fast-path
    /// settings, which the model of the agent does not follow).
    pub inside: bool,
}

fn pick<T: Copy>(rng: &mut impl Rng, v: &[T]) -> T {
    *v.choose(rng).unwrap()
}

impl Generator {
    fn port(&mut self) -> u16 {
        if self.rng.random_bool(0.8) {
            pick(&mut self.rng, &PORTS)
        } else {
            self.rng.random()
        }
    }

    fn payload(&mut self) -> Vec<u8> {
        // Mostly small; now and then one that fills a 1500-byte MTU, past
        // what a held fragment may be.
        let n = pick(
            &mut self.rng,
            &[0usize, 1, 3, 8, 20, 60, 0, 1, 3, 8, 20, 60, 1480],
        );
        (0..n).map(|_| self.rng.random()).collect()
    }

    fn tcp(&mut self, sport: u16, dport: u16) -> L4 {
        let mut t = if self.rng.random_bool(0.3) {
            Tcp::syn(sport, dport)
        } else {
            let p = self.payload();
            Tcp::data(sport, dport, &p)
        };
        t.flags = pick(
            &mut self.rng,
            &[
                tcp_flags::SYN,
                tcp_flags::SYN | tcp_flags::ACK,
                tcp_flags::ACK,
                tcp_flags::ACK | tcp_flags::PSH,
                tcp_flags::FIN | tcp_flags::ACK,
                tcp_flags::RST,
                tcp_flags::RST | tcp_flags::ACK,
                0,
                0xff,
            ],
        );
        t.seq = self.rng.random();
        L4::Tcp(t)
    }

    fn udp(&mut self, sport: u16, dport: u16) -> L4 {
        let p = self.payload();
        let u = Udp::new(sport, dport, &p);
        L4::Udp(if self.rng.random_bool(0.15) {
            u.without_checksum()
        } else {
            u
        })
    }

    /// A TCP, UDP or ICMP echo packet between two endpoints.
    fn flow_packet(
        &mut self,
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        proto: u8,
        echo_type: u8,
    ) -> Packet {
        let l4 = match proto {
            6 => self.tcp(src.1, dst.1),
            17 => self.udp(src.1, dst.1),
            _ => {
                let data = self.payload();
                let id = if echo_type == 0 { dst.1 } else { src.1 };
                L4::Icmp(Icmp::echo_request(id, self.rng.random(), &data))
            }
        };
        let mut p = Packet::new(src.0, dst.0, l4);
        if let L4::Icmp(i) = &mut p.l4 {
            i.typ = echo_type;
        }
        p.ip.id = self.rng.random_range(0..4);
        p
    }

    /// An inside endpoint: often one that has a mapping already.
    fn inside_endpoint(&mut self, st: &State, proto: u8) -> (Ipv4Addr, u16) {
        let known = sorted(
            st.napt_out
                .keys()
                .filter(|k| k.proto == proto)
                .map(|k| (k.addr, k.port)),
        );
        if !known.is_empty() && self.rng.random_bool(0.5) {
            let (a, p) = pick(&mut self.rng, &known);
            return (ip(a), u16::from_be(p));
        }
        let host = match self.rng.random_range(0..20) {
            0..=13 => pick(&mut self.rng, &INSIDE),
            14..=16 => pick(&mut self.rng, &STATIC).0,
            17 => NOT_INTERNAL,
            18 => pick(&mut self.rng, &POOL),
            _ => pick(&mut self.rng, &REMOTES),
        };
        (host, self.port())
    }

    /// A public endpoint of ours: often a mapping's, now and then one of
    /// an IPv6 host's (a NAT64 binding, the static NAT64 address).
    fn public_endpoint(&mut self, st: &State, proto: u8) -> (Ipv4Addr, u16) {
        let nat64 = sorted(
            st.napt_in
                .iter()
                .filter(|(k, v)| k.proto == proto && crate::model::nat64::is_stand_in(v.addr))
                .map(|(k, _)| (k.addr, k.port)),
        );
        // (Other protocols reach an IPv6 host only through its static
        // entry.)
        let bias = if proto == 47 { 0.5 } else { 0.25 };
        if self.rng.random_bool(bias) {
            if !nat64.is_empty() && proto != 47 && self.rng.random_bool(0.8) {
                let (a, p) = pick(&mut self.rng, &nat64);
                return (ip(a), u16::from_be(p));
            }
            if st.static_in.contains_key(&crate::napt_maps::be(STATIC64.2)) {
                return (STATIC64.2, self.port());
            }
        }
        let known = sorted(
            st.napt_in
                .keys()
                .filter(|k| k.proto == proto)
                .map(|k| (k.addr, k.port)),
        );
        if !known.is_empty() && self.rng.random_bool(0.6) {
            let (a, p) = pick(&mut self.rng, &known);
            return (ip(a), u16::from_be(p));
        }
        let host = match self.rng.random_range(0..20) {
            0..=11 => pick(&mut self.rng, &POOL),
            12..=14 => pick(&mut self.rng, &STATIC).1,
            15 => STATIC64.2,
            16..=17 => OTHER_PUBLIC,
            _ => pick(&mut self.rng, &INSIDE),
        };
        (host, self.port())
    }

    /// A remote endpoint: often one a session (a mapping's first or one in
    /// SESSIONS) talks to.
    fn remote_endpoint(&mut self, st: &State, proto: u8) -> (Ipv4Addr, u16) {
        let firsts = st
            .napt_out
            .iter()
            .filter(|(k, m)| k.proto == proto && m.first.live != 0)
            .map(|(_, m)| (m.first.remote_addr, m.first.remote_port));
        let known = sorted(
            st.sessions
                .keys()
                .filter(|k| k.proto == proto)
                .map(|k| (k.remote_addr, k.remote_port))
                .chain(firsts),
        );
        if !known.is_empty() && self.rng.random_bool(0.6) {
            let (a, p) = pick(&mut self.rng, &known);
            return (ip(a), u16::from_be(p));
        }
        if self.rng.random_bool(0.04) {
            // Not global: what the well-known NAT64 prefix may not carry.
            return (NOT_INTERNAL, self.port());
        }
        (pick(&mut self.rng, &REMOTES), self.port())
    }

    /// An ICMP error carrying (the start of) `quoted`.
    fn icmp_error(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        quoted: &Packet,
        what: &mut Vec<String>,
    ) -> Packet {
        let (typ, code) = pick(
            &mut self.rng,
            &[
                (3u8, 3u8),
                (3, 4),
                (3, 1),
                (11, 0),
                (12, 0),
                (5, 1),
                (4, 0),
                (3, 0),
                (3, 2),
                (3, 9),
                (3, 13),
                (3, 14),
                (11, 1),
            ],
        );
        let mut bytes = quoted.ip_bytes();
        let cut = match self.rng.random_range(0..10) {
            0..=3 => bytes.len(),
            4 => 28,
            5 => 20 + self.rng.random_range(0..8),
            6 => self.rng.random_range(0..20),
            7 => quoted.ip.header_len() + 8,
            _ => self.rng.random_range(0..=bytes.len()),
        };
        bytes.truncate(cut);
        if bytes.len() >= 4 && self.rng.random_bool(0.1) {
            // The quoted header lies about its own length.
            if self.rng.random_bool(0.5) {
                bytes[0] = (bytes[0] & 0xf0) | self.rng.random_range(0..16u8);
            } else {
                let t: u16 = pick(&mut self.rng, &[0, 1, 20, 28, 0xffff]);
                bytes[2..4].copy_from_slice(&t.to_be_bytes());
            }
            what.push(format!(
                "quoted header's IHL/length changed to {:02x?}",
                &bytes[..4]
            ));
        }
        what.push(format!(
            "ICMP error {typ}/{code} quoting {} of {} bytes",
            bytes.len(),
            quoted.ip_bytes().len()
        ));
        let mtu = if typ == 3 && code == 4 {
            [0, 0, 0x05, 0xdc]
        } else {
            [0; 4]
        };
        Packet::icmp(src, dst, Icmp::error(typ, code, mtu, &bytes)).with_error_ip()
    }

    /// A datagram an ICMP error may quote, from `src` to `dst`.
    fn quotable(
        &mut self,
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        proto: u8,
        what: &mut Vec<String>,
    ) -> Packet {
        let mut p = match proto {
            1 if self.rng.random_bool(0.2) => {
                // An error quoting an error.
                let inner = self.flow_packet(dst, src, 17, 8);
                what.push("nested ICMP error".into());
                self.icmp_error(src.0, dst.0, &inner, what)
            }
            1 => {
                let t = pick(&mut self.rng, &[8u8, 0]);
                self.flow_packet(src, dst, 1, t)
            }
            p => self.flow_packet(src, dst, p, 8),
        };
        if self.rng.random_bool(0.1) {
            p.ip.frag_offset = self.rng.random_range(1..4);
            what.push("quoted datagram is a later fragment".into());
        }
        if self.rng.random_bool(0.1) {
            p.ip.options = vec![1, 1, 1, 1];
        }
        p
    }

    /// The next frame for `st`.
    pub fn next(&mut self, st: &State) -> Case {
        // IPv6 for NAT64 in every mode: what NAT64 reads of the gateway
        // (the external ifindex, the routes) no operation of the agent's
        // changes.
        if self.rng.random_bool(nat64::SHARE) {
            return self.next_nat64(st);
        }
        if self.rng.random_bool(inside::SHARE) && self.inside {
            return self.next_inside(st);
        }
        let mut what = Vec::new();
        let outbound = self.rng.random_bool(0.5);
        let hook = if outbound {
            Hook::EgressTc
        } else if self.rng.random_bool(0.5) {
            Hook::IngressXdp
        } else {
            Hook::IngressTc
        };
        let proto = pick(&mut self.rng, &[6u8, 6, 17, 17, 1, 1, 47]);
        let kind = self.rng.random_range(0..100);
        if kind < 4 {
            let frame = match self.rng.random_range(0..5) {
                0 => arp_request(INSIDE[0], POOL[0]),
                1 => ipv6_udp(b"not ipv4"),
                2 => {
                    // IPv6 cut anywhere, below its 40-byte header too
                    // (the skb test run refuses those: counted, skipped).
                    let mut f = ipv6_udp(b"cut short");
                    let n = self.rng.random_range(14..f.len());
                    f.truncate(n);
                    f
                }
                3 => {
                    // An 802.1Q-tagged IPv4 datagram of a flow xnat knows:
                    // the programs read the EtherType at offset 12 only,
                    // so a tag in the frame's data means not ours.
                    let inside = self.inside_endpoint(st, 17);
                    let remote = self.remote_endpoint(st, 17);
                    let mut f = self.flow_packet(inside, remote, 17, 8).frame();
                    f.splice(12..12, [0x81, 0x00, 0x00, 0x0a]);
                    f
                }
                _ => {
                    let n = self.rng.random_range(0..64);
                    let b: Vec<u8> = (0..n).map(|_| self.rng.random()).collect();
                    ethernet(self.rng.random(), &b)
                }
            };
            what.push("not IPv4".into());
            return Case {
                hook,
                base: None,
                base_frame: frame.clone(),
                frame,
                what,
            };
        }
        let mut p = if kind < 22 && proto != 47 {
            // An ICMP error about a flow.
            let qproto = pick(&mut self.rng, &[6u8, 17, 1]);
            if outbound {
                let inside = self.inside_endpoint(st, qproto);
                let remote = self.remote_endpoint(st, qproto);
                // Now and then about a datagram another host received.
                let quoted_to = if self.rng.random_bool(0.05) {
                    what.push("quoting a datagram to another host".into());
                    self.inside_endpoint(st, qproto)
                } else {
                    inside
                };
                let q = self.quotable(remote, quoted_to, qproto, &mut what);
                // The gateway's own error about an inbound packet it
                // translated (TTL exceeded, fragmentation needed): from one
                // of its addresses, quoting the inside endpoint.
                let from = if self.rng.random_bool(0.3) {
                    what.push("the gateway's own ICMP error".into());
                    pick(&mut self.rng, &[POOL[0], Ipv4Addr::new(192, 0, 2, 1)])
                } else {
                    inside.0
                };
                self.icmp_error(from, remote.0, &q, &mut what)
            } else {
                let public = self.public_endpoint(st, qproto);
                let remote = self.remote_endpoint(st, qproto);
                let q = self.quotable(public, remote, qproto, &mut what);
                let router = if self.rng.random_bool(0.5) {
                    remote.0
                } else {
                    Ipv4Addr::new(192, 0, 2, 254)
                };
                let dst = if self.rng.random_bool(0.85) {
                    public.0
                } else {
                    pick(&mut self.rng, &POOL)
                };
                self.icmp_error(router, dst, &q, &mut what)
            }
        } else if outbound {
            let inside = self.inside_endpoint(st, proto);
            let remote = self.remote_endpoint(st, proto);
            let t = pick(&mut self.rng, &[8u8, 8, 8, 0, 13]);
            self.flow_packet(inside, remote, proto, t)
        } else {
            let public = self.public_endpoint(st, proto);
            let remote = self.remote_endpoint(st, proto);
            let t = pick(&mut self.rng, &[0u8, 0, 0, 8, 14]);
            self.flow_packet(remote, public, proto, t)
        };
        // (No error is built for protocol 47: an ICMP message here is the
        // echo `flow_packet` stands in with.)
        if proto == 47 {
            let b = self.payload();
            p.l4 = L4::Raw {
                proto: 47,
                bytes: b,
            };
        }
        if hook == Hook::IngressXdp
            && self.rng.random_bool(0.06)
            && let L4::Udp(u) = &mut p.l4
        {
            // Longer than NAT64 computes a missing checksum for (XDP takes
            // a frame beyond the MTU; epochs without an inside MTU reach
            // that rule, the others answer or drop it as too big first).
            let n = self.rng.random_range(1600..1700);
            u.payload = (0..n).map(|_| self.rng.random()).collect();
            u.no_checksum = true;
            what.push(format!("UDP without checksum, {n} bytes of data"));
        }
        if !outbound && self.rng.random_bool(0.15) {
            // Without DF: one too big for the inside link is split into
            // IPv6 fragments on TC (RFC 7915 4.1), dropped on XDP; now and
            // then one long enough for several pieces.
            p.ip.flags &= !IP_DF;
            what.push("DF clear".into());
            if self.rng.random_bool(0.4) {
                let n = self.rng.random_range(1250..3000);
                let long: Vec<u8> = (0..n).map(|_| self.rng.random()).collect();
                match &mut p.l4 {
                    L4::Udp(u) => u.payload = long,
                    L4::Tcp(t) => t.payload = long,
                    L4::Icmp(i) if matches!(i.typ, 0 | 8) => i.data = long,
                    _ => {}
                }
                what.push(format!("{n} bytes of data"));
            }
        }
        if self.rng.random_bool(0.08) {
            let options: [&[u8]; 4] = [
                &[0x94, 4, 0, 0],
                &[1, 1, 1, 0],
                &[7, 7, 4, 0, 0, 0, 0],
                &[1; 40],
            ];
            p.ip.options = pick(&mut self.rng, &options).to_vec();
            what.push(format!("{} bytes of IPv4 options", p.ip.options.len()));
        }
        if self.rng.random_bool(0.05) {
            p.ip.ttl = self.rng.random_range(0..2);
            what.push(format!("TTL {}", p.ip.ttl));
        }
        if self.rng.random_bool(0.1) {
            p = self.fragment(st, p, outbound, &mut what);
        }
        self.case(hook, p, what)
    }

    /// The frame of `p` for `hook`, damaged or not by [`Self::mutate`].
    fn case(&mut self, hook: Hook, p: Packet, mut what: Vec<String>) -> Case {
        let base_frame = p.frame();
        let frame = self.mutate(&p, base_frame.clone(), hook.is_xdp(), &mut what);
        Case {
            hook,
            frame,
            base: Some(p),
            base_frame,
            what,
        }
    }

    /// A first or later fragment of `p`, or a later fragment of a datagram
    /// whose first fragment was seen (or held).
    fn fragment(
        &mut self,
        st: &State,
        p: Packet,
        outbound: bool,
        what: &mut Vec<String>,
    ) -> Packet {
        let held = sorted(
            st.held
                .keys()
                .filter(|(k, _)| (k.inbound == 0) == outbound)
                .map(|(k, _)| (k.src, k.dst, k.id, k.proto)),
        );
        if !held.is_empty() && self.rng.random_bool(0.4) {
            // The first fragment of a datagram whose later fragment came
            // first (and waits).
            let (src, dst, id, proto) = pick(&mut self.rng, &held);
            let (sport, dport) = (self.port(), self.port());
            let echo = if outbound { 8 } else { 0 };
            let whole = self
                .flow_packet((ip(src), sport), (ip(dst), dport), proto, echo)
                .with_id(u16::from_be(id));
            what.push("first fragment of a datagram with held fragments".into());
            return whole.fragment(0, 8, true);
        }
        let len = p.l4_bytes().len();
        let known = sorted(
            st.frags
                .keys()
                .chain(st.held.keys().map(|(k, _)| k))
                .map(|k| (k.src, k.dst, k.id, k.proto)),
        );
        if !known.is_empty() && self.rng.random_bool(0.4) {
            let (src, dst, id, proto) = pick(&mut self.rng, &known);
            let mut f = p.fragment(0, len, false);
            f.ip.src = ip(src);
            f.ip.dst = ip(dst);
            f.ip.id = u16::from_be(id);
            f.l4 = L4::Raw {
                proto,
                bytes: f.l4_bytes(),
            };
            f.ip.frag_offset = self.rng.random_range(1..200);
            f.ip.flags = if self.rng.random_bool(0.5) {
                crate::frame::IP_MF
            } else {
                0
            };
            what.push("later fragment of a known datagram".into());
            return f;
        }
        if self.rng.random_bool(0.5) {
            let n = (self.rng.random_range(0..=len / 8) * 8).max(8);
            what.push(format!("first fragment ({n} of {len} bytes)"));
            p.fragment(0, n, true)
        } else {
            let off = self.rng.random_range(1..=len.max(8) / 8 + 1) * 8;
            let off = off.min(len / 8 * 8).max(8);
            let more = self.rng.random_bool(0.5);
            what.push(format!("later fragment at {off}"));
            let mut f = if off >= len {
                let mut f = p.fragment(0, 0, more);
                f.ip.frag_offset = (off / 8) as u16;
                f
            } else {
                p.fragment(off, len - off, more)
            };
            if self.rng.random_bool(0.05)
                && let L4::Raw { bytes, .. } = &mut f.l4
            {
                // Too long to hold until its first fragment comes.
                bytes.resize(FRAG_HOLD_BYTES, 0x5a);
                what.push(format!("{} bytes long", bytes.len()));
            }
            f
        }
    }

    /// Byte-level damage to the frame of `p`.
    fn mutate(&mut self, p: &Packet, mut f: Vec<u8>, xdp: bool, what: &mut Vec<String>) -> Vec<u8> {
        let ipo = ETH_HLEN;
        let l4 = ipo + p.ip.header_len();
        if self.rng.random_bool(0.04) {
            let ihl = self.rng.random_range(0..16u8);
            f[ipo] = (f[ipo] & 0xf0) | ihl;
            fix_ip_csum(&mut f);
            what.push(format!("IHL {ihl}"));
        }
        if self.rng.random_bool(0.05) {
            let real = f.len() - ipo;
            let t: usize = match self.rng.random_range(0..5) {
                0 => 0,
                1 => real + self.rng.random_range(1..40),
                2 => real.saturating_sub(self.rng.random_range(1..30)),
                3 => self.rng.random_range(0..24),
                _ => self.rng.random_range(0..=0xffff),
            };
            f[ipo + 2..ipo + 4].copy_from_slice(&(t as u16).to_be_bytes());
            fix_ip_csum(&mut f);
            what.push(format!("total length {t} (IPv4 part is {real} bytes)"));
        }
        if self.rng.random_bool(0.01) {
            f[ipo] = (f[ipo] & 0x0f) | (self.rng.random_range(0..16u8) << 4);
            fix_ip_csum(&mut f);
            what.push("IP version changed".into());
        }
        if self.rng.random_bool(0.06) {
            let at = pick(&mut self.rng, &[ipo + 10, l4 + 2, l4 + 6, l4 + 16]);
            if at + 1 < f.len() {
                let r = self.rng.random();
                let v: u16 = pick(&mut self.rng, &[0, 0xffff, r]);
                f[at..at + 2].copy_from_slice(&v.to_be_bytes());
                what.push(format!("checksum-ish field at {at} set to {v:#06x}"));
            }
        }
        if self.rng.random_bool(0.03) {
            let at = self.rng.random_range(0..f.len());
            f[at] ^= 1 << self.rng.random_range(0..8);
            what.push(format!("bit flipped at {at}"));
        }
        if self.rng.random_bool(0.08) {
            let anywhere = self.rng.random_range(14..f.len().max(15));
            let cut = pick(
                &mut self.rng,
                &[
                    14,
                    ipo + 10,
                    ipo + 19,
                    ipo + 20,
                    l4,
                    l4 + 2,
                    l4 + 4,
                    l4 + 7,
                    l4 + 8,
                    l4 + 13,
                    l4 + 19,
                    l4 + 20,
                    l4 + 27,
                    l4 + 28,
                    anywhere,
                ],
            );
            // A cut inside the IPv4 header only where a test run can carry
            // it (XDP): the skb test run refuses such a frame, so on a TC
            // hook it would only be counted and skipped.
            let cut = if cut < ipo + 20 && !xdp {
                ipo + 20
            } else {
                cut
            };
            if cut < f.len() {
                f.truncate(cut);
                what.push(format!("cut at {cut}"));
            }
        }
        if self.rng.random_bool(0.03) {
            let n = self.rng.random_range(1..20);
            f.extend(std::iter::repeat_n(0u8, n));
            what.push(format!("{n} bytes of Ethernet padding"));
        }
        if self.rng.random_bool(0.02) {
            f = ethernet_vlan(
                self.rng.random_range(1..4095),
                ethertype::IPV4,
                &f[ETH_HLEN..],
            );
            what.push("VLAN tag".into());
        }
        if self.rng.random_bool(0.01) {
            let t: u16 = self.rng.random();
            f[12..14].copy_from_slice(&t.to_be_bytes());
            what.push(format!("ethertype {t:#06x}"));
        }
        // The kernel's test run refuses frames shorter than an Ethernet
        // header.
        if f.len() < ETH_HLEN {
            f.resize(ETH_HLEN, 0);
        }
        let _ = self.rng.next_u32();
        f
    }
}

/// Candidates in a fixed order (map iteration order is not), so a seed
/// names the same frames for the same allocator choices.
fn sorted<T: Ord>(it: impl Iterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = it.collect();
    v.sort();
    v.dedup();
    v
}

/// Recomputes the IPv4 header checksum of an Ethernet frame (a mutation
/// that should only break what it means to).
fn fix_ip_csum(f: &mut [u8]) {
    let ipo = ETH_HLEN;
    let hlen = (usize::from(f[ipo] & 0x0f) * 4).max(20);
    let end = (ipo + hlen).min(f.len());
    f[ipo + 10] = 0;
    f[ipo + 11] = 0;
    let c = crate::model::csum::full(&f[ipo..end]);
    f[ipo + 10..ipo + 12].copy_from_slice(&c.to_be_bytes());
}
