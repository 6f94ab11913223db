//! NAT64's settings (stateful NAT64, RFC 6146): the RFC 6052 prefix IPv6
//! inside hosts reach IPv4 hosts through (`--nat64 [PREFIX]`, the
//! `[nat64]` table's `prefix`), and the IPv6 hosts with a public IPv4
//! address of their own (static NAT64: `--nat64-map IPV6=IPV4`,
//! `[[nat64.map]]`). A prefix's own form is checked where it is parsed
//! ([`Nat64Prefix`]'s `FromStr`, for the flag and the file alike); here it
//! is checked against everything else, once, before anything is touched.
//! `reconcile` writes the result (the `NAT64` map and the static entries).
use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
};

use nat_common::{
    STATIC_MAX_ENTRIES,
    nat64::{HOST_PREFIX_DEFAULT, HOST_PREFIX_MIN, Nat64Config},
};

use crate::{
    settings::{
        Layer, Origin, SettingError, Sourced, err,
        napt::{Allocation, NaptSettings},
    },
    tables::{Tables, static_map::check_usable},
};

/// An RFC 6052 prefix, such as 64:ff9b::/96: only the lengths the RFC
/// allows, no bits past the length, and a zero "u" octet (bits 64 to 71).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nat64Prefix {
    addr: Ipv6Addr,
    len: u8,
}

impl Nat64Prefix {
    /// The well-known prefix, 64:ff9b::/96 (RFC 6052 section 2.1): what
    /// `--nat64` alone and an empty `[nat64]` table mean.
    pub const WELL_KNOWN: Nat64Prefix = Nat64Prefix {
        addr: Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),
        len: 96,
    };

    /// `addr/len`, if RFC 6052 allows it (`Nat64Config::new` says why
    /// not: the data plane's own check, so the two never disagree).
    pub fn new(addr: Ipv6Addr, len: u8) -> Result<Self, String> {
        Nat64Config::new(addr.octets(), len).map_err(|why| format!("{addr}/{len}: {why}"))?;
        Ok(Nat64Prefix { addr, len })
    }

    pub fn addr(self) -> Ipv6Addr {
        self.addr
    }

    pub fn prefix_len(self) -> u8 {
        self.len
    }

    /// What the `NAT64` map holds for it (NAT64 on).
    pub fn config(self) -> Nat64Config {
        Nat64Config::new(self.addr.octets(), self.len).expect("checked when it was made")
    }

    /// The prefix the `NAT64` map holds; `None` while NAT64 is off.
    pub fn of(c: &Nat64Config) -> Option<Self> {
        (c.enabled != 0).then(|| Nat64Prefix {
            addr: Ipv6Addr::from(c.prefix),
            len: c.prefix_len,
        })
    }

    /// Whether `a` lies in the prefix.
    pub fn contains(self, a: Ipv6Addr) -> bool {
        let mask = u128::MAX << (128 - u32::from(self.len));
        u128::from(a) & mask == u128::from(self.addr) & mask
    }
}

impl std::str::FromStr for Nat64Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("expected PREFIX/LEN (e.g. 64:ff9b::/96), got '{s}'"))?;
        let addr: Ipv6Addr = a
            .trim()
            .parse()
            .map_err(|_| format!("'{a}' is not an IPv6 address"))?;
        let len: u8 = l
            .trim()
            .parse()
            .map_err(|_| format!("'{l}' is not a prefix length"))?;
        Nat64Prefix::new(addr, len)
    }
}

impl std::fmt::Display for Nat64Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// NAT64 as an attachment should have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nat64Settings {
    pub prefix: Nat64Prefix,
    /// Static NAT64: IPv6 inside host -> its public IPv4 address.
    pub maps: Vec<(Ipv6Addr, Ipv4Addr)>,
    /// The hosts of one /`host_prefix` share one `--max-ports-per-host`
    /// cap (128: each address alone).
    pub host_prefix: u8,
}

