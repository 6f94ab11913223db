//! NAPT settings: the domain types (prefixes, port ranges, filtering, timeouts), their
//! conversion to and from CONFIG, and reading them back from the pinned
//! maps. Checked in `settings`, written by `reconcile`.
use std::{net::Ipv4Addr, path::Path};

use nat_common::{
    FILTER_ADDRESS, FILTER_ADDRESS_AND_PORT, FILTER_ENDPOINT_INDEPENDENT, NatConfig,
    TCP_PICKUP_OFF, TCP_PICKUP_ON,
    blocks::ALLOCATION_BLOCK,
    deterministic::{ALLOCATION_DETERMINISTIC, ALLOCATION_DYNAMIC, Layout, host_offset},
};

use crate::tables::Tables;

/// An IPv4 prefix such as 10.0.0.0/8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Prefix {
    /// Addresses in the prefix.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.len))
    }

    /// Whether the two share an address.
    pub fn overlaps(&self, other: &Prefix) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

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

/// An inclusive range of ports `MIN-MAX`, 1 <= MIN <= MAX (`--ports`,
/// `napt.ports`, CONFIG's `port_min` and `port_max`). Parsed by
/// [`parse::port_range`](crate::settings::parse::port_range), shown as
/// `MIN-MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    min: u16,
    max: u16,
}

impl PortRange {
    /// The default `--ports`: 1024-65535.
    pub const DEFAULT: PortRange = PortRange {
        min: 1024,
        max: 65535,
    };

    /// The range `min`-`max`, if it is one (1 <= MIN <= MAX).
    pub fn new(min: u16, max: u16) -> Result<Self, String> {
        if min == 0 || min > max {
            return Err(format!(
                "{min}-{max}: expected MIN-MAX with 1 <= MIN <= MAX <= 65535"
            ));
        }
        Ok(PortRange { min, max })
    }

    pub fn min(self) -> u16 {
        self.min
    }

    pub fn max(self) -> u16 {
        self.max
    }

    /// The range CONFIG holds (as it is: the kernel's copy is not checked).
    pub fn of(c: &NatConfig) -> Self {
        PortRange {
            min: c.port_min,
            max: c.port_max,
        }
    }

    /// Writes the range into CONFIG.
    pub fn write(self, c: &mut NatConfig) {
        c.port_min = self.min;
        c.port_max = self.max;
    }
}

impl From<PortRange> for (u16, u16) {
    fn from(r: PortRange) -> Self {
        (r.min, r.max)
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::settings::parse::port_range(s)
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.min, self.max)
    }
}

/// The RFC 1918 ranges: the default `--internal`.
pub fn rfc1918() -> Vec<Prefix> {
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
        .iter()
        .map(|s| s.parse().expect("static prefix"))
        .collect()
}

/// RFC 4787 §5 filtering behaviours: `--filtering`, `napt.filtering` and
/// CONFIG's code, all from this one type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Filtering {
    EndpointIndependent,
    Address,
    AddressAndPort,
}

impl Filtering {
    const ALL: [(Filtering, u32, &'static str); 3] = [
        (
            Filtering::EndpointIndependent,
            FILTER_ENDPOINT_INDEPENDENT,
            "endpoint-independent",
        ),
        (Filtering::Address, FILTER_ADDRESS, "address"),
        (
            Filtering::AddressAndPort,
            FILTER_ADDRESS_AND_PORT,
            "address-and-port",
        ),
    ];

    /// The kernel's code (CONFIG's `filtering`).
    pub fn code(self) -> u32 {
        Self::ALL
            .iter()
            .find(|(f, ..)| *f == self)
            .map_or(0, |e| e.1)
    }

    /// The behaviour of a kernel code, if it names one.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.iter().find(|e| e.1 == code).map(|e| e.0)
    }

    /// The name, as the flag and the config spell it.
    pub fn name(self) -> &'static str {
        Self::name_of(self.code())
    }

    /// The name of a kernel code, as the flag and the config spell it.
    pub fn name_of(code: u32) -> &'static str {
        Self::ALL.iter().find(|e| e.1 == code).map_or("?", |e| e.2)
    }
}

/// Whether a TCP segment without SYN may open a session (`--tcp-pickup`,
/// `napt.tcp-pickup`): `on` picks connections up mid-stream (they survive
/// a failover or a reboot of the gateway), `off` opens TCP sessions on a
/// SYN only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TcpPickup {
    #[default]
    On,
    Off,
}

impl TcpPickup {
    /// The kernel's code (CONFIG's `tcp_pickup`).
    pub fn code(self) -> u32 {
        match self {
            TcpPickup::On => TCP_PICKUP_ON,
            TcpPickup::Off => TCP_PICKUP_OFF,
        }
    }

