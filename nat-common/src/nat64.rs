//! Stateful NAT64 (RFC 6146) as xnat builds it: each IPv6 inside host gets
//! an IPv4 *stand-in* address from 0.0.0.0/8, the packet is translated
//! statelessly (RFC 7915) between the host's IPv6 address and its stand-in,
//! and the NAT44 tables, allocation, filtering, sessions and timeouts do
//! the rest exactly as for an IPv4 host. So a NAT64 binding is a NAT44
//! binding whose inside address is a stand-in; `NAT64_IDS` names the IPv6
//! host behind it.
//!
//! 0.0.0.0/8 ("this network", RFC 1122) is never a valid source or
//! destination on the wire, and the kernel drops it as a martian: a
//! stand-in can never be confused with a real inside host, and a packet
//! that kept one by mistake would die in the stack instead of leaking.
//!
//! The IPv4-embedded IPv6 addresses of RFC 6052 are described by
//! [`Nat64Config`]: the prefix, and where the four IPv4 bytes sit (they
//! skip byte 8, the "u" octet, for prefixes shorter than /96).

/// The NAT64 configuration (single-entry array); `enabled == 0`: off.
pub const MAP_NAT64: &str = "NAT64";
/// IPv6 inside host (address, network order) -> its stand-in (`u32`).
pub const MAP_NAT64_HOSTS: &str = "NAT64_HOSTS";
/// Stand-in -> [`Nat64Host`] (the IPv6 host it stands for). The data plane
/// reserves a stand-in here first (`BPF_NOEXIST`), then names it in
/// `NAT64_HOSTS`; the agent frees stand-ins no mapping uses any more.
pub const MAP_NAT64_IDS: &str = "NAT64_IDS";
/// Program array (TC): the NAT64 programs the TC programs tail-call.
pub const MAP_NAT64_TC_PROGS: &str = "NAT64_TC_PROGS";
/// Program array (XDP): the same for the XDP ingress program.
pub const MAP_NAT64_XDP_PROGS: &str = "NAT64_XDP_PROGS";
/// Per-CPU scratch (one [`NAT64_SPLIT_VALUE`]-byte value): the payload of
/// an IPv4 packet being split into IPv6 fragments, past its first piece.
pub const MAP_NAT64_SPLIT: &str = "NAT64_SPLIT";
/// The most payload past the first piece a packet split into IPv6
/// fragments may have (longer ones are dropped as too big): a 9000-byte
/// jumbo frame's fits with the smallest inside MTU (1280).
pub const NAT64_SPLIT_MAX: u32 = 8192;
/// Size of the scratch value: twice [`NAT64_SPLIT_MAX`], so that a piece
/// read at any offset below that bound with any length up to it stays
/// inside the value (what the verifier can check).
pub const NAT64_SPLIT_VALUE: usize = 2 * NAT64_SPLIT_MAX as usize;
/// The smallest inside MTU NAT64 splits packets for (IPv6's minimum);
/// then at most 1 + 8192 / 1232 rounded up = 8 pieces.
pub const NAT64_SPLIT_MIN_MTU: u32 = 1280;

/// Index in `NAT64_TC_PROGS` of the IPv6 -> IPv4 program (inside ingress),
/// and in `NAT64_XDP_PROGS` of its XDP twin for established flows.
pub const NAT64_SLOT_OUT: u32 = 0;
/// Index in both program arrays of the IPv4 -> IPv6 program (external
/// ingress, after NAT44 turned the destination into a stand-in).
pub const NAT64_SLOT_IN: u32 = 1;
/// Index in `NAT64_TC_PROGS` of the NAT44 step of IPv6 -> IPv4 (the
/// stand-in's packet through static NAT or NAPT, then forwarded): a
/// program of its own, so that the verifier walks NAT44 once, not once
/// per shape of IPv6 packet.
pub const NAT64_SLOT_OUT_NAT44: u32 = 2;
/// Index in `NAT64_TC_PROGS` of the IPv6 -> IPv4 translation of ICMPv6
/// errors (tail-called by the IPv6 -> IPv4 program: its own stack frame).
pub const NAT64_SLOT_OUT_ERROR: u32 = 3;
/// Index in `NAT64_TC_PROGS` of the inbound step of hairpinning (an IPv6
/// host to one of our public endpoints, after the NAT44 step): its own
/// program, for the verifier's budget.
pub const NAT64_SLOT_HAIRPIN: u32 = 4;
/// Slots of the program arrays.
pub const NAT64_SLOTS: u32 = 8;

