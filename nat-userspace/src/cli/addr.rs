//! Parsing of addresses and mappings given on the command line.
use std::net::Ipv4Addr;

/// A `PRIVATE=PUBLIC` pair from `--map`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub private: Ipv4Addr,
    pub public: Ipv4Addr,
}

pub fn parse_ipv4(s: &str) -> Result<Ipv4Addr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("'{s}' is not an IPv4 address"))
}

pub fn parse_mapping(s: &str) -> Result<Mapping, String> {
    let (private, public) = s
        .split_once('=')
        .ok_or_else(|| format!("expected PRIVATE=PUBLIC, got '{s}'"))?;
    Ok(Mapping {
        private: parse_ipv4(private)?,
        public: parse_ipv4(public)?,
    })
}

/// `--pool` items: an address or an inclusive range `A-B`.
pub fn parse_pool(s: &str) -> Result<Vec<Ipv4Addr>, String> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (parse_ipv4(a)?, parse_ipv4(b)?),
        None => {
            let a = parse_ipv4(s)?;
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

/// `--ports MIN-MAX`.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("expected MIN-MAX, got '{s}'"))?;
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("'{p}' is not a port (1-65535)"))
    };
    let (lo, hi) = (port(a)?, port(b)?);
    if lo > hi {
        return Err(format!("range '{s}' ends before it starts"));
    }
    Ok((lo, hi))
}

/// `ADDR:PORT`.
pub fn parse_endpoint(s: &str) -> Result<(Ipv4Addr, u16), String> {
    let (a, p) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected ADDRESS:PORT, got '{s}'"))?;
    let port = p
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("'{p}' is not a port (1-65535)"))?;
    Ok((parse_ipv4(a)?, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_ranges_expand() {
        let v = parse_pool("198.51.100.1-198.51.100.4").unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[3].to_string(), "198.51.100.4");
        assert_eq!(parse_pool("198.51.100.9").unwrap().len(), 1);
        assert!(parse_pool("198.51.100.4-198.51.100.1").is_err());
        assert!(
            parse_pool("10.0.0.0-10.0.1.0")
                .unwrap_err()
                .contains("more than")
        );
    }

    #[test]
    fn port_ranges_and_endpoints() {
        assert_eq!(parse_port_range("1024-65535").unwrap(), (1024, 65535));
        assert!(parse_port_range("0-10").is_err());
        assert!(parse_port_range("10").is_err());
        assert!(parse_port_range("20-10").is_err());
        assert_eq!(parse_endpoint("198.51.100.1:8080").unwrap().1, 8080);
        assert!(parse_endpoint("198.51.100.1").is_err());
        assert!(parse_endpoint("198.51.100.1:0").is_err());
    }
}