/// The NAT64 settings of `layer` (`None`: NAT64 off), checked against
/// NAPT, the inside interfaces, binding sync, the static 1:1 maps and the
/// IPv6 addresses configured on the interfaces (`ifname` and the inside
/// ones, read here).
pub fn resolve(
    layer: &Layer,
    ifname: &str,
    napt: Option<&NaptSettings>,
    static_maps: &[Sourced<(Ipv4Addr, Ipv4Addr)>],
) -> Result<Option<Nat64Settings>, SettingError> {
    if !enabled(layer) {
        return no_nat64(layer);
    }
    let mut names = vec![ifname.to_string()];
    names.extend(layer.inside.iter().flatten().map(|i| i.value.clone()));
    check(layer, napt, static_maps, &ipv6_addrs(&names))
}

/// Whether `layer` switches NAT64 on: `--nat64`, a `[nat64]` table, or a
/// static NAT64 entry (which needs it, as `--pool` needs NAPT).
pub fn enabled(layer: &Layer) -> bool {
    layer.nat64.is_some() || layer.nat64_maps.is_some()
}

/// [`resolve`] with the interfaces' IPv6 addresses given (interface,
/// address).
pub fn check(
    layer: &Layer,
    napt: Option<&NaptSettings>,
    static_maps: &[Sourced<(Ipv4Addr, Ipv4Addr)>],
    iface_addrs: &[(String, Ipv6Addr)],
) -> Result<Option<Nat64Settings>, SettingError> {
    let maps = layer.nat64_maps.as_deref().unwrap_or_default();
    let (prefix, origin) = match (&layer.nat64, maps.first()) {
        (Some(p), _) => (p.value, &p.origin),
        (None, Some(m)) => (Nat64Prefix::WELL_KNOWN, &m.origin),
        (None, None) => return no_nat64(layer),
    };
    let Some(napt) = napt else {
        return err(
            origin,
            "NAT64 needs NAPT (--masquerade, --pool or a [napt] table): its bindings are NAPT \
             bindings on the pool",
        );
    };
    if layer.inside.as_ref().is_none_or(Vec::is_empty) {
        return err(
            origin,
            "NAT64 needs at least one inside interface (--inside): the IPv6 inside interfaces \
             take the NAT64 program",
        );
    }
    if napt.allocation != Allocation::Dynamic {
        let given = layer
            .allocation
            .as_ref()
            .map_or(Origin::flag("--allocation"), |a| a.origin.clone());
        let name = match napt.allocation {
            Allocation::Deterministic { .. } => "deterministic",
            _ => "block",
        };
        return err(
            origin,
            format!(
                "NAT64 supports dynamic allocation only (for now); the allocation is {name} \
                 ({given})"
            ),
        );
    }
    let sync = layer
        .sync_listen
        .as_ref()
        .map(|s| &s.origin)
        .or_else(|| layer.sync_peers.iter().flatten().next().map(|p| &p.origin));
    if let Some(sync) = sync {
        return err(
            origin,
            format!(
                "binding sync carries IPv4 inside hosts only, so NAT64 cannot be used with it \
                 ({sync})"
            ),
        );
    }
    if let Some((iface, a)) = iface_addrs.iter().find(|(_, a)| prefix.contains(*a)) {
        return err(
            origin,
            format!(
                "the NAT64 prefix {prefix} contains {a}, an address of {iface}: packets for it \
                 would be translated to IPv4 instead of delivered; choose another prefix"
            ),
        );
    }
    check_maps(prefix, maps, napt, static_maps)?;
    Ok(Some(Nat64Settings {
        prefix,
        maps: maps.iter().map(|m| m.value).collect(),
        host_prefix: host_prefix(layer)?,
    }))
}

/// NAT64 off: then a host prefix has nothing to apply to.
fn no_nat64(layer: &Layer) -> Result<Option<Nat64Settings>, SettingError> {
    match &layer.nat64_host_prefix {
        Some(l) => err(
            &l.origin,
            "the NAT64 host prefix applies to NAT64's IPv6 hosts: it needs NAT64 (--nat64 or a \
             [nat64] table)",
        ),
        None => Ok(None),
    }
}