/// XDP metadata (4 bytes before the frame, `bpf_xdp_adjust_meta`) by which
/// the external interface's XDP program hands a packet it cannot finish to
/// the TC program behind it (`xnat_ingress_handoff_tc`): an IPv4 packet,
/// NAT44 already done, that NAT64 must split into IPv6 fragments (XDP
/// sends one packet at most). Only an XDP program can set it.
pub const XDP_HANDOFF_SPLIT: u32 = 0x786e_7370;

/// IPv6 inside hosts with a stand-in at once.
pub const NAT64_HOSTS_MAX: u32 = 65_536;
/// Probes for a free stand-in before a new host is refused.
pub const STAND_IN_PROBES: u32 = 8;
/// Stand-ins are 0.0.0.1 .. 0.255.255.254.
pub const STAND_IN_SPACE: u32 = 0x00ff_fffe;

/// The well-known prefix, 64:ff9b::/96 (RFC 6052 section 2.1).
pub const WELL_KNOWN_PREFIX: [u8; 16] = [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// The prefix lengths RFC 6052 allows.
pub const PREFIX_LENGTHS: [u8; 6] = [32, 40, 48, 56, 64, 96];

/// IPv6 minimum MTU (RFC 8200): a Packet Too Big never says less.
pub const IPV6_MIN_MTU: u32 = 1280;

/// `flags` of [`Nat64Config`]: the prefix is the well-known one, so
/// packets whose IPv4 address is not global are dropped (RFC 6052 3.1).
pub const NAT64_WKP: u8 = 1;

/// How IPv4 addresses are embedded in IPv6 ones; written by user space.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Nat64Config {
    /// The prefix (network order), bits past its length zero.
    pub prefix: [u8; 16],
    /// Byte positions of the IPv4 address's four bytes in an IPv6 address.
    pub v4_pos: [u8; 4],
    /// Prefix length in bits (one of [`PREFIX_LENGTHS`]).
    pub prefix_len: u8,
    /// 1: NAT64 on.
    pub enabled: u8,
    /// [`NAT64_WKP`].
    pub flags: u8,
    /// The length of the prefix an IPv6 host's port cap counts over
    /// (`--nat64-host-prefix`): the hosts of one /`host_prefix` share one
    /// `HOST_PORTS` counter, keyed by [`cap_key_addr`]'s stand-in. 0 or
    /// 128 (and anything above): each address counts alone.
    pub host_prefix: u8,
    /// Prefix bytes to compare (prefix_len / 8).
    pub prefix_bytes: u32,
    /// The smallest MTU of the inside interfaces (0: unknown): an IPv4
    /// packet that would not fit once translated is answered (DF set,
    /// Fragmentation Needed) or split into IPv6 fragments (DF clear, TC
    /// ingress; dropped on XDP ingress).
    pub inside_mtu: u32,
}

impl Nat64Config {
    /// The configuration for `prefix`/`len`, or why it is not an RFC 6052
    /// prefix.
    pub fn new(prefix: [u8; 16], len: u8) -> Result<Self, &'static str> {
        let v4_pos = v4_positions(len)
            .ok_or("the prefix length must be 32, 40, 48, 56, 64 or 96 (RFC 6052)")?;
        let bytes = (len / 8) as usize;
        if prefix[bytes..].iter().any(|b| *b != 0) {
            return Err("the prefix has bits set past its length");
        }
        if len == 96 && prefix[8] != 0 {
            return Err("bits 64 to 71 of the prefix (the \"u\" octet) must be zero (RFC 6052)");
        }
        let flags = if prefix == WELL_KNOWN_PREFIX && len == 96 {
            NAT64_WKP
        } else {
            0
        };
        Ok(Nat64Config {
            prefix,
            v4_pos,
            prefix_len: len,
            enabled: 1,
            flags,
            host_prefix: 128,
            prefix_bytes: bytes as u32,
            inside_mtu: 0,
        })
    }

    /// The IPv4-embedded IPv6 address of `v4` (RFC 6052 section 2.2).
    #[inline(always)]
    pub fn embed(&self, v4: [u8; 4]) -> [u8; 16] {
        let mut out = self.prefix;
        let mut i = 0;
        while i < 4 {
            out[(self.v4_pos[i] & 15) as usize] = v4[i];
            i += 1;
        }
        out
    }

    /// The IPv4 address embedded in `v6`, if `v6` lies in the prefix.
    /// (Always inlined: as a BPF subprogram its `None` would return
    /// undefined bytes, which the verifier refuses to read.)
    #[inline(always)]
    pub fn extract(&self, v6: &[u8; 16]) -> Option<[u8; 4]> {
        let mut i = 0;
        while i < 16 {
            if (i as u32) < self.prefix_bytes && v6[i] != self.prefix[i] {
                return None;
            }
            i += 1;
        }
        let mut v4 = [0u8; 4];
        let mut j = 0;
        while j < 4 {
            v4[j] = v6[(self.v4_pos[j] & 15) as usize];
            j += 1;
        }
        Some(v4)
    }
}

