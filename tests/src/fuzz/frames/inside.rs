//! Frames arriving on an inside interface, for `xnat_inside_tc` and
//! `xnat_inside_xdp`: hairpinned packets to live mappings, port forwards
//! and static public addresses (and to public endpoints nobody holds),
//! ICMP errors quoting a datagram from one of them, packets of
//! established flows (the fast path's) and of new ones, later fragments of
//! hairpinned datagrams; TTL 0, 1 and 2 more often than elsewhere; then
//! the same damage as every other frame.

use std::net::Ipv4Addr;

use rand::Rng;

use super::{Case, Generator, pick, sorted};
use crate::bpf::Hook;
use crate::frame::{L4, Packet, arp_request, ipv6_udp};
use crate::fuzz::world::{INSIDE, POOL, STATIC};
use crate::model::State;
use crate::napt_maps::ip;

/// Share of the frames generated for the inside programs.
pub(super) const SHARE: f64 = 0.3;

impl Generator {
    /// The next inside-interface frame for `st`.
    pub(super) fn next_inside(&mut self, st: &State) -> Case {
        let mut what = Vec::new();
        let hook = if self.rng.random_bool(0.7) {
            Hook::InsideTc
        } else {
            Hook::InsideXdp
        };
        let proto = pick(&mut self.rng, &[6u8, 6, 17, 17, 1, 1, 47]);
        let kind = self.rng.random_range(0..100);
        if kind < 3 {
            let frame = if self.rng.random_bool(0.5) {
                arp_request(INSIDE[0], Ipv4Addr::new(10, 0, 0, 254))
            } else {
                ipv6_udp(b"not ipv4")
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
        let mut p = match kind {
            3..=8 => match self.hairpinned_later_fragment(st, proto) {
                Some(p) => {
                    what.push("later fragment of a hairpinned datagram".into());
                    p
                }
                None => self.hairpinned(st, proto, &mut what),
            },
            9..=20 if proto != 47 => self.error_from_inside(st, &mut what),
            21..=55 => self.hairpinned(st, proto, &mut what),
            56..=84 => self.established(st, proto, &mut what),
            _ => {
                let inside = self.inside_endpoint(st, proto);
                let remote = self.remote_endpoint(st, proto);
                what.push("to a remote endpoint".into());
                self.flow_packet(inside, remote, proto, 8)
            }
        };
        // (No error is built for protocol 47: an ICMP message here is the
        // echo `flow_packet` stands in with.)
        if proto == 47 && !matches!(p.l4, L4::Raw { .. }) {
            let b = self.payload();
            p.l4 = L4::Raw {
                proto: 47,
                bytes: b,
            };
        }
        if self.rng.random_bool(0.08) {
            p.ip.options = vec![1, 1, 1, 0];
            what.push("4 bytes of IPv4 options".into());
        }
        if self.rng.random_bool(0.1) {
            p.ip.ttl = self.rng.random_range(0..3);
            what.push(format!("TTL {}", p.ip.ttl));
        }
        if p.ip.frag_offset == 0 && self.rng.random_bool(0.1) {
            p = self.fragment(st, p, true, &mut what);
        }
        self.case(hook, p, what)
    }

    /// From an inside endpoint to a public one of ours (often a live
    /// mapping's or a forward's, now and then a static public address or
    /// one nobody holds). ICMP: mostly echo replies, which are what
    /// reaches an ICMP mapping.
    fn hairpinned(&mut self, st: &State, proto: u8, what: &mut Vec<String>) -> Packet {
        // An echo reply's identifier is the public endpoint's "port".
        let echo = pick(&mut self.rng, &[0u8, 0, 0, 8]);
        let mut inside = self.inside_endpoint(st, proto);
        if proto == 1 && echo == 0 && self.rng.random_bool(0.7) {
            // Only a static host can be pinged through the hairpin (an
            // echo request to a pool address is the gateway's own), so
            // replies come from one.
            inside.0 = pick(&mut self.rng, &STATIC).0;
        }
        let public = self.public_endpoint(st, proto);
        what.push(format!("hairpin: to {}:{}", public.0, public.1));
        self.flow_packet(inside, public, proto, echo)
    }

    /// An inside host's ICMP error about a datagram it received: from a
    /// public endpoint (a hairpinned one: the error goes back through the
    /// hairpin to the sender), or from a remote one.
    fn error_from_inside(&mut self, st: &State, what: &mut Vec<String>) -> Packet {
        let qproto = pick(&mut self.rng, &[6u8, 17, 1]);
        let inside = self.inside_endpoint(st, qproto);
        let from = if self.rng.random_bool(0.7) {
            what.push("hairpin: ICMP error about a datagram from a public endpoint".into());
            self.public_endpoint(st, qproto)
        } else {
            self.remote_endpoint(st, qproto)
        };
        let q = self.quotable(from, inside, qproto, what);
        let to = if self.rng.random_bool(0.85) {
            from.0
        } else {
            pick(&mut self.rng, &POOL)
        };
        self.icmp_error(inside.0, to, &q, what)
    }

    /// A packet of a session the state holds (the mapping's first or one
    /// in SESSIONS), or of a static host: what the fast path forwards.
    fn established(&mut self, st: &State, proto: u8, what: &mut Vec<String>) -> Packet {
        let firsts = st
            .napt_out
            .iter()
            .filter(|(_, m)| m.first.live != 0)
            .map(|(k, m)| {
                (
                    k.proto,
                    k.addr,
                    k.port,
                    m.first.remote_addr,
                    m.first.remote_port,
                )
            });
        let flows = sorted(
            st.sessions
                .keys()
                .map(|k| {
                    (
                        k.proto,
                        k.inside_addr,
                        k.inside_port,
                        k.remote_addr,
                        k.remote_port,
                    )
                })
                .chain(firsts)
                .filter(|f| f.0 == proto),
        );
        let (src, dst) = if !flows.is_empty() && self.rng.random_bool(0.8) {
            let (_, a, p, ra, rp) = pick(&mut self.rng, &flows);
            what.push("a session's flow".into());
            ((ip(a), u16::from_be(p)), (ip(ra), u16::from_be(rp)))
        } else {
            what.push("a static host's flow".into());
            let host = pick(&mut self.rng, &STATIC).0;
            ((host, self.port()), self.remote_endpoint(st, proto))
        };
        self.flow_packet(src, dst, proto, 8)
    }

    /// A later fragment of a datagram whose first fragment went through
    /// the hairpin: its outbound translation remembered (a NAPT sender:
    /// same addresses), or its inbound one under a static sender's public
    /// address (sent from the static host's private one).
    fn hairpinned_later_fragment(&mut self, st: &State, proto: u8) -> Option<Packet> {
        let known = sorted(st.frags.keys().filter_map(|k| {
            let src = if k.inbound == 0 {
                k.src
            } else {
                *st.static_in.get(&k.src)?
            };
            st.in_pool(k.dst).then_some((src, k.dst, k.id, k.proto))
        }));
        if known.is_empty() {
            return None;
        }
        let (src, dst, id, fproto) = pick(&mut self.rng, &known);
        let whole = self.flow_packet((ip(src), 1), (ip(dst), 1), proto, 8);
        let mut f = whole.fragment(0, whole.l4_bytes().len(), false);
        f.ip.id = u16::from_be(id);
        f.l4 = L4::Raw {
            proto: fproto,
            bytes: f.l4_bytes(),
        };
        f.ip.frag_offset = self.rng.random_range(1..200);
        if self.rng.random_bool(0.5) {
            f.ip.flags |= crate::frame::IP_MF;
        }
        Some(f)
    }
}
