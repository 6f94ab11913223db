//! Value parsers for clap: thin wrappers over `nat_userspace::settings::parse`, which
//! the config file uses too.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nat_userspace::settings::{nat64::Nat64Prefix, parse};

/// A `PRIVATE=PUBLIC` pair from `--map`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub private: Ipv4Addr,
    pub public: Ipv4Addr,
}

pub fn parse_ipv4(s: &str) -> Result<Ipv4Addr, String> {
    parse::ipv4(s)
}

pub fn parse_mapping(s: &str) -> Result<Mapping, String> {
    let (private, public) = parse::mapping(s)?;
    Ok(Mapping { private, public })
}

/// `--pool` items: an address or an inclusive range `A-B`.
pub fn parse_pool(s: &str) -> Result<Vec<Ipv4Addr>, String> {
    parse::pool_item(s)
}

/// `ADDR:PORT`.
pub fn parse_endpoint(s: &str) -> Result<(Ipv4Addr, u16), String> {
    parse::endpoint(s)
}

/// An inside host's address, IPv4 or IPv6 (a NAT64 host).
pub fn parse_inside(s: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("'{s}' is not an IPv4 or IPv6 address"))
}

/// `--nat64 PREFIX`.
pub fn parse_nat64_prefix(s: &str) -> Result<Nat64Prefix, String> {
    parse::nat64_prefix(s)
}

/// `--nat64-map IPV6=IPV4`.
pub fn parse_nat64_mapping(s: &str) -> Result<(Ipv6Addr, Ipv4Addr), String> {
    parse::nat64_mapping(s)
}
