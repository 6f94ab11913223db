//! NAPT settings: validation, writing them into the pinned maps at attach
//! time, and reading them back for every other command.
use std::{net::Ipv4Addr, path::Path};

use anyhow::{Context as _, bail};
use aya::maps::lpm_trie::Key;
use nat_common::{
    FILTER_ADDRESS, FILTER_ADDRESS_AND_PORT, FILTER_ENDPOINT_INDEPENDENT, INTERNAL_MAX, NatConfig,
    POOL_MAX,
};

use crate::{static_map::to_be, tables::Tables};

/// An IPv4 prefix such as 10.0.0.0/8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Prefix {
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let mask = if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len as u32)
        };
        (u32::from(a) & mask) == (u32::from(self.addr) & mask)
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("'{a}' is not an IPv4 address"))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("'{l}' is not a prefix length (0-32)"))?;
        let p = Prefix { addr, len };
        let mask = if len == 0 {
            0
        } else {
            u32::MAX << (32 - len as u32)
        };
        if u32::from(addr) & !mask != 0 {
            return Err(format!(
                "'{s}' has host bits set (did you mean {}/{len}?)",
                Ipv4Addr::from(u32::from(addr) & mask)
            ));
        }
        Ok(p)
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The RFC 1918 ranges: the default `--internal`.
pub fn rfc1918() -> Vec<Prefix> {
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
        .iter()
        .map(|s| s.parse().expect("static prefix"))
        .collect()
}

/// RFC 4787 §5 filtering behaviours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filtering {
    EndpointIndependent,
    Address,
    AddressAndPort,
}

impl Filtering {
    pub fn code(self) -> u32 {
        match self {
            Filtering::EndpointIndependent => FILTER_ENDPOINT_INDEPENDENT,
            Filtering::Address => FILTER_ADDRESS,
            Filtering::AddressAndPort => FILTER_ADDRESS_AND_PORT,
        }
    }

    pub fn name_of(code: u32) -> &'static str {
        match code {
            FILTER_ENDPOINT_INDEPENDENT => "endpoint-independent",
            FILTER_ADDRESS => "address",
            FILTER_ADDRESS_AND_PORT => "address-and-port",
            _ => "?",
        }
    }
}

/// Everything the NAPT needs from the command line (or, later, a config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NaptSettings {
    pub internal: Vec<Prefix>,
    pub pool: Vec<Ipv4Addr>,
    pub ports: (u16, u16),
    pub filtering: Filtering,
    pub max_ports_per_host: u32,
    /// Cap on sessions created by inbound packets (0: none).
    pub max_inbound_sessions: u32,
    pub timeouts: Timeouts,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub udp: u32,
    pub tcp_established: u32,
    pub tcp_transitory: u32,
    pub icmp: u32,
    pub tcp_syn_in: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            udp: nat_common::DEFAULT_TIMEOUT_UDP,
            tcp_established: nat_common::DEFAULT_TIMEOUT_TCP_ESTABLISHED,
            tcp_transitory: nat_common::DEFAULT_TIMEOUT_TCP_TRANSITORY,
            icmp: nat_common::DEFAULT_TIMEOUT_ICMP,
            tcp_syn_in: nat_common::DEFAULT_TIMEOUT_TCP_SYN_IN,
        }
    }
}

impl Timeouts {
    /// Parses `udp=300,tcp-established=7440,...` over the defaults.
    pub fn parse_over(mut self, s: &str) -> Result<Self, String> {
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("expected NAME=SECONDS, got '{item}'"))?;
            let secs: u32 = v
                .trim_end_matches('s')
                .parse()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| format!("'{v}' is not a number of seconds (> 0) for {k}"))?;
            match k {
                "udp" => self.udp = secs,
                "tcp-established" | "tcp_established" => self.tcp_established = secs,
                "tcp-transitory" | "tcp_transitory" => self.tcp_transitory = secs,
                "icmp" => self.icmp = secs,
                "tcp-syn-in" | "tcp_syn_in" => self.tcp_syn_in = secs,
                _ => {
                    return Err(format!(
                        "unknown timeout '{k}' (expected udp, tcp-established, tcp-transitory, tcp-syn-in, icmp)"
                    ));
                }
            }
        }
        Ok(self)
    }
}