/// The prefix length whose IPv6 hosts share a port cap: 32 to 128 (a
/// shorter one would make many subscribers one host), 64 if not given.
/// Without `--max-ports-per-host` it is kept, and changes nothing.
fn host_prefix(layer: &Layer) -> Result<u8, SettingError> {
    let Some(l) = &layer.nat64_host_prefix else {
        return Ok(HOST_PREFIX_DEFAULT);
    };
    if !(HOST_PREFIX_MIN..=128).contains(&l.value) {
        return err(
            &l.origin,
            format!(
                "the NAT64 host prefix is a length from {HOST_PREFIX_MIN} to 128 (64: the hosts \
                 of one /64 share a port cap; 128: each address has its own), not {}",
                l.value
            ),
        );
    }
    Ok(l.value)
}

/// Static NAT64 entries: usable addresses, each used once, none shared
/// with the pool or a static 1:1 map.
fn check_maps(
    prefix: Nat64Prefix,
    maps: &[Sourced<(Ipv6Addr, Ipv4Addr)>],
    napt: &NaptSettings,
    static_maps: &[Sourced<(Ipv4Addr, Ipv4Addr)>],
) -> Result<(), SettingError> {
    if maps.len() + static_maps.len() > STATIC_MAX_ENTRIES as usize {
        return err(
            &maps[0].origin,
            format!(
                "{} static NAT64 and {} static 1:1 mappings: the static table holds \
                 {STATIC_MAX_ENTRIES}",
                maps.len(),
                static_maps.len()
            ),
        );
    }
    for (i, m) in maps.iter().enumerate() {
        let (inside, public) = m.value;
        if let Some(why) = unusable_v6(inside) {
            return err(&m.origin, format!("{inside} cannot be mapped: it is {why}"));
        }
        if prefix.contains(inside) {
            return err(
                &m.origin,
                format!(
                    "{inside} lies in the NAT64 prefix {prefix}: such an address stands for an \
                     IPv4 host"
                ),
            );
        }
        if let Err(e) = check_usable(public) {
            return err(&m.origin, e.to_string());
        }
        if napt.pool.contains(&public) {
            return err(
                &m.origin,
                format!("{inside}={public}: {public} is also a NAPT pool address"),
            );
        }
        if let Some(s) = static_maps.iter().find(|s| s.value.1 == public) {
            return err(
                &m.origin,
                format!(
                    "{inside}={public}: {public} is also the public address of the static 1:1 \
                     mapping {}={public} ({})",
                    s.value.0, s.origin
                ),
            );
        }
        for earlier in &maps[..i] {
            let (p, q) = earlier.value;
            if p == inside {
                return err(
                    &m.origin,
                    format!(
                        "inside address {inside} is mapped twice (to {q} and {public}; first at \
                         {})",
                        earlier.origin
                    ),
                );
            }
            if q == public {
                return err(
                    &m.origin,
                    format!(
                        "public address {public} is mapped twice (from {p} and {inside}; first \
                         at {})",
                        earlier.origin
                    ),
                );
            }
        }
    }
    Ok(())
}

/// Why an IPv6 address cannot be an inside host's, if it cannot.
fn unusable_v6(a: Ipv6Addr) -> Option<&'static str> {
    if a.is_unspecified() {
        Some("the unspecified address")
    } else if a.is_loopback() {
        Some("the loopback address")
    } else if a.is_multicast() {
        Some("a multicast address")
    } else if a.is_unicast_link_local() {
        // Never forwarded, so never a NAT64 source.
        Some("a link-local address")
    } else {
        None
    }
}

/// The IPv6 addresses of the interfaces `names` (interface, address).
fn ipv6_addrs(names: &[String]) -> Vec<(String, Ipv6Addr)> {
    let Ok(all) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    all.filter(|ifa| names.contains(&ifa.interface_name))
        .filter_map(|ifa| {
            let sin6 = ifa.address?.as_sockaddr_in6().copied()?;
            Some((ifa.interface_name, sin6.ip()))
        })
        .collect()
}