/// Where the four bytes of the IPv4 address go for a prefix of `len` bits:
/// right after the prefix, skipping byte 8 (bits 64 to 71).
pub const fn v4_positions(len: u8) -> Option<[u8; 4]> {
    Some(match len {
        32 => [4, 5, 6, 7],
        40 => [5, 6, 7, 9],
        48 => [6, 7, 9, 10],
        56 => [7, 9, 10, 11],
        64 => [9, 10, 11, 12],
        96 => [12, 13, 14, 15],
        _ => return None,
    })
}

/// Whether an IPv4 address is not global in the sense of RFC 6052 section
/// 3.1: the well-known prefix must not carry it (this network, RFC 1918,
/// shared address space, loopback, link local, multicast and above).
#[inline(always)]
pub const fn is_non_global(v4: [u8; 4]) -> bool {
    let [a, b, ..] = v4;
    a == 0
        || a == 10
        || a == 127
        || (a == 100 && b & 0xc0 == 64)
        || (a == 169 && b == 254)
        || (a == 172 && b & 0xf0 == 16)
        || (a == 192 && b == 168)
        || a >= 224
}

/// The host prefix length of the settings when none is given: a /64 is
/// what one subscriber's LAN gets (RFC 6177), and its hosts pick new
/// addresses in it at will (RFC 8981), so only a cap over the /64 holds.
pub const HOST_PREFIX_DEFAULT: u8 = 64;
/// The shortest host prefix the settings take: shorter than a /32 (an ISP's
/// allocation, RFC 6177) would make many subscribers one host.
pub const HOST_PREFIX_MIN: u8 = 32;

/// The address whose stand-in keys the port cap of the IPv6 host `addr`
/// when hosts count per /`len`: `addr` with the bits past `len` zeroed
/// (`addr` itself for `len` 0 or >= 128).
#[inline(always)]
pub fn cap_key_addr(addr: &[u8; 16], len: u8) -> [u8; 16] {
    if len == 0 || len >= 128 {
        return *addr;
    }
    let mut out = *addr;
    let mut i = 0;
    while i < 16 {
        let bit = (i as u32) * 8;
        let keep = len as u32;
        if bit >= keep {
            out[i] = 0;
        } else if bit + 8 > keep {
            out[i] &= 0xffu8 << (bit + 8 - keep);
        }
        i += 1;
    }
    out
}

/// What `NAT64_IDS` holds for a stand-in.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Nat64Host {
    /// The IPv6 host's address (network order).
    pub addr: [u8; 16],
    /// When the data plane gave it the stand-in (the data plane's clock,
    /// ns): the agent leaves young stand-ins alone (the first mapping may
    /// be on its way).
    pub created: u64,
}

/// Whether `addr` (an IPv4 address as loaded from a packet, network byte
/// order in memory) is a stand-in: 0.0.0.0/8.
#[inline(always)]
pub const fn is_stand_in(addr: u32) -> bool {
    addr.to_ne_bytes()[0] == 0
}

/// The stand-in numbered `n` (1 ..= [`STAND_IN_SPACE`]), as loaded from a
/// packet.
#[inline(always)]
pub const fn stand_in(n: u32) -> u32 {
    let [_, b, c, d] = n.to_be_bytes();
    u32::from_ne_bytes([0, b, c, d])
}

