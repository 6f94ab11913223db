//! The gateway's own ephemeral ports against the NAPT port range. The data
//! plane cannot see the gateway's sockets: when the gateway connects from
//! a pool address (masquerading behind its own address, the usual home
//! router) on a port that is also a mapping's, the replies of one of the
//! two flows go to the other. conntrack-based masquerade avoids that by
//! knowing both; xnat can only tell the operator, at `attach`, `check` and
//! a reload.
use std::{fs, net::Ipv4Addr};

use crate::{loader::netdev, settings::napt::NaptSettings};

/// An inclusive port range.
pub type Ports = (u16, u16);

/// `net.ipv4.ip_local_port_range`: "32768\t60999".
fn parse_range(s: &str) -> Option<Ports> {
    let mut it = s.split_whitespace().map(|w| w.parse::<u16>().ok());
    match (it.next()??, it.next()??, it.next()) {
        (lo, hi, None) if lo <= hi => Some((lo, hi)),
        _ => None,
    }
}

/// `net.ipv4.ip_local_reserved_ports`: "" or "8080,9000-9010".
fn parse_reserved(s: &str) -> Option<Vec<Ports>> {
    s.trim()
        .split(',')
        .filter(|w| !w.is_empty())
        .map(|w| match w.split_once('-') {
            Some((lo, hi)) => Some((lo.parse().ok()?, hi.parse().ok()?)),
            None => w.parse().ok().map(|p| (p, p)),
        })
        .collect()
}

/// The ports of `napt` the gateway's own connections may also pick: those
/// in `ephemeral` and not in `reserved`. Their lowest and highest, and how
/// many there are.
fn shared(napt: Ports, ephemeral: Ports, reserved: &[Ports]) -> Option<(Ports, u32)> {
    let (lo, hi) = (napt.0.max(ephemeral.0), napt.1.min(ephemeral.1));
    let mut found: Option<(Ports, u32)> = None;
    for p in lo..=hi {
        if reserved.iter().any(|r| (r.0..=r.1).contains(&p)) {
            continue;
        }
        found = Some(match found {
            None => ((p, p), 1),
            Some(((first, _), n)) => ((first, p), n + 1),
        });
    }
    found
}

/// The larger part of `napt` outside `ephemeral`, if any.
fn outside(napt: Ports, ephemeral: Ports) -> Option<Ports> {
    let below = (ephemeral.0 > napt.0).then(|| (napt.0, (ephemeral.0 - 1).min(napt.1)));
    let above = (ephemeral.1 < napt.1).then(|| ((ephemeral.1 + 1).max(napt.0), napt.1));
    let len = |r: &Option<Ports>| r.map_or(0, |(lo, hi)| u32::from(hi) - u32::from(lo) + 1);
    if len(&below) >= len(&above) {
        below
    } else {
        above
    }
}

/// The warning for a pool that holds one of the gateway's own addresses
/// (`local`) with NAPT ports the gateway may also use, or `None`.
pub fn warning(
    pool: &[Ipv4Addr],
    ports: Ports,
    local: &[Ipv4Addr],
    ephemeral: Ports,
    reserved: &[Ports],
) -> Option<String> {
    let own: Vec<String> = pool
        .iter()
        .filter(|a| local.contains(a))
        .map(ToString::to_string)
        .collect();
    if own.is_empty() {
        return None;
    }
    let ((lo, hi), n) = shared(ports, ephemeral, reserved)?;
    let keep = "keep the gateway's own ports out of that range (net.ipv4.ip_local_port_range, or \
                ip_local_reserved_ports)";
    let advice = match outside(ports, ephemeral) {
        Some((a, b)) => format!("Use --ports {a}-{b} (ports = \"{a}-{b}\" in [napt]), or {keep}"),
        None => format!("K{}", &keep[1..]),
    };
    Some(format!(
        "NAPT ports {}-{} on {} (this gateway's own address) include {n} ports the gateway's \
         own connections may pick ({lo}-{hi}, from net.ipv4.ip_local_port_range {}-{}): a \
         connection the gateway itself makes from that address can get a mapping's port, and \
         then the replies of one go to the other. {advice}",
        ports.0,
        ports.1,
        own.join(", "),
        ephemeral.0,
        ephemeral.1,
    ))
}

/// [`warning`] for this network namespace: its addresses and its sysctls
/// (`/proc/sys/net` is per namespace). `None` also if they cannot be read.
pub fn check(napt: &NaptSettings) -> Option<String> {
    let read = |name: &str| fs::read_to_string(format!("/proc/sys/net/ipv4/{name}")).ok();
    let ephemeral = parse_range(&read("ip_local_port_range")?)?;
    let reserved = parse_reserved(&read("ip_local_reserved_ports").unwrap_or_default())?;
    let local = netdev::local_ipv4_addrs().ok()?;
    warning(&napt.pool, napt.ports.into(), &local, ephemeral, &reserved)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const OTHER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const LINUX: Ports = (32768, 60999);

    #[test]
    fn parses_the_sysctls() {
        assert_eq!(parse_range("32768\t60999\n"), Some(LINUX));
        assert_eq!(parse_range("1024 1024"), Some((1024, 1024)));
        assert_eq!(parse_range("60999 32768"), None);
        assert_eq!(parse_range("32768"), None);
        assert_eq!(parse_reserved("\n"), Some(vec![]));
        assert_eq!(
            parse_reserved("8080,40000-49999\n"),
            Some(vec![(8080, 8080), (40000, 49999)])
        );
        assert_eq!(parse_reserved("x"), None);
    }

    #[test]
    fn warns_when_an_own_pool_address_shares_ports() {
        let w = warning(&[OTHER, GW], (1024, 65535), &[GW], LINUX, &[]).expect("a warning");
        assert!(w.contains("on 192.0.2.1 "), "{w}");
        assert!(
            w.contains("28232 ports the gateway's own connections may pick (32768-60999"),
            "{w}"
        );
        assert!(w.contains("--ports 1024-32767"), "{w}");
    }

    #[test]
    fn quiet_when_nothing_is_shared() {
        // The pool is not the gateway's.
        assert_eq!(warning(&[OTHER], (1024, 65535), &[GW], LINUX, &[]), None);
        // The ranges are apart.
        assert_eq!(warning(&[GW], (1024, 32767), &[GW], LINUX, &[]), None);
        assert_eq!(warning(&[GW], (61000, 65535), &[GW], LINUX, &[]), None);
        // The shared ports are reserved.
        assert_eq!(
            warning(&[GW], (40000, 49999), &[GW], LINUX, &[(39000, 50000)]),
            None
        );
    }

    #[test]
    fn counts_only_unreserved_ports_and_suggests_the_larger_side() {
        let w = warning(&[GW], (30000, 65535), &[GW], LINUX, &[(32768, 40000)]).unwrap();
        assert!(
            w.contains("20999 ports the gateway's own connections may pick (40001-60999"),
            "{w}"
        );
        assert!(w.contains("--ports 61000-65535"), "{w}");
        // Inside the ephemeral range entirely: nothing to suggest but the
        // sysctls.
        let w = warning(&[GW], (40000, 40009), &[GW], LINUX, &[]).unwrap();
        assert!(w.contains("other. Keep the gateway's own ports"), "{w}");
    }
}
