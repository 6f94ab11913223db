//! Stateful NAT64 (RFC 6146, with RFC 7915 header translation and RFC 6052
//! addresses), as xnat builds it: each IPv6 inside host gets an IPv4
//! *stand-in* from 0.0.0.0/8, the packet is translated statelessly between
//! the host's IPv6 address and its stand-in, and the NAT44 tables do the
//! rest exactly as for an IPv4 inside host (a NAT64 binding is a NAPT
//! binding whose inside address is a stand-in; static 1:1 NAT applies to a
//! stand-in too).
//!
//! * [`outbound`]: an IPv6 frame on an inside interface (`xnat_inside_tc`
//!   hands it to NAT64), to the prefix: IPv4 from the host's stand-in,
//!   then NAT44 outbound, then forwarded (FIB + redirect);
//! * [`inbound`]: an IPv4 packet NAT44 translated to a stand-in on the
//!   external ingress hooks: IPv6 for the host, to the stack.
//!
//! Written from the specification (RFC 7915, RFC 6052, RFC 6146 and the
//! NAT64 rules xnat's README gives); checksums are computed from the
//! covered bytes (see [`super::csum`]), addresses embedded bit by bit
//! from RFC 6052's figure, not with nat-common's byte positions.

pub mod inbound;
pub mod outbound;
#[cfg(test)]
mod tests;

use nat_common::nat64::{Nat64Config, WELL_KNOWN_PREFIX};

use super::csum;
use super::parse::{ETH_HLEN, ICMP};

/// The fixed IPv6 header.
pub const IPV6_HLEN: usize = 40;
pub const ICMPV6: u8 = 58;
/// The IPv6 fragment header's next-header value.
pub const FRAGMENT: u8 = 44;
/// Offset of what follows an outer IPv6 header.
pub const L4_6: usize = ETH_HLEN + IPV6_HLEN;
/// Offset of what follows an outer IPv4 header without options.
pub const L4_4: usize = ETH_HLEN + 20;
/// An IPv4 packet longer than this gets DF (RFC 7915 section 5.1: beyond
/// it an IPv6 host expects a Packet Too Big, not fragmentation) and
/// identification 0.
pub const DF_ABOVE: usize = 1260;
/// IPv6's minimum MTU (RFC 8200): a Packet Too Big never says less.
pub const IPV6_MIN_MTU: u32 = 1280;

/// Whether NAT64 is on.
pub fn on(cfg: &Nat64Config) -> bool {
    cfg.enabled != 0
}

/// Whether the prefix is the well-known 64:ff9b::/96 (RFC 6052 section
/// 2.1), under which non-global IPv4 addresses are refused (section 3.1).
pub fn well_known(cfg: &Nat64Config) -> bool {
    cfg.prefix == WELL_KNOWN_PREFIX && cfg.prefix_len == 96
}

/// Bit `i` (0: the most significant of byte 0) of `b`.
fn bit(b: &[u8], i: usize) -> bool {
    b[i / 8] & (0x80 >> (i % 8)) != 0
}

fn set_bit(b: &mut [u8], i: usize, v: bool) {
    if v {
        b[i / 8] |= 0x80 >> (i % 8);
    } else {
        b[i / 8] &= !(0x80 >> (i % 8));
    }
}

/// The bit positions of an IPv6 address that hold the IPv4 address's 32
/// bits for a prefix of `len` bits (RFC 6052 section 2.2, figure 1): right
/// after the prefix, skipping bits 64 to 71 (the "u" octet).
fn v4_bits(len: usize) -> impl Iterator<Item = usize> {
    (len..128).filter(|b| !(64..72).contains(b)).take(32)
}

/// The IPv4-embedded IPv6 address of `v4` under the prefix (suffix and
/// "u" octet zero).
pub fn embed(cfg: &Nat64Config, v4: [u8; 4]) -> [u8; 16] {
    let len = usize::from(cfg.prefix_len);
    let mut out = [0u8; 16];
    for i in 0..len {
        set_bit(&mut out, i, bit(&cfg.prefix, i));
    }
    for (i, at) in v4_bits(len).enumerate() {
        set_bit(&mut out, at, bit(&v4, i));
    }
    out
}

/// The IPv4 address embedded in `v6`, if `v6` lies in the prefix (its
/// first `len` bits are the prefix's; the rest is not looked at).
pub fn extract(cfg: &Nat64Config, v6: &[u8; 16]) -> Option<[u8; 4]> {
    let len = usize::from(cfg.prefix_len);
    if (0..len).any(|i| bit(v6, i) != bit(&cfg.prefix, i)) {
        return None;
    }
    let mut v4 = [0u8; 4];
    for (i, at) in v4_bits(len).enumerate() {
        set_bit(&mut v4, i, bit(v6, at));
    }
    Some(v4)
}

/// Whether an IPv4 address (as the maps hold it) is a stand-in: 0.0.0.0/8.
pub fn is_stand_in(addr: u32) -> bool {
    addr.to_ne_bytes()[0] == 0
}