/// The `i`-th stand-in tried for the IPv6 address `addr` (its four words
/// as loaded): a hash of the address, then steps of a second hash.
#[inline(always)]
pub const fn stand_in_probe(addr: &[u32; 4], i: u32) -> u32 {
    let mut h: u32 = 0x9e37_79b9;
    let mut k = 0;
    while k < 4 {
        h = (h ^ addr[k]).wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        k += 1;
    }
    let step = (h >> 8) | 1;
    stand_in(h.wrapping_add(i.wrapping_mul(step)) % STAND_IN_SPACE + 1)
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for Nat64Config {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for Nat64Host {}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> [u8; 16] {
        // A tiny parser for the test vectors (full and "::" forms).
        let (head, tail) = s.split_once("::").unwrap_or((s, ""));
        let words = |p: &str| -> Vec<u16> {
            p.split(':')
                .filter(|w| !w.is_empty())
                .map(|w| u16::from_str_radix(w, 16).unwrap())
                .collect()
        };
        let (h, t) = (words(head), words(tail));
        let mut all = h.clone();
        all.resize(8 - t.len(), 0);
        all.extend(t);
        let mut out = [0u8; 16];
        for (i, w) in all.iter().enumerate() {
            out[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    extern crate std;
    use std::vec::Vec;

    /// The examples of RFC 6052 section 2.4 (192.0.2.33 under each length).
    #[test]
    fn rfc_6052_examples() {
        let cases = [
            ("2001:db8::", 32, "2001:db8:c000:221::"),
            ("2001:db8:100::", 40, "2001:db8:1c0:2:21::"),
            ("2001:db8:122::", 48, "2001:db8:122:c000:2:2100::"),
            ("2001:db8:122:300::", 56, "2001:db8:122:3c0:0:221::"),
            ("2001:db8:122:344::", 64, "2001:db8:122:344:c0:2:2100:0"),
            ("2001:db8:122:344::", 96, "2001:db8:122:344::c000:221"),
        ];
        for (prefix, len, want) in cases {
            let cfg = Nat64Config::new(v6(prefix), len).unwrap();
            let got = cfg.embed([192, 0, 2, 33]);
            assert_eq!(got, v6(want), "/{len}");
            assert_eq!(cfg.extract(&got), Some([192, 0, 2, 33]), "/{len}");
        }
    }

    #[test]
    fn refuses_bad_prefixes() {
        assert!(Nat64Config::new(v6("64:ff9b::"), 80).is_err());
        assert!(Nat64Config::new(v6("64:ff9b::1"), 96).is_err());
        assert!(Nat64Config::new(v6("2001:db8:0:0:100::"), 96).is_err());
        let wkp = Nat64Config::new(WELL_KNOWN_PREFIX, 96).unwrap();
        assert_eq!(wkp.flags, NAT64_WKP);
        assert_eq!(wkp.extract(&v6("64:ff9c::1")), None);
    }

    #[test]
    fn stand_ins_are_in_this_network() {
        for i in 0..1000u32 {
            let s = stand_in_probe(&[i, i * 7, 3, 0xffff_ffff], i % 8);
            assert!(is_stand_in(s));
            assert_ne!(s, stand_in(0));
            assert_ne!(s.to_ne_bytes(), [0, 255, 255, 255]);
        }
        assert!(!is_stand_in(u32::from_ne_bytes([10, 0, 0, 1])));
    }

    #[test]
    fn cap_keys_zero_the_bits_past_the_length() {
        let a = v6("2001:db8:1:2:aaaa:bbbb:cccc:dddd");
        assert_eq!(cap_key_addr(&a, 64), v6("2001:db8:1:2::"));
        assert_eq!(cap_key_addr(&a, 56), v6("2001:db8:1::"));
        assert_eq!(cap_key_addr(&a, 60), v6("2001:db8:1::"));
        assert_eq!(
            cap_key_addr(&v6("2001:db8:1:ff::"), 60),
            v6("2001:db8:1:f0::")
        );
        assert_eq!(
            cap_key_addr(&a, 127),
            v6("2001:db8:1:2:aaaa:bbbb:cccc:dddc")
        );
        assert_eq!(cap_key_addr(&a, 128), a);
        assert_eq!(cap_key_addr(&a, 0), a);
        assert_eq!(cap_key_addr(&a, 32), v6("2001:db8::"));
    }

    #[test]
    fn non_global() {
        assert!(is_non_global([10, 1, 2, 3]));
        assert!(is_non_global([172, 31, 0, 1]));
        assert!(is_non_global([100, 64, 0, 1]));
        assert!(!is_non_global([100, 128, 0, 1]));
        assert!(!is_non_global([192, 0, 2, 1]));
        assert!(!is_non_global([8, 8, 8, 8]));
    }
}
