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