/// The host prefix (README "NAT64", port caps): with `--max-ports-per-host`
/// the IPv6 hosts of one /LEN share one cap; `None` when each address
/// counts alone (LEN 128, or 0 as an older agent leaves the field), or
/// NAT64 is off.
pub fn host_prefix(cfg: &Nat64Config) -> Option<u8> {
    (on(cfg) && cfg.host_prefix != 0 && cfg.host_prefix < 128).then_some(cfg.host_prefix)
}

/// The /`len` prefix of `addr`, as an address (the bits past `len` zero):
/// the address whose stand-in counts the prefix's ports.
pub fn prefix_of(addr: &[u8; 16], len: u8) -> [u8; 16] {
    let keep = u128::MAX << (128 - u32::from(len.min(128)));
    (u128::from_be_bytes(*addr) & keep).to_be_bytes()
}

/// The `HOST_PORTS` key an inside address's mappings count on, as the
/// agent finds it: a NAT64 host's prefix's stand-in when hosts count per
/// prefix and the prefix has one; the address itself otherwise.
pub fn counted_on(st: &crate::model::state::State, addr: u32) -> u32 {
    let Some(len) = host_prefix(&st.nat64).filter(|_| is_stand_in(addr)) else {
        return addr;
    };
    st.nat64_ids
        .get(&addr)
        .and_then(|h| st.nat64_hosts.get(&prefix_of(&h.addr, len)))
        .copied()
        .unwrap_or(addr)
}

/// The four 32-bit words of an IPv6 address as the data plane loads them
/// (native-endian words of the network-order bytes), which the stand-in
/// probes hash.
pub fn words(a: &[u8; 16]) -> [u32; 4] {
    std::array::from_fn(|i| {
        u32::from_ne_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]])
    })
}

/// An outer IPv6 header the translator reads: the whole fixed header,
/// version 6, a payload length that is neither 0 (a jumbogram, which IPv4
/// has no twin for) nor beyond the frame.
#[derive(Clone, Copy, Debug)]
pub struct Ip6 {
    pub tclass: u8,
    pub payload_len: usize,
    pub next: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// End of the datagram in the frame (bytes after it are padding).
    pub end: usize,
}

impl Ip6 {
    /// Whether `n` bytes at `at` lie in the datagram.
    pub fn has(&self, at: usize, n: usize) -> bool {
        at + n <= self.end
    }
}

/// The fields of an IPv6 header at `off` (the caller checked 40 bytes are
/// there).
pub fn header6_at(f: &[u8], off: usize) -> (u8, u8, usize, u8, u8, [u8; 16], [u8; 16]) {
    let h = &f[off..off + IPV6_HLEN];
    let version = h[0] >> 4;
    let tclass = (h[0] << 4) | (h[1] >> 4);
    let payload_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let src: [u8; 16] = h[8..24].try_into().expect("16 bytes");
    let dst: [u8; 16] = h[24..40].try_into().expect("16 bytes");
    (version, tclass, payload_len, h[6], h[7], src, dst)
}

/// The frame's outer IPv6 header, if the translator can read it.
pub fn outer6(frame: &[u8]) -> Option<Ip6> {
    if frame.len() < L4_6 || super::parse::be16(frame, 12) != super::parse::ETH_P_IPV6 {
        return None;
    }
    let (version, tclass, payload_len, next, hop_limit, src, dst) = header6_at(frame, ETH_HLEN);
    let end = L4_6 + payload_len;
    if version != 6 || payload_len == 0 || end > frame.len() {
        return None;
    }
    Some(Ip6 {
        tclass,
        payload_len,
        next,
        hop_limit,
        src,
        dst,
        end,
    })
}

