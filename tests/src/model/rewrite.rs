//! Applying a translation to a copy of the frame: field writes, then every
//! checksum that covers a written field, recomputed from the covered
//! regions before and after (see [`super::csum`]).

use super::csum;
use super::parse::Ip;

/// What a checksum covers.
#[derive(Clone, Copy, Debug)]
pub enum Cover {
    /// An IPv4 header.
    IpHeader(Ip),
    /// A TCP or UDP segment of datagram `ip`: pseudo-header (addresses as
    /// they are in `ip`'s header at the time) and the bytes present.
    Segment(Ip),
    /// An ICMP message of datagram `ip` (no pseudo-header).
    Icmp(Ip),
}

/// A checksum to update.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    pub at: usize,
    pub cover: Cover,
    /// UDP rules: 0 stays 0, a computed 0 becomes 0xffff.
    pub udp: bool,
}

impl Slot {
    pub fn ip_header(ip: &Ip) -> Slot {
        Slot {
            at: ip.off + 10,
            cover: Cover::IpHeader(*ip),
            udp: false,
        }
    }

    /// The TCP/UDP/ICMP checksum of datagram `ip` (transport header at
    /// `ip.l4()`).
    pub fn transport(ip: &Ip) -> Slot {
        let l4 = ip.l4();
        match ip.proto {
            super::parse::TCP => Slot {
                at: l4 + 16,
                cover: Cover::Segment(*ip),
                udp: false,
            },
            super::parse::UDP => Slot {
                at: l4 + 6,
                cover: Cover::Segment(*ip),
                udp: true,
            },
            _ => Slot {
                at: l4 + 2,
                cover: Cover::Icmp(*ip),
                udp: false,
            },
        }
    }

    fn covered(&self, f: &[u8]) -> u16 {
        let zeroed = |start: usize, end: usize| {
            let mut v = f[start..end].to_vec();
            v[self.at - start] = 0;
            v[self.at - start + 1] = 0;
            v
        };
        match self.cover {
            Cover::IpHeader(ip) => csum::sum(&zeroed(ip.off, ip.off + ip.hlen)),
            Cover::Segment(ip) => {
                let seg = zeroed(ip.l4(), ip.end);
                let a = |at: usize| [f[at], f[at + 1], f[at + 2], f[at + 3]];
                csum::pseudo_sum(a(ip.off + 12), a(ip.off + 16), ip.proto, &seg)
            }
            Cover::Icmp(ip) => csum::sum(&zeroed(ip.l4(), ip.end)),
        }
    }
}

/// A translation of one frame: byte writes and the checksums to fix,
/// innermost first (an outer checksum covers the inner ones).
#[derive(Default)]
pub struct Edit {
    writes: Vec<(usize, Vec<u8>)>,
    slots: Vec<Slot>,
}

impl Edit {
    pub fn addr(&mut self, at: usize, v: u32) -> &mut Self {
        self.writes.push((at, v.to_ne_bytes().to_vec()));
        self
    }

    /// A 16-bit field in network order as the maps hold it.
    pub fn port(&mut self, at: usize, v_be: u16) -> &mut Self {
        self.writes.push((at, v_be.to_ne_bytes().to_vec()));
        self
    }

    /// A single byte (the TTL).
    pub fn byte(&mut self, at: usize, v: u8) -> &mut Self {
        self.writes.push((at, vec![v]));
        self
    }

    pub fn fix(&mut self, slot: Slot) -> &mut Self {
        self.slots.push(slot);
        self
    }

    /// Applies the edit to `f`.
    pub fn apply(&self, f: &mut [u8]) {
        let before: Vec<u16> = self.slots.iter().map(|s| s.covered(f)).collect();
        let old: Vec<u16> = self
            .slots
            .iter()
            .map(|s| u16::from_be_bytes([f[s.at], f[s.at + 1]]))
            .collect();
        for (at, bytes) in &self.writes {
            f[*at..*at + bytes.len()].copy_from_slice(bytes);
        }
        for (i, s) in self.slots.iter().enumerate() {
            let after = s.covered(f);
            let new = match s.cover {
                _ if s.udp => csum::adjust_udp(old[i], before[i], after),
                // A computed 0 goes out as 0xffff: the only value that
                // verifies over an all-zero ICMP message.
                Cover::Icmp(_) => match csum::adjust(old[i], before[i], after) {
                    0 => 0xffff,
                    c => c,
                },
                _ => csum::adjust(old[i], before[i], after),
            };
            f[s.at..s.at + 2].copy_from_slice(&new.to_be_bytes());
        }
    }
}