impl NaptSettings {
    /// Checks the settings against each other; each error names the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.pool.is_empty() {
            bail!("--pool: no public address");
        }
        if self.pool.len() > POOL_MAX as usize {
            bail!("--pool: {} addresses, at most {POOL_MAX}", self.pool.len());
        }
        for (i, a) in self.pool.iter().enumerate() {
            crate::static_map::check_usable(*a).context("--pool")?;
            if self.pool[..i].contains(a) {
                bail!("--pool: {a} is listed twice");
            }
            if let Some(p) = self.internal.iter().find(|p| p.contains(*a)) {
                bail!("--pool: {a} lies inside --internal {p}");
            }
        }
        if self.internal.is_empty() || self.internal.len() > INTERNAL_MAX as usize {
            bail!("--internal: between 1 and {INTERNAL_MAX} prefixes");
        }
        let (lo, hi) = self.ports;
        if lo == 0 || lo > hi {
            bail!("--ports {lo}-{hi}: expected MIN-MAX with 1 <= MIN <= MAX <= 65535");
        }
        Ok(())
    }

    pub fn config(&self) -> NatConfig {
        NatConfig {
            pool_len: self.pool.len() as u32,
            filtering: self.filtering.code(),
            port_min: self.ports.0,
            port_max: self.ports.1,
            max_ports_per_host: self.max_ports_per_host,
            timeout_udp: self.timeouts.udp,
            timeout_tcp_established: self.timeouts.tcp_established,
            timeout_tcp_transitory: self.timeouts.tcp_transitory,
            timeout_icmp: self.timeouts.icmp,
            timeout_tcp_syn_in: self.timeouts.tcp_syn_in,
            max_inbound_sessions: self.max_inbound_sessions,
        }
    }

    /// Writes pool, internal prefixes and, last, the configuration that
    /// switches NAPT on.
    pub fn apply(&self, dir: &Path) -> anyhow::Result<()> {
        let tables = Tables::at(dir);
        let mut pool = tables.pool()?;
        for (i, a) in self.pool.iter().enumerate() {
            pool.set(i as u32, to_be(*a), 0)?;
        }
        let mut internal = tables.internal()?;
        for p in &self.internal {
            internal.insert(&Key::new(p.len as u32, to_be(p.addr)), 1, 0)?;
        }
        let mut config = tables.config()?;
        config.set(0, self.config(), 0)?;
        Ok(())
    }
}

/// The configuration in force on an attachment (`pool_len == 0`: NAPT off).
pub fn read_config(dir: &Path) -> anyhow::Result<NatConfig> {
    Ok(Tables::at(dir).config()?.get(&0, 0)?)
}

/// The pool addresses in force.
pub fn read_pool(dir: &Path, cfg: &NatConfig) -> anyhow::Result<Vec<Ipv4Addr>> {
    let pool = Tables::at(dir).pool()?;
    (0..cfg.pool_len)
        .map(|i| Ok(crate::static_map::from_be(pool.get(&i, 0)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> NaptSettings {
        NaptSettings {
            internal: rfc1918(),
            pool: vec!["198.51.100.1".parse().unwrap()],
            ports: (1024, 65535),
            filtering: Filtering::Address,
            max_ports_per_host: 0,
            max_inbound_sessions: 0,
            timeouts: Timeouts::default(),
        }
    }

    #[test]
    fn prefixes_parse_and_reject_host_bits() {
        let p: Prefix = "10.0.0.0/8".parse().unwrap();
        assert!(p.contains("10.1.2.3".parse().unwrap()));
        assert!(!p.contains("11.0.0.1".parse().unwrap()));
        let e = "10.0.0.1/8".parse::<Prefix>().unwrap_err();
        assert!(e.contains("did you mean 10.0.0.0/8"), "{e}");
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert_eq!("192.0.2.7".parse::<Prefix>().unwrap().len, 32);
    }

    #[test]
    fn timeouts_parse_over_defaults() {
        let t = Timeouts::default()
            .parse_over("udp=2,tcp-transitory=3")
            .unwrap();
        assert_eq!(t.udp, 2);
        assert_eq!(t.tcp_transitory, 3);
        assert_eq!(t.tcp_established, 7440);
        assert!(Timeouts::default().parse_over("udp=0").is_err());
        assert!(
            Timeouts::default()
                .parse_over("tcp=5")
                .unwrap_err()
                .contains("unknown timeout")
        );
        assert!(Timeouts::default().parse_over("udp").is_err());
    }

    #[test]
    fn validation_names_the_flag() {
        settings().validate().unwrap();
        let mut s = settings();
        s.pool.push("198.51.100.1".parse().unwrap());
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("listed twice")
        );
        let mut s = settings();
        s.pool = vec!["10.9.9.9".parse().unwrap()];
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("inside --internal")
        );
        let mut s = settings();
        s.ports = (2000, 1000);
        assert!(s.validate().unwrap_err().to_string().contains("--ports"));
    }

    #[test]
    fn config_carries_everything() {
        let c = settings().config();
        assert_eq!(c.pool_len, 1);
        assert_eq!(c.filtering, FILTER_ADDRESS);
        assert_eq!((c.port_min, c.port_max), (1024, 65535));
        assert_eq!(c.timeout_udp, 300);
    }
}