    /// The setting a kernel code holds (an unknown code reads as `on`,
    /// which is what the data plane does with it).
    pub fn from_code(code: u32) -> Self {
        if code == TCP_PICKUP_OFF {
            TcpPickup::Off
        } else {
            TcpPickup::On
        }
    }

    /// The name, as the flag and the config spell it.
    pub fn name(self) -> &'static str {
        match self {
            TcpPickup::On => "on",
            TcpPickup::Off => "off",
        }
    }
}

/// How new mappings get their public endpoint (`--allocation`,
/// `napt.allocation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AllocationMode {
    /// Any free port of the range on the host's paired pool address.
    #[default]
    Dynamic,
    /// RFC 7422: a fixed pool address and port range per inside address.
    Deterministic,
    /// Port blocks: a host's ports come from blocks it reserves on its
    /// paired pool address (one log line per block).
    Block,
}

/// The allocation in force, with the deterministic layout worked out
/// (`settings::resolve` plans it; CONFIG holds it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Allocation {
    #[default]
    Dynamic,
    Deterministic {
        hosts_per_addr: u32,
        ports_per_host: u32,
    },
    /// Port blocks (`nat_common::blocks`): ports per block, blocks a host
    /// may hold, seconds an unused block is kept.
    Block {
        size: u32,
        max_per_host: u32,
        hold_down: u32,
    },
}

impl Allocation {
    pub fn mode(self) -> AllocationMode {
        match self {
            Allocation::Dynamic => AllocationMode::Dynamic,
            Allocation::Deterministic { .. } => AllocationMode::Deterministic,
            Allocation::Block { .. } => AllocationMode::Block,
        }
    }
}

/// Everything the NAPT needs from the command line (or, later, a config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NaptSettings {
    pub internal: Vec<Prefix>,
    pub pool: Vec<Ipv4Addr>,
    pub ports: PortRange,
    pub filtering: Filtering,
    pub max_ports_per_host: u32,
    /// Cap on sessions created by inbound packets (0: none).
    pub max_inbound_sessions: u32,
    pub timeouts: Timeouts,
    pub allocation: Allocation,
    /// Whether a TCP segment without SYN may open a session.
    pub tcp_pickup: TcpPickup,
}

/// No internal prefixes and no pool; every other field as when it is not
/// given, but `max_inbound_sessions` 0 (no cap: its default depends on
/// the session table's size, see `settings::resolve`). For tests and
/// fixtures, so a new field needs no change there.
impl Default for NaptSettings {
    fn default() -> Self {
        NaptSettings {
            internal: Vec::new(),
            pool: Vec::new(),
            ports: PortRange::DEFAULT,
            filtering: Filtering::Address,
            max_ports_per_host: 0,
            max_inbound_sessions: 0,
            timeouts: Timeouts::default(),
            allocation: Allocation::Dynamic,
            tcp_pickup: TcpPickup::On,
        }
    }
}

/// The idle timeouts, one per protocol and TCP state, in one shape for
/// every layer: `Timeouts` (seconds in force), `Timeouts<Option<u32>>`
/// (`--timeout`), `Timeouts<Option<Sourced<u32>>>` (a settings layer) and
/// the config file's `[napt.timeouts]` table. The names are those of the
/// flag and the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Timeouts<T = u32> {
    #[serde(default)]
    pub udp: T,
    #[serde(default)]
    pub tcp_established: T,
    #[serde(default)]
    pub tcp_transitory: T,
    #[serde(default)]
    pub icmp: T,
    #[serde(default)]
    pub tcp_syn_in: T,
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

impl<T> Default for Timeouts<Option<T>> {
    fn default() -> Self {
        Timeouts {
            udp: None,
            tcp_established: None,
            tcp_transitory: None,
            icmp: None,
            tcp_syn_in: None,
        }
    }
}