/// An IPv6 header: version 6, traffic class `tclass`, flow label 0.
pub fn header6(
    tclass: u8,
    payload_len: usize,
    next: u8,
    hop_limit: u8,
    src: &[u8; 16],
    dst: &[u8; 16],
) -> [u8; 40] {
    let mut h = [0u8; 40];
    h[0] = 0x60 | (tclass >> 4);
    h[1] = tclass << 4;
    h[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    h[6] = next;
    h[7] = hop_limit;
    h[8..24].copy_from_slice(src);
    h[24..40].copy_from_slice(dst);
    h
}

/// An IPv4 header without options, its checksum computed: DF set and
/// identification 0 when longer than [`DF_ABOVE`], else DF clear and
/// identification `id` (bytes as on the wire).
#[allow(clippy::too_many_arguments)]
pub fn header4(
    tos: u8,
    tot_len: usize,
    id: [u8; 2],
    ttl: u8,
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[1] = tos;
    h[2..4].copy_from_slice(&(tot_len as u16).to_be_bytes());
    if tot_len > DF_ABOVE {
        h[6] = 0x40;
    } else {
        h[4..6].copy_from_slice(&id);
    }
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    let c = csum::full(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// [`header4`] for a fragment: identification `id` (bytes as on the wire)
/// and the flags-and-offset field `field` (DF clear).
#[allow(clippy::too_many_arguments)]
pub fn header4_fragment(
    tos: u8,
    tot_len: usize,
    id: [u8; 2],
    field: u16,
    ttl: u8,
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
) -> [u8; 20] {
    let mut h = header4(tos, tot_len, [0, 0], ttl, proto, src, dst);
    h[4..6].copy_from_slice(&id);
    h[6..8].copy_from_slice(&field.to_be_bytes());
    h[10..12].copy_from_slice(&[0, 0]);
    let c = csum::full(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// ICMP becomes ICMPv6 as a next header, and back; TCP and UDP stay.
pub fn proto_6_to_4(next: u8) -> u8 {
    if next == ICMPV6 { ICMP } else { next }
}

pub fn proto_4_to_6(proto: u8) -> u8 {
    if proto == ICMP { ICMPV6 } else { proto }
}

/// The one's complement sum (unfolded) of the IPv6 pseudo-header (RFC
/// 8200 section 8.1).
pub fn pseudo6(src: &[u8; 16], dst: &[u8; 16], len: usize, next: u8) -> u64 {
    let len = len as u64;
    u64::from(csum::sum(src))
        + u64::from(csum::sum(dst))
        + (len >> 16)
        + (len & 0xffff)
        + u64::from(next)
}

/// The same of the IPv4 pseudo-header (RFC 793, RFC 768).
pub fn pseudo4(src: [u8; 4], dst: [u8; 4], len: usize, proto: u8) -> u64 {
    u64::from(csum::sum(&src)) + u64::from(csum::sum(&dst)) + len as u64 + u64::from(proto)
}

/// The sum of `f[start..end]` with the 16-bit field at `field` counted as
/// zero (a checksum's own field).
pub fn sum_without(f: &[u8], start: usize, end: usize, field: usize) -> u64 {
    let mut v = f[start..end].to_vec();
    for at in [field, field + 1] {
        if (start..end).contains(&at) {
            v[at - start] = 0;
        }
    }
    u64::from(csum::sum(&v))
}

/// A checksum whose covered bytes' sum went from `before` to `after`
/// (unfolded sums): it keeps its error (see [`super::csum`]).
pub fn moved(check: u16, before: u64, after: u64) -> u16 {
    csum::adjust(check, csum::fold(before), csum::fold(after))
}

/// The same for a UDP checksum: 0 ("none") stays 0, a computed 0 is sent
/// as 0xffff.
pub fn moved_udp(check: u16, before: u64, after: u64) -> u16 {
    csum::adjust_udp(check, csum::fold(before), csum::fold(after))
}

pub fn get16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

pub fn put16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod unit {
    use super::*;

    /// RFC 6052 section 2.4's examples (192.0.2.33 under each length).
    #[test]
    fn rfc_6052_examples() {
        let v6 = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap().octets();
        let cases = [
            ("2001:db8::", 32, "2001:db8:c000:221::"),
            ("2001:db8:100::", 40, "2001:db8:1c0:2:21::"),
            ("2001:db8:122::", 48, "2001:db8:122:c000:2:2100::"),
            ("2001:db8:122:300::", 56, "2001:db8:122:3c0:0:221::"),
            ("2001:db8:122:344::", 64, "2001:db8:122:344:c0:2:2100:0"),
            ("2001:db8:122:344::", 96, "2001:db8:122:344::c000:221"),
            ("64:ff9b::", 96, "64:ff9b::c000:221"),
        ];
        for (prefix, len, want) in cases {
            let cfg = Nat64Config::new(v6(prefix), len).unwrap();
            assert_eq!(embed(&cfg, [192, 0, 2, 33]), v6(want), "/{len}");
            assert_eq!(extract(&cfg, &v6(want)), Some([192, 0, 2, 33]), "/{len}");
            // The suffix and the "u" octet are not looked at.
            let mut other = v6(want);
            other[15] ^= if len == 96 { 0 } else { 0xff };
            other[8] ^= if len == 96 { 0 } else { 0xff };
            assert_eq!(extract(&cfg, &other), Some([192, 0, 2, 33]), "/{len}");
            let mut outside = v6(want);
            outside[usize::from(len) / 8 - 1] ^= 1;
            assert_eq!(extract(&cfg, &outside), None, "/{len}");
        }
        let wkp = Nat64Config::new(WELL_KNOWN_PREFIX, 96).unwrap();
        assert!(well_known(&wkp));
        assert!(!well_known(&Nat64Config::new(v6("64:ff9b::"), 64).unwrap()));
    }

    #[test]
    fn an_ipv4_header_for_a_long_packet_has_df_and_no_id() {
        let short = header4(0, 1260, [1, 2], 64, 6, [0, 1, 2, 3], [8, 8, 8, 8]);
        assert_eq!((short[4], short[5], short[6]), (1, 2, 0));
        let long = header4(0, 1261, [1, 2], 64, 6, [0, 1, 2, 3], [8, 8, 8, 8]);
        assert_eq!((long[4], long[5], long[6]), (0, 0, 0x40));
        assert_eq!(csum::sum(&long), 0xffff);
    }
}
