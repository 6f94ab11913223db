//! Parsing of the textual forms that flags and the config file share
//! (addresses, pool ranges, port ranges, endpoints), so both say the same
//! thing about the same mistake.
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::settings::{napt::PortRange, nat64::Nat64Prefix};

pub fn ipv4(s: &str) -> Result<Ipv4Addr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("'{s}' is not an IPv4 address"))
}

pub fn ipv6(s: &str) -> Result<Ipv6Addr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("'{s}' is not an IPv6 address"))
}

/// A NAT64 prefix `PREFIX/LEN` (`--nat64`, `nat64.prefix`), checked
/// against RFC 6052.
pub fn nat64_prefix(s: &str) -> Result<Nat64Prefix, String> {
    s.parse()
}

/// `IPV6=IPV4` (`--nat64-map`): an IPv6 inside host and its public
/// IPv4 address.
pub fn nat64_mapping(s: &str) -> Result<(Ipv6Addr, Ipv4Addr), String> {
    let (inside, public) = s
        .split_once('=')
        .ok_or_else(|| format!("expected IPV6=IPV4, got '{s}'"))?;
    Ok((ipv6(inside)?, ipv4(public)?))
}

/// `PRIVATE=PUBLIC` (`--map`).
pub fn mapping(s: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let (private, public) = s
        .split_once('=')
        .ok_or_else(|| format!("expected PRIVATE=PUBLIC, got '{s}'"))?;
    Ok((ipv4(private)?, ipv4(public)?))
}

/// A pool item: an address or an inclusive range `A-B`.
pub fn pool_item(s: &str) -> Result<Vec<Ipv4Addr>, String> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (ipv4(a)?, ipv4(b)?),
        None => {
            let a = ipv4(s)?;
            (a, a)
        }
    };
    let (lo, hi) = (u32::from(a), u32::from(b));
    if lo > hi {
        return Err(format!("range '{s}' ends before it starts"));
    }
    if hi - lo >= nat_common::POOL_MAX {
        return Err(format!(
            "range '{s}' has more than {} addresses",
            nat_common::POOL_MAX
        ));
    }
    Ok((lo..=hi).map(Ipv4Addr::from).collect())
}

/// `MIN-MAX` port range.
pub fn port_range(s: &str) -> Result<PortRange, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("expected MIN-MAX, got '{s}'"))?;
    let (lo, hi) = (port(a)?, port(b)?);
    if lo > hi {
        return Err(format!("range '{s}' ends before it starts"));
    }
    PortRange::new(lo, hi)
}

fn port(p: &str) -> Result<u16, String> {
    p.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("'{p}' is not a port (1-65535)"))
}

/// `ADDR:PORT`.
pub fn endpoint(s: &str) -> Result<(Ipv4Addr, u16), String> {
    let (a, p) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected ADDRESS:PORT, got '{s}'"))?;
    Ok((ipv4(a)?, port(p)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_ranges_expand() {
        let v = pool_item("198.51.100.1-198.51.100.4").unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[3].to_string(), "198.51.100.4");
        assert_eq!(pool_item("198.51.100.9").unwrap().len(), 1);
        assert!(pool_item("198.51.100.4-198.51.100.1").is_err());
        assert!(
            pool_item("10.0.0.0-10.0.1.0")
                .unwrap_err()
                .contains("more than")
        );
    }

    #[test]
    fn port_ranges_and_endpoints() {
        assert_eq!(port_range("1024-65535").unwrap(), PortRange::DEFAULT);
        assert!(port_range("0-10").is_err());
        assert!(port_range("10").is_err());
        assert!(port_range("20-10").is_err());
        assert_eq!(endpoint("198.51.100.1:8080").unwrap().1, 8080);
        assert!(endpoint("198.51.100.1").is_err());
        assert!(endpoint("198.51.100.1:0").is_err());
        assert_eq!(
            mapping("10.0.0.2=203.0.113.1").unwrap().1.to_string(),
            "203.0.113.1"
        );
        assert!(mapping("10.0.0.2").unwrap_err().contains("PRIVATE=PUBLIC"));
    }

    #[test]
    fn nat64_forms() {
        let (v6, v4) = nat64_mapping("2001:db8::10=198.51.100.10").unwrap();
        assert_eq!(v6.to_string(), "2001:db8::10");
        assert_eq!(v4.to_string(), "198.51.100.10");
        assert!(
            nat64_mapping("2001:db8::10")
                .unwrap_err()
                .contains("expected IPV6=IPV4")
        );
        assert_eq!(
            nat64_mapping("10.0.0.2=198.51.100.10").unwrap_err(),
            "'10.0.0.2' is not an IPv6 address"
        );
        assert_eq!(
            nat64_prefix("64:ff9b::/96").unwrap().to_string(),
            "64:ff9b::/96"
        );
    }
}