impl<T> Timeouts<T> {
    /// Each timeout with its name (as `--timeout` and the file spell it).
    pub fn named(self) -> [(&'static str, T); 5] {
        [
            ("udp", self.udp),
            ("tcp-established", self.tcp_established),
            ("tcp-transitory", self.tcp_transitory),
            ("icmp", self.icmp),
            ("tcp-syn-in", self.tcp_syn_in),
        ]
    }

    /// Each timeout passed through `f` with its name.
    pub fn map<U>(self, mut f: impl FnMut(&'static str, T) -> U) -> Timeouts<U> {
        let [udp, est, trans, icmp, syn] = self.named().map(|(n, v)| f(n, v));
        Timeouts {
            udp,
            tcp_established: est,
            tcp_transitory: trans,
            icmp,
            tcp_syn_in: syn,
        }
    }

    /// Timeout by timeout, `f(self's, other's)`.
    pub fn zip<U, V>(self, other: Timeouts<U>, mut f: impl FnMut(T, U) -> V) -> Timeouts<V> {
        Timeouts {
            udp: f(self.udp, other.udp),
            tcp_established: f(self.tcp_established, other.tcp_established),
            tcp_transitory: f(self.tcp_transitory, other.tcp_transitory),
            icmp: f(self.icmp, other.icmp),
            tcp_syn_in: f(self.tcp_syn_in, other.tcp_syn_in),
        }
    }
}

impl Timeouts<Option<u32>> {
    /// Parses `udp=300,tcp-established=7440,...` (`--timeout`): the ones
    /// named, each at least a second.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut t = Self::default();
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
            let slot = match k {
                "udp" => &mut t.udp,
                "tcp-established" | "tcp_established" => &mut t.tcp_established,
                "tcp-transitory" | "tcp_transitory" => &mut t.tcp_transitory,
                "icmp" => &mut t.icmp,
                "tcp-syn-in" | "tcp_syn_in" => &mut t.tcp_syn_in,
                _ => {
                    return Err(format!(
                        "unknown timeout '{k}' (expected udp, tcp-established, tcp-transitory, tcp-syn-in, icmp)"
                    ));
                }
            };
            *slot = Some(secs);
        }
        Ok(t)
    }
}

impl Timeouts {
    /// Parses `udp=300,tcp-established=7440,...` over `self`.
    pub fn parse_over(self, s: &str) -> Result<Self, String> {
        Ok(Timeouts::<Option<u32>>::parse(s)?.zip(self, Option::unwrap_or))
    }

    /// The timeouts CONFIG holds.
    pub fn of(c: &NatConfig) -> Self {
        Timeouts {
            udp: c.timeout_udp,
            tcp_established: c.timeout_tcp_established,
            tcp_transitory: c.timeout_tcp_transitory,
            icmp: c.timeout_icmp,
            tcp_syn_in: c.timeout_tcp_syn_in,
        }
    }
}

impl NaptSettings {
    /// The settings as CONFIG holds them (with the pool and internal
    /// prefixes in their own maps). [`NaptSettings::from_config`] is the
    /// way back.
    pub fn config(&self) -> NatConfig {
        let mut c = NatConfig {
            pool_len: self.pool.len() as u32,
            filtering: self.filtering.code(),
            port_min: 0,
            port_max: 0,
            max_ports_per_host: self.max_ports_per_host,
            timeout_udp: self.timeouts.udp,
            timeout_tcp_established: self.timeouts.tcp_established,
            timeout_tcp_transitory: self.timeouts.tcp_transitory,
            timeout_icmp: self.timeouts.icmp,
            timeout_tcp_syn_in: self.timeouts.tcp_syn_in,
            max_inbound_sessions: self.max_inbound_sessions,
            pinned_hosts: 0,
            allocation: ALLOCATION_DYNAMIC,
            det_hosts_per_addr: 0,
            det_ports_per_host: 0,
            block_size: 0,
            max_blocks_per_host: 0,
            block_hold_down: 0,
            tcp_pickup: self.tcp_pickup.code(),
        };
        match self.allocation {
            Allocation::Dynamic => {}
            Allocation::Deterministic {
                hosts_per_addr,
                ports_per_host,
            } => {
                c.allocation = ALLOCATION_DETERMINISTIC;
                c.det_hosts_per_addr = hosts_per_addr;
                c.det_ports_per_host = ports_per_host;
            }
            Allocation::Block {
                size,
                max_per_host,
                hold_down,
            } => {
                c.allocation = ALLOCATION_BLOCK;
                c.block_size = size;
                c.max_blocks_per_host = max_per_host;
                c.block_hold_down = hold_down;
            }
        }
        self.ports.write(&mut c);
        c
    }

    /// The inside prefixes in ascending order, each with the number of
    /// its first host: the hosts of the prefixes below it come first
    /// (`nat_common::deterministic`).
    pub fn numbered_internal(&self) -> Vec<(Prefix, u64)> {
        let mut prefixes = self.internal.clone();
        prefixes.sort_by_key(|p| (u32::from(p.addr), p.len));
        let mut first = 0u64;
        prefixes
            .into_iter()
            .map(|p| {
                let f = first;
                first += p.size();
                (p, f)
            })
            .collect()
    }

    /// `INTERNAL`'s entries: each prefix with the offset that numbers its
    /// hosts (`nat_common::deterministic::host_offset`).
    pub fn internal_entries(&self) -> Vec<(Prefix, u32)> {
        self.numbered_internal()
            .into_iter()
            .map(|(p, first)| (p, host_offset(u32::from(p.addr), first as u32)))
            .collect()
    }