/// The `NAT64` map of the attachment in `dir` (`enabled == 0`: off).
pub fn read_config(dir: &Path) -> anyhow::Result<Nat64Config> {
    Ok(Tables::at(dir).nat64()?.get(&0, 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::napt::AllocationMode;

    fn flag<T>(v: T, name: &str) -> Sourced<T> {
        Sourced::new(v, Origin::flag(name))
    }

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn napt() -> NaptSettings {
        NaptSettings {
            pool: vec![v4("198.51.100.1")],
            ..NaptSettings::default()
        }
    }

    /// NAT64 on with the well-known prefix, NAPT and an inside interface.
    fn layer() -> Layer {
        Layer {
            nat64: Some(flag(Nat64Prefix::WELL_KNOWN, "--nat64")),
            inside: Some(vec![flag("lan0".to_string(), "--inside")]),
            ..Layer::default()
        }
    }

    fn error(l: &Layer, napt: Option<&NaptSettings>) -> String {
        check(l, napt, &[], &[]).unwrap_err().to_string()
    }

    #[test]
    fn prefixes_are_rfc_6052_ones() {
        let p: Nat64Prefix = "2001:db8:122::/48".parse().unwrap();
        assert_eq!(p.to_string(), "2001:db8:122::/48");
        assert_eq!(p.config().prefix_len, 48);
        assert_eq!(Nat64Prefix::of(&p.config()), Some(p));
        assert_eq!(Nat64Prefix::of(&Nat64Config::default()), None);
        assert_eq!(
            Nat64Prefix::WELL_KNOWN.config().flags,
            nat_common::nat64::NAT64_WKP
        );
        assert!(Nat64Prefix::WELL_KNOWN.contains(v6("64:ff9b::c000:221")));
        assert!(!Nat64Prefix::WELL_KNOWN.contains(v6("64:ff9b:1::c000:221")));
        for (text, message) in [
            (
                "64:ff9b::/80",
                "64:ff9b::/80: the prefix length must be 32, 40, 48, 56, 64 or 96 (RFC 6052)",
            ),
            (
                "64:ff9b::1/96",
                "64:ff9b::1/96: the prefix has bits set past its length",
            ),
            (
                "2001:db8:0:0:100::/96",
                "2001:db8:0:0:100::/96: bits 64 to 71 of the prefix (the \"u\" octet) must be \
                 zero (RFC 6052)",
            ),
            (
                "64:ff9b::",
                "expected PREFIX/LEN (e.g. 64:ff9b::/96), got '64:ff9b::'",
            ),
            ("10.0.0.0/96", "'10.0.0.0' is not an IPv6 address"),
            ("64:ff9b::/x", "'x' is not a prefix length"),
        ] {
            assert_eq!(text.parse::<Nat64Prefix>().unwrap_err(), message, "{text}");
        }
    }

    #[test]
    fn off_unless_asked_for() {
        assert_eq!(check(&Layer::default(), Some(&napt()), &[], &[]), Ok(None));
        let s = check(&layer(), Some(&napt()), &[], &[]).unwrap().unwrap();
        assert_eq!(s.prefix, Nat64Prefix::WELL_KNOWN);
        assert!(s.maps.is_empty());
        // A static entry alone switches it on, with the well-known prefix.
        let l = Layer {
            nat64: None,
            nat64_maps: Some(vec![flag(
                (v6("2001:db8::10"), v4("203.0.113.10")),
                "--nat64-map",
            )]),
            ..layer()
        };
        let s = check(&l, Some(&napt()), &[], &[]).unwrap().unwrap();
        assert_eq!(s.prefix, Nat64Prefix::WELL_KNOWN);
        assert_eq!(s.maps.len(), 1);
    }

    #[test]
    fn needs_napt_and_an_inside_interface() {
        assert_eq!(
            error(&layer(), None),
            "--nat64: NAT64 needs NAPT (--masquerade, --pool or a [napt] table): its bindings \
             are NAPT bindings on the pool"
        );
        let l = Layer {
            inside: None,
            ..layer()
        };
        assert_eq!(
            error(&l, Some(&napt())),
            "--nat64: NAT64 needs at least one inside interface (--inside): the IPv6 inside \
             interfaces take the NAT64 program"
        );
    }

    #[test]
    fn dynamic_allocation_only() {
        for (mode, allocation, name) in [
            (
                AllocationMode::Deterministic,
                Allocation::Deterministic {
                    hosts_per_addr: 1,
                    ports_per_host: 64,
                },
                "deterministic",
            ),
            (
                AllocationMode::Block,
                Allocation::Block {
                    size: 256,
                    max_per_host: 8,
                    hold_down: 60,
                },
                "block",
            ),
        ] {
            let l = Layer {
                allocation: Some(flag(mode, "--allocation")),
                ..layer()
            };
            let n = NaptSettings {
                allocation,
                ..napt()
            };
            assert_eq!(
                error(&l, Some(&n)),
                format!(
                    "--nat64: NAT64 supports dynamic allocation only (for now); the allocation \
                     is {name} (--allocation)"
                )
            );
        }
        let l = Layer {
            allocation: Some(flag(AllocationMode::Dynamic, "--allocation")),
            ..layer()
        };
        assert!(check(&l, Some(&napt()), &[], &[]).is_ok());
    }

    #[test]
    fn not_with_binding_sync() {
        let l = Layer {
            sync_listen: Some(flag("192.0.2.10:4790".parse().unwrap(), "--sync-listen")),
            ..layer()
        };
        assert_eq!(
            error(&l, Some(&napt())),
            "--nat64: binding sync carries IPv4 inside hosts only, so NAT64 cannot be used with \
             it (--sync-listen)"
        );
        let l = Layer {
            sync_peers: Some(vec![flag(
                "192.0.2.11:4790".parse().unwrap(),
                "--sync-peer",
            )]),
            ..layer()
        };
        assert!(error(&l, Some(&napt())).ends_with("(--sync-peer)"));
    }

    #[test]
    fn the_prefix_must_not_hold_an_interface_address() {
        let addrs = [
            ("eth0".to_string(), v6("2001:db8:1::1")),
            ("lan0".to_string(), v6("64:ff9b::a00:1")),
        ];
        assert_eq!(
            check(&layer(), Some(&napt()), &[], &addrs)
                .unwrap_err()
                .to_string(),
            "--nat64: the NAT64 prefix 64:ff9b::/96 contains 64:ff9b::a00:1, an address of \
             lan0: packets for it would be translated to IPv4 instead of delivered; choose \
             another prefix"
        );
        // An address beside the prefix is fine.
        let l = Layer {
            nat64: Some(flag("64:ff9b:1::/96".parse().unwrap(), "--nat64")),
            ..layer()
        };
        assert!(check(&l, Some(&napt()), &[], &addrs).is_ok());
    }

    /// `resolve` reads the interfaces' addresses itself: lo's ::1.
    #[test]
    fn resolve_reads_the_interface_addresses() {
        let has_v6_loopback = ipv6_addrs(&["lo".to_string()])
            .iter()
            .any(|(_, a)| a.is_loopback());
        if !has_v6_loopback {
            return; // IPv6 disabled here: nothing to read.
        }
        let l = Layer {
            nat64: Some(flag("::/96".parse().unwrap(), "--nat64")),
            ..layer()
        };
        let e = resolve(&l, "lo", Some(&napt()), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("contains ::1, an address of lo"), "{e}");
    }

    #[test]
    fn static_entries_are_checked() {
        let map = |inside: &str, public: &str, origin: &str| flag((v6(inside), v4(public)), origin);
        let bad = |maps: Vec<Sourced<(Ipv6Addr, Ipv4Addr)>>, expect: &str| {
            let l = Layer {
                nat64_maps: Some(maps),
                ..layer()
            };
            let statics = [flag((v4("10.0.0.9"), v4("203.0.113.9")), "--map")];
            let e = check(&l, Some(&napt()), &statics, &[])
                .unwrap_err()
                .to_string();
            assert_eq!(e, expect);
        };
        bad(
            vec![map("ff02::1", "203.0.113.10", "m0")],
            "m0: ff02::1 cannot be mapped: it is a multicast address",
        );
        bad(
            vec![map("fe80::1", "203.0.113.10", "m0")],
            "m0: fe80::1 cannot be mapped: it is a link-local address",
        );
        bad(
            vec![map("::", "203.0.113.10", "m0")],
            "m0: :: cannot be mapped: it is the unspecified address",
        );
        bad(
            vec![map("64:ff9b::a00:1", "203.0.113.10", "m0")],
            "m0: 64:ff9b::a00:1 lies in the NAT64 prefix 64:ff9b::/96: such an address stands \
             for an IPv4 host",
        );
        bad(
            vec![map("2001:db8::10", "224.0.0.1", "m0")],
            "m0: 224.0.0.1 cannot be mapped: it is a multicast address",
        );
        bad(
            vec![map("2001:db8::10", "198.51.100.1", "m0")],
            "m0: 2001:db8::10=198.51.100.1: 198.51.100.1 is also a NAPT pool address",
        );
        bad(
            vec![map("2001:db8::10", "203.0.113.9", "m0")],
            "m0: 2001:db8::10=203.0.113.9: 203.0.113.9 is also the public address of the \
             static 1:1 mapping 10.0.0.9=203.0.113.9 (--map)",
        );
        bad(
            vec![
                map("2001:db8::10", "203.0.113.10", "m0"),
                map("2001:db8::10", "203.0.113.11", "m1"),
            ],
            "m1: inside address 2001:db8::10 is mapped twice (to 203.0.113.10 and \
             203.0.113.11; first at m0)",
        );
        bad(
            vec![
                map("2001:db8::10", "203.0.113.10", "m0"),
                map("2001:db8::11", "203.0.113.10", "m1"),
            ],
            "m1: public address 203.0.113.10 is mapped twice (from 2001:db8::10 and \
             2001:db8::11; first at m0)",
        );
    }
}

/// A warning if no IPv6 route of this network namespace covers the NAT64
/// prefix: xnat hands the packets it does not translate itself to the
/// stack (hop limit 1, too big for the external link), whose Time Exceeded
/// and Packet Too Big need a route to the destination, or the host gets
/// "no route" instead (traceroute's first hop, path MTU discovery).
pub fn route_warning(s: &Nat64Settings, ifname: &str) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/ipv6_route").ok()?;
    let prefix = s.prefix;
    let covered = table.lines().filter_map(route_of).any(|(dest, len)| {
        len <= prefix.prefix_len() && masked(dest, len) == masked(prefix.addr(), len)
    });
    (!covered).then(|| {
        format!(
            "no IPv6 route covers the NAT64 prefix {prefix}: the packets xnat leaves to the stack \
             (hop limit 1, too big for {ifname}) get \"no route\" instead of Time Exceeded and \
             Packet Too Big (traceroute's first hop, path MTU discovery); add one, e.g. \
             `ip -6 route add {prefix} dev {ifname}`"
        )
    })
}

/// Destination and prefix length of a `/proc/net/ipv6_route` line, unless
/// the route rejects (unreachable, prohibit, blackhole: RTF_REJECT).
fn route_of(line: &str) -> Option<(Ipv6Addr, u8)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let dest = u128::from_str_radix(f.first()?, 16).ok()?;
    let len = u8::from_str_radix(f.get(1)?, 16).ok()?;
    let flags = u32::from_str_radix(f.get(8)?, 16).ok()?;
    const RTF_REJECT: u32 = 0x0200;
    (flags & RTF_REJECT == 0).then_some((Ipv6Addr::from(dest), len))
}

fn masked(a: Ipv6Addr, len: u8) -> u128 {
    let bits = u128::from(a);
    if len == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(len)))
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;

    #[test]
    fn reads_proc_ipv6_route_lines() {
        let line = "0064ff9b000000000000000000000000 60 00000000000000000000000000000000 00 \
                    00000000000000000000000000000000 00000400 00000001 00000000 00000001 eth0";
        assert_eq!(route_of(line), Some(("64:ff9b::".parse().unwrap(), 96)));
        let reject = line.replace("00000001 eth0", "00200200 lo");
        assert_eq!(route_of(&reject), None);
        assert_eq!(
            masked("64:ff9b::1".parse().unwrap(), 96),
            masked("64:ff9b::".parse().unwrap(), 96)
        );
    }
}