    /// The deterministic layout, if that is the allocation (the pool's
    /// slots in ascending address order: see [`reconcile`]).
    ///
    /// [`reconcile`]: crate::settings::reconcile
    pub fn deterministic_layout(&self) -> Option<Layout> {
        match self.allocation {
            Allocation::Deterministic { .. } => Some(Layout::of(&self.config())),
            Allocation::Dynamic | Allocation::Block { .. } => None,
        }
    }

    /// The settings a CONFIG, pool and internal prefixes hold (`None`:
    /// NAPT off). An unknown filtering code reads as address-dependent.
    pub fn from_config(c: &NatConfig, pool: &[Ipv4Addr], internal: &[Prefix]) -> Option<Self> {
        if c.pool_len == 0 {
            return None;
        }
        Some(NaptSettings {
            internal: internal.to_vec(),
            pool: pool.to_vec(),
            ports: PortRange::of(c),
            filtering: Filtering::from_code(c.filtering).unwrap_or(Filtering::Address),
            max_ports_per_host: c.max_ports_per_host,
            max_inbound_sessions: c.max_inbound_sessions,
            timeouts: Timeouts::of(c),
            allocation: match c.allocation {
                ALLOCATION_DETERMINISTIC => Allocation::Deterministic {
                    hosts_per_addr: c.det_hosts_per_addr,
                    ports_per_host: c.det_ports_per_host,
                },
                ALLOCATION_BLOCK => Allocation::Block {
                    size: c.block_size,
                    max_per_host: c.max_blocks_per_host,
                    hold_down: c.block_hold_down,
                },
                _ => Allocation::Dynamic,
            },
            tcp_pickup: TcpPickup::from_code(c.tcp_pickup),
        })
    }
}

/// The configuration in force on an attachment (`pool_len == 0`: NAPT off).
pub fn read_config(dir: &Path) -> anyhow::Result<NatConfig> {
    Ok(Tables::at(dir).config()?.get(&0, 0)?)
}

/// The NAPT settings in force (`None`: NAPT off).
pub fn read_settings(dir: &Path) -> anyhow::Result<Option<NaptSettings>> {
    let cfg = read_config(dir)?;
    let pool = read_pool(dir, &cfg)?;
    Ok(NaptSettings::from_config(&cfg, &pool, &read_internal(dir)?))
}

/// The inside prefixes in force, in ascending order.
pub fn read_internal(dir: &Path) -> anyhow::Result<Vec<Prefix>> {
    let mut internal = Vec::new();
    for k in Tables::at(dir).internal()?.keys() {
        let k = k?;
        internal.push(Prefix {
            addr: Ipv4Addr::from(u32::from_be(k.data())),
            len: k.prefix_len() as u8,
        });
    }
    internal.sort_by_key(|p| (u32::from(p.addr), p.len));
    Ok(internal)
}

/// The pool addresses in force.
pub fn read_pool(dir: &Path, cfg: &NatConfig) -> anyhow::Result<Vec<Ipv4Addr>> {
    let pool = Tables::at(dir).pool()?;
    (0..cfg.pool_len)
        .map(|i| Ok(crate::tables::static_map::from_be(pool.get(&i, 0)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> NaptSettings {
        NaptSettings {
            internal: rfc1918(),
            pool: vec!["198.51.100.1".parse().unwrap()],
            ports: PortRange::DEFAULT,
            filtering: Filtering::Address,
            max_ports_per_host: 0,
            max_inbound_sessions: 0,
            timeouts: Timeouts::default(),
            allocation: Allocation::Dynamic,
            tcp_pickup: TcpPickup::Off,
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
    fn config_carries_everything() {
        let c = settings().config();
        assert_eq!(c.pool_len, 1);
        assert_eq!(c.filtering, FILTER_ADDRESS);
        assert_eq!((c.port_min, c.port_max), (1024, 65535));
        assert_eq!(c.timeout_udp, 300);
        assert_eq!(c.tcp_pickup, TCP_PICKUP_OFF);
        let back = NaptSettings::from_config(&c, &settings().pool, &rfc1918()).unwrap();
        assert_eq!(back, settings());
    }

    #[test]
    fn port_ranges_check_and_show() {
        let r = PortRange::new(2000, 3000).unwrap();
        assert_eq!(r.to_string(), "2000-3000");
        assert_eq!("2000-3000".parse::<PortRange>(), Ok(r));
        assert_eq!(<(u16, u16)>::from(r), (2000, 3000));
        assert_eq!(PortRange::new(7, 7).unwrap().to_string(), "7-7");
        assert!(PortRange::new(0, 10).is_err());
        assert_eq!(
            PortRange::new(2000, 1000).unwrap_err(),
            "2000-1000: expected MIN-MAX with 1 <= MIN <= MAX <= 65535"
        );
    }
}
