//! Settings: what an attachment should look like, and bringing the live
//! tables to it. The domain types (`napt`, `hook`), the config file (`config`) and
//! the flags' values (`parse`) make layers; this module stacks them and
//! checks the result as a whole, once, before anything is touched;
//! `reconcile` plans and applies it (attach, adopt, reload).
//!
//! The layers: the config file, then the command line over it. Every value remembers where it came from, so an
//! error names the flag (`--pool: ...`) or the file, line and key
//! (`/etc/xnat/xnat.toml:7:9: napt.pool[0]: ...`).
pub mod config;
pub mod deterministic;
pub mod ephemeral;
pub mod hook;
pub mod napt;
pub mod nat64;
pub mod parse;
pub mod reconcile;
pub mod sync;

pub use hook::HookMode;

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
};

use nat_common::{
    INTERNAL_MAX, POOL_MAX,
    deterministic::{Layout, PlanError},
};

use crate::{
    loader::Limits,
    loader::netdev,
    settings::napt::{
        Allocation, AllocationMode, Filtering, NaptSettings, PortRange, Prefix, TcpPickup,
        Timeouts, rfc1918,
    },
    tables::forward::{Forward, Proto},
    tables::static_map::check_usable,
};

/// Where a value came from: a flag (`--pool`) or a place in a config file
/// (`FILE:LINE:COL: KEY`). Shown in front of every error about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin(pub String);

impl Origin {
    pub fn flag(name: &str) -> Self {
        Origin(name.to_string())
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value and where it came from.
#[derive(Clone, Debug)]
pub struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Sourced<T> {
    pub fn new(value: T, origin: Origin) -> Self {
        Sourced { value, origin }
    }
}

/// A setting that is wrong, and where it was given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{origin}: {message}")]
pub struct SettingError {
    pub origin: Origin,
    pub message: String,
}

fn err<T>(origin: &Origin, message: impl Into<String>) -> Result<T, SettingError> {
    Err(SettingError {
        origin: origin.clone(),
        message: message.into(),
    })
}

/// Where the agent's expiry sweep walks the mappings (`--expiry-walk`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpiryWalk {
    /// Read into user space in batches: twice the CPU of the walk in the
    /// kernel, in short system calls.
    User,
    /// In the kernel (the default; `xnat_expire`, a syscall program run in
    /// the agent's process context, so its CPU goes on handling packets):
    /// about half the CPU time. The sweep falls back to the user walk
    /// whenever it needs the mappings themselves (translation log,
    /// per-host cap, pinned hosts, orphan scan).
    #[default]
    Kernel,
}

/// Where the translation log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    File(PathBuf),
}

impl LogTarget {
    pub fn parse(s: &str) -> Self {
        if s == "-" {
            LogTarget::Stdout
        } else {
            LogTarget::File(PathBuf::from(s))
        }
    }
}

impl fmt::Display for LogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogTarget::Stdout => f.write_str("-"),
            LogTarget::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Idle timeouts given by name; each overrides the layer below.
pub type TimeoutLayer = Timeouts<Option<Sourced<u32>>>;

/// The scalar `[napt]` settings, each declared once: its [`Layer`]
/// field, its type, its name (the flag `--NAME` and the key `NAME` in the
/// file's `[napt]` table, so `napt.NAME` in messages), its help (the
/// flag's `--help` text) and the flag's clap attributes in brackets.
/// `napt_settings!(m)` hands the list to the macro `m`: [`Layer`] and
/// [`NaptFlags`] are made from it here, the file's `[napt]` table in
/// `config`. A setting with a value of its own (not a list, not a table)
/// belongs here; its type needs `FromStr` or a `value_parser` for the
/// flag and `serde::Deserialize` for the file.
macro_rules! napt_settings {
    ($then:ident) => {
        $then! {
            /// Public ports (and ICMP identifiers) to hand out [default:
            /// 1024-65535].
            ports: PortRange = "ports" [value_name = "MIN-MAX", value_parser = parse::port_range],

            /// Which inbound packets reach an inside endpoint (RFC 4787 §5)
            /// [default: address].
            filtering: Filtering = "filtering" [value_enum],

            /// Most public ports one inside host may hold (0: no cap) [default: 0].
            max_ports_per_host: u32 = "max-ports-per-host" [value_name = "N"],

            /// Capacity of the mapping table (inside endpoints) [default: 131072].
            max_mappings: u32 = "max-mappings" [value_name = "N"],

            /// Capacity of the session table (inside × remote endpoints), for the
            /// sessions beyond each mapping's first (which the mapping holds)
            /// [default: 262144].
            max_sessions: u32 = "max-sessions" [value_name = "N"],

            /// Most live sessions that inbound packets may create (port forwards,
            /// endpoint-independent filtering), so a flood from outside cannot
            /// fill the session table (0: no cap) [default: half of
            /// --max-sessions].
            max_inbound_sessions: u32 = "max-inbound-sessions" [value_name = "N"],

            /// How new mappings get their public endpoint: dynamic (any free
            /// port on the host's pool address), block (ports from blocks the
            /// host reserves on its pool address: one log line per block) or
            /// deterministic (RFC 7422: a fixed pool address and port range
            /// per inside address, nothing to log) [default: dynamic].
            allocation: AllocationMode = "allocation" [value_enum],

            /// Deterministic allocation: ports of each inside address [default:
            /// as many as the pool and --ports leave each one].
            ports_per_host: u32 = "ports-per-host" [value_name = "N"],

            /// Deterministic allocation: refuse a layout that leaves an inside
            /// address fewer ports [default: 64].
            min_ports_per_host: u32 = "min-ports-per-host" [value_name = "N"],

            /// Block allocation: ports per block [default: 256].
            block_size: u32 = "block-size" [value_name = "N"],

            /// Block allocation: blocks one inside address may hold at once
            /// (its port cap is this times --block-size) [default: 8].
            max_blocks_per_host: u32 = "max-blocks-per-host" [value_name = "N"],

            /// Block allocation: seconds a block no binding uses is kept
            /// before it goes back to the pool, so its ports do not pass to
            /// another subscriber right after their last use [default: 60].
            block_hold_down: u32 = "block-hold-down" [value_name = "SECS"],

            /// Whether a TCP segment without SYN that finds no session opens
            /// one (mid-stream pickup): on lets a connection survive a
            /// failover or a reboot of the gateway; off opens TCP sessions on
            /// a SYN only and drops the rest (drop_tcp_no_syn) [default: on].
            tcp_pickup: TcpPickup = "tcp-pickup" [value_enum],
        }
    };
}
pub(crate) use napt_settings;

/// Makes [`Layer`] (the fields below, then one per `napt_settings!`
/// entry) and [`NaptFlags`] (the entries' flags).
macro_rules! layer {
    ($( $(#[doc = $doc:literal])* $field:ident: $ty:ty = $name:literal [$($clap:tt)*], )*) => {
        /// One source of settings; every field is optional. Lists given in a layer
        /// replace the lower layer's list as a whole.
        #[derive(Clone, Debug, Default)]
        pub struct Layer {
            pub ifname: Option<Sourced<String>>,
            pub ingress: Option<Sourced<HookMode>>,
            pub inside: Option<Vec<Sourced<String>>>,
            pub inside_hook: Option<Sourced<HookMode>>,
            pub xdp_redirect: Option<Vec<Sourced<String>>>,
            pub keep: Option<Sourced<bool>>,
            pub fast_path: Option<Sourced<bool>>,
            pub maps: Option<Vec<Sourced<(Ipv4Addr, Ipv4Addr)>>>,
            /// NAPT switched on (`--masquerade`, or a `[napt]` section).
            pub napt: Option<Sourced<bool>>,
            pub internal: Option<Vec<Sourced<Prefix>>>,
            pub pool: Option<Vec<Sourced<Ipv4Addr>>>,
            pub timeouts: TimeoutLayer,
            pub forwards: Option<Vec<Sourced<Forward>>>,
            pub metrics: Option<Sourced<SocketAddr>>,
            pub log_bindings: Option<Sourced<LogTarget>>,
            pub ipfix: Option<Sourced<SocketAddr>>,
            pub expiry_walk: Option<Sourced<ExpiryWalk>>,
            /// Binding sync: this gateway's sync socket, its peers, the
            /// shared secret's file, the refresh period (`[sync]`).
            pub sync_listen: Option<Sourced<SocketAddr>>,
            pub sync_peers: Option<Vec<Sourced<SocketAddr>>>,
            pub sync_key_file: Option<Sourced<PathBuf>>,
            pub sync_refresh: Option<Sourced<u32>>,
            /// NAT64 switched on with this prefix (`--nat64 [PREFIX]`, a
            /// `[nat64]` table).
            pub nat64: Option<Sourced<nat64::Nat64Prefix>>,
            /// Static NAT64: IPv6 inside host -> public IPv4 address.
            pub nat64_maps: Option<Vec<Sourced<(Ipv6Addr, Ipv4Addr)>>>,
            /// The IPv6 prefix length whose hosts share one port cap
            /// (`--nat64-host-prefix`, `[nat64]` `host_prefix`).
            pub nat64_host_prefix: Option<Sourced<u8>>,
            $( $(#[doc = $doc])* pub $field: Option<Sourced<$ty>>, )*
        }

        impl Layer {
            /// `self` over `below`: a field set here wins.
            pub fn over(self, below: Layer) -> Layer {
                Layer {
                    ifname: self.ifname.or(below.ifname),
                    ingress: self.ingress.or(below.ingress),
                    inside: self.inside.or(below.inside),
                    inside_hook: self.inside_hook.or(below.inside_hook),
                    xdp_redirect: self.xdp_redirect.or(below.xdp_redirect),
                    keep: self.keep.or(below.keep),
                    fast_path: self.fast_path.or(below.fast_path),
                    maps: self.maps.or(below.maps),
                    // NAPT is on if any layer switches it on.
                    napt: match (self.napt, below.napt) {
                        (Some(a), _) if a.value => Some(a),
                        (_, b) => b,
                    },
                    internal: self.internal.or(below.internal),
                    pool: self.pool.or(below.pool),
                    timeouts: self.timeouts.zip(below.timeouts, Option::or),
                    forwards: self.forwards.or(below.forwards),
                    metrics: self.metrics.or(below.metrics),
                    log_bindings: self.log_bindings.or(below.log_bindings),
                    ipfix: self.ipfix.or(below.ipfix),
                    expiry_walk: self.expiry_walk.or(below.expiry_walk),
                    sync_listen: self.sync_listen.or(below.sync_listen),
                    sync_peers: self.sync_peers.or(below.sync_peers),
                    sync_key_file: self.sync_key_file.or(below.sync_key_file),
                    sync_refresh: self.sync_refresh.or(below.sync_refresh),
                    nat64: self.nat64.or(below.nat64),
                    nat64_maps: self.nat64_maps.or(below.nat64_maps),
                    nat64_host_prefix: self.nat64_host_prefix.or(below.nat64_host_prefix),
                    $( $field: self.$field.or(below.$field), )*
                }
            }
        }

        /// The flags of the `napt_settings!` entries (`xnat attach` flattens
        /// them into its own).
        #[derive(clap::Args, Clone, Debug, Default)]
        pub struct NaptFlags {
            $( $(#[doc = $doc])* #[arg(long = $name, $($clap)*)] pub $field: Option<$ty>, )*
        }

        impl NaptFlags {
            /// The flags given, as a layer (the rest unset), each value's
            /// origin its flag.
            pub fn layer(&self) -> Layer {
                Layer {
                    $( $field: self.$field.clone()
                        .map(|v| Sourced::new(v, Origin::flag(concat!("--", $name)))), )*
                    ..Layer::default()
                }
            }
        }
    };
}
napt_settings!(layer);

impl Layer {
    fn napt_enabled(&self) -> bool {
        self.napt.as_ref().is_some_and(|n| n.value)
            || self.pool.is_some()
            || self.internal.is_some()
    }
}

/// The complete, checked state an attachment should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub ifname: String,
    pub ingress: HookMode,
    pub inside: Vec<String>,
    /// Hook of the outbound fast path on the inside interfaces.
    pub inside_hook: HookMode,
    /// Virtual devices declared able to take XDP redirects.
    pub xdp_redirect: Vec<String>,
    pub keep: bool,
    pub fast_path: bool,
    pub static_maps: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub napt: Option<NaptSettings>,
    pub limits: Limits,
    pub forwards: Vec<Forward>,
    pub metrics: Option<SocketAddr>,
    pub log_bindings: Option<LogTarget>,
    /// IPFIX collector of the binding events (RFC 8158), UDP.
    pub ipfix: Option<SocketAddr>,
    pub expiry_walk: ExpiryWalk,
    /// Binding sync with peer gateways (`None`: off).
    pub sync: Option<sync::SyncSettings>,
    /// Stateful NAT64 (`None`: off).
    pub nat64: Option<nat64::Nat64Settings>,
}

/// Largest table size accepted (the kernel would refuse far bigger ones
/// with a less helpful error).
const MAX_TABLE: u32 = 1 << 24;

fn values<T: Clone>(v: &Option<Vec<Sourced<T>>>) -> Vec<T> {
    v.iter().flatten().map(|s| s.value.clone()).collect()
}

/// The NAPT settings of `layer` alone, checked as `resolve` checks them
/// but without this machine's devices (`xnat lookup --config` on a
/// machine other than the gateway): the pool must be given, since the
/// interface's address is the gateway's. `None`: NAPT off.
pub fn napt_of(layer: &Layer) -> Result<Option<NaptSettings>, SettingError> {
    if !layer.napt_enabled() {
        return Ok(None);
    }
    if layer.pool.is_none() {
        return err(
            &layer
                .napt
                .as_ref()
                .map_or(Origin::flag("--pool"), |n| n.origin.clone()),
            "no pool given: without one the gateway's interface address is the pool, which only \
             the gateway knows",
        );
    }
    let ifname = layer.ifname.as_ref().map_or("", |i| i.value.as_str());
    let limits = Limits {
        max_mappings: table_size(&layer.max_mappings, nat_common::DEFAULT_MAX_MAPPINGS)?,
        max_sessions: table_size(&layer.max_sessions, nat_common::DEFAULT_MAX_SESSIONS)?,
    };
    resolve_napt(layer, ifname, &limits).map(Some)
}

/// Fills in defaults and checks everything against everything else.
/// `missing_iface` is the hint shown when no layer names the interface.
pub fn resolve(layer: &Layer, missing_iface: &str) -> Result<Settings, SettingError> {
    let Some(ifname) = &layer.ifname else {
        return err(&Origin::flag("IFACE"), missing_iface);
    };
    if let Err(e) = netdev::check_attachable(&ifname.value) {
        return err(&ifname.origin, e.to_string());
    }
    for inside in layer.inside.iter().flatten() {
        if inside.value == ifname.value {
            return err(
                &inside.origin,
                format!("{} is the external interface", inside.value),
            );
        }
        if let Err(e) = netdev::check_attachable(&inside.value) {
            return err(&inside.origin, e.to_string());
        }
    }
    // Redirect targets are the devices xnat forwards between.
    for dev in layer.xdp_redirect.iter().flatten() {
        let ours = dev.value == ifname.value
            || layer.inside.iter().flatten().any(|i| i.value == dev.value);
        if !ours {
            return err(
                &dev.origin,
                format!(
                    "{} is neither the external interface nor an inside interface",
                    dev.value
                ),
            );
        }
    }

    let maps = layer.maps.clone().unwrap_or_default();
    check_maps(&maps)?;

    let limits = Limits {
        max_mappings: table_size(&layer.max_mappings, nat_common::DEFAULT_MAX_MAPPINGS)?,
        max_sessions: table_size(&layer.max_sessions, nat_common::DEFAULT_MAX_SESSIONS)?,
    };
    let napt = if layer.napt_enabled() {
        Some(resolve_napt(layer, &ifname.value, &limits)?)
    } else {
        None
    };
    if let Some(n) = &napt {
        for m in &maps {
            let (private, public) = m.value;
            if n.pool.contains(&public) {
                return err(
                    &m.origin,
                    format!("{private}={public}: {public} is also a NAPT pool address"),
                );
            }
        }
    }

    let forwards = layer.forwards.clone().unwrap_or_default();
    check_forwards(&forwards, napt.as_ref(), &maps)?;
    let sync = sync::resolve(layer, napt.as_ref())?;
    let nat64 = nat64::resolve(layer, &ifname.value, napt.as_ref(), &maps)?;

    if let Some(Sourced {
        value: LogTarget::File(path),
        origin,
    }) = &layer.log_bindings
    {
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !parent.is_dir() {
            return err(
                origin,
                format!(
                    "{}: directory {} does not exist",
                    path.display(),
                    parent.display()
                ),
            );
        }
    }

    Ok(Settings {
        ifname: ifname.value.clone(),
        ingress: layer.ingress.as_ref().map_or(HookMode::Auto, |i| i.value),
        inside: values(&layer.inside),
        inside_hook: layer
            .inside_hook
            .as_ref()
            .map_or(HookMode::Auto, |i| i.value),
        xdp_redirect: values(&layer.xdp_redirect),
        keep: layer.keep.as_ref().is_some_and(|k| k.value),
        fast_path: layer.fast_path.as_ref().is_some_and(|k| k.value),
        static_maps: maps.iter().map(|m| m.value).collect(),
        napt,
        limits,
        forwards: forwards.iter().map(|f| f.value).collect(),
        metrics: layer.metrics.as_ref().map(|m| m.value),
        log_bindings: layer.log_bindings.as_ref().map(|l| l.value.clone()),
        ipfix: layer.ipfix.as_ref().map(|c| c.value),
        expiry_walk: layer
            .expiry_walk
            .as_ref()
            .map_or_else(ExpiryWalk::default, |w| w.value),
        sync,
        nat64,
    })
}

fn table_size(v: &Option<Sourced<u32>>, default: u32) -> Result<u32, SettingError> {
    match v {
        None => Ok(default),
        Some(s) if s.value == 0 || s.value > MAX_TABLE => err(
            &s.origin,
            format!("{} entries: expected 1 to {MAX_TABLE}", s.value),
        ),
        Some(s) => Ok(s.value),
    }
}

fn check_maps(maps: &[Sourced<(Ipv4Addr, Ipv4Addr)>]) -> Result<(), SettingError> {
    for (i, m) in maps.iter().enumerate() {
        let (private, public) = m.value;
        for a in [private, public] {
            if let Err(e) = check_usable(a) {
                return err(&m.origin, e.to_string());
            }
        }
        for earlier in &maps[..i] {
            let (p2, q2) = earlier.value;
            if p2 == private {
                return err(
                    &m.origin,
                    format!(
                        "private address {private} is mapped twice (to {q2} and {public}; first at {})",
                        earlier.origin
                    ),
                );
            }
            if q2 == public {
                return err(
                    &m.origin,
                    format!(
                        "public address {public} is mapped twice (from {p2} and {private}; first at {})",
                        earlier.origin
                    ),
                );
            }
        }
    }
    Ok(())
}

fn resolve_napt(
    layer: &Layer,
    ifname: &str,
    limits: &Limits,
) -> Result<NaptSettings, SettingError> {
    let internal: Vec<Sourced<Prefix>> = match &layer.internal {
        Some(v) => v.clone(),
        None => rfc1918()
            .into_iter()
            .map(|p| Sourced::new(p, Origin::flag("--internal (default)")))
            .collect(),
    };
    if internal.is_empty() || internal.len() > INTERNAL_MAX as usize {
        let origin = internal
            .first()
            .map_or(Origin::flag("--internal"), |p| p.origin.clone());
        return err(
            &origin,
            format!(
                "between 1 and {INTERNAL_MAX} internal prefixes, got {}",
                internal.len()
            ),
        );
    }

    let pool: Vec<Sourced<Ipv4Addr>> = match &layer.pool {
        Some(v) => v.clone(),
        None => {
            let origin = layer
                .napt
                .as_ref()
                .map_or(Origin::flag("--pool"), |n| n.origin.clone());
            match netdev::ipv4_addrs(ifname).unwrap_or_default().first() {
                Some(a) => vec![Sourced::new(*a, origin)],
                None => {
                    return err(
                        &origin,
                        format!(
                            "no pool given and {ifname} has no IPv4 address to masquerade behind"
                        ),
                    );
                }
            }
        }
    };
    if pool.is_empty() {
        return err(
            &layer
                .napt
                .as_ref()
                .map_or(Origin::flag("--pool"), |n| n.origin.clone()),
            "the pool has no address",
        );
    }
    if pool.len() > POOL_MAX as usize {
        return err(
            &pool[0].origin,
            format!("{} pool addresses, at most {POOL_MAX}", pool.len()),
        );
    }
    for (i, a) in pool.iter().enumerate() {
        if let Err(e) = check_usable(a.value) {
            return err(&a.origin, e.to_string());
        }
        if let Some(first) = pool[..i].iter().find(|b| b.value == a.value) {
            return err(
                &a.origin,
                format!(
                    "pool address {} is listed twice (first at {})",
                    a.value, first.origin
                ),
            );
        }
        if let Some(p) = internal.iter().find(|p| p.value.contains(a.value)) {
            return err(
                &a.origin,
                format!(
                    "pool address {} lies inside the internal prefix {} ({})",
                    a.value, p.value, p.origin
                ),
            );
        }
    }

    let ports = layer.ports.as_ref().map_or(PortRange::DEFAULT, |p| p.value);

    for (_, v) in layer.timeouts.clone().named() {
        if let Some(v) = v.filter(|v| v.value == 0) {
            return err(&v.origin, "a timeout must be at least 1 second");
        }
    }
    let timeouts = layer
        .timeouts
        .clone()
        .zip(Timeouts::default(), |given, default| {
            given.map_or(default, |v| v.value)
        });

    Ok(NaptSettings {
        internal: internal.iter().map(|p| p.value).collect(),
        pool: pool.iter().map(|a| a.value).collect(),
        ports,
        filtering: layer
            .filtering
            .as_ref()
            .map_or(Filtering::Address, |f| f.value),
        max_ports_per_host: layer.max_ports_per_host.as_ref().map_or(0, |m| m.value),
        max_inbound_sessions: max_inbound_sessions(layer, limits)?,
        timeouts,
        allocation: allocation(layer, &internal, pool.len() as u32, ports)?,
        tcp_pickup: layer.tcp_pickup.as_ref().map_or(TcpPickup::On, |t| t.value),
    })
}

/// Least ports per inside address a deterministic layout may leave
/// (`--min-ports-per-host`'s default).
pub const DEFAULT_MIN_PORTS_PER_HOST: u32 = 64;

/// `--allocation` with its layout worked out and checked.
fn allocation(
    layer: &Layer,
    internal: &[Sourced<Prefix>],
    pool_len: u32,
    ports: PortRange,
) -> Result<Allocation, SettingError> {
    let mode = layer.allocation.as_ref();
    let value = mode.map_or(AllocationMode::Dynamic, |m| m.value);
    let only = |flags: &[&Option<Sourced<u32>>], for_mode: AllocationMode, name: &str| match flags
        .iter()
        .copied()
        .flatten()
        .next()
    {
        Some(given) if value != for_mode => err(
            &given.origin,
            format!("applies to {name} allocation only (--allocation {name})"),
        ),
        _ => Ok(()),
    };
    only(
        &[&layer.ports_per_host, &layer.min_ports_per_host],
        AllocationMode::Deterministic,
        "deterministic",
    )?;
    only(
        &[
            &layer.block_size,
            &layer.max_blocks_per_host,
            &layer.block_hold_down,
        ],
        AllocationMode::Block,
        "block",
    )?;
    let origin = match (mode, value) {
        (_, AllocationMode::Dynamic) | (None, _) => return Ok(Allocation::Dynamic),
        (Some(m), AllocationMode::Block) => return block_allocation(layer, &m.origin, ports),
        (Some(m), AllocationMode::Deterministic) => &m.origin,
    };
    if let Some(cap) = layer.max_ports_per_host.as_ref().filter(|c| c.value != 0) {
        return err(
            &cap.origin,
            "does not apply to deterministic allocation: each inside address has its range \
             (--ports-per-host)",
        );
    }
    for (i, p) in internal.iter().enumerate() {
        if let Some(q) = internal[..i].iter().find(|q| q.value.overlaps(&p.value)) {
            return err(
                &p.origin,
                format!(
                    "internal prefix {} overlaps {} ({}): deterministic allocation numbers \
                     every inside address once",
                    p.value, q.value, q.origin
                ),
            );
        }
    }
    let hosts: u64 = internal.iter().map(|p| p.value.size()).sum();
    let given = layer.ports_per_host.as_ref();
    if let Some(g) = given.filter(|g| g.value == 0) {
        return err(&g.origin, "an inside address needs at least one port");
    }
    let layout = Layout::plan(
        hosts,
        pool_len,
        ports.min(),
        ports.max(),
        given.map(|g| g.value),
    )
    .or_else(|e| {
        let msg = match e {
            PlanError::TooManyHosts {
                hosts_per_addr,
                ports,
            } => format!(
                "deterministic allocation: {hosts} inside addresses over {pool_len} pool \
                 address(es) put {hosts_per_addr} on each, more than its {ports} ports; \
                 narrow --internal, add pool addresses or widen --ports"
            ),
            PlanError::TooFewRanges { fits, hosts } => format!(
                "deterministic allocation: {} ports per inside address leave room for {fits} \
                 of the {hosts} inside addresses ({pool_len} pool address(es), ports {ports})",
                given.map_or(0, |g| g.value)
            ),
        };
        err(given.map_or(origin, |g| &g.origin), msg)
    })?;
    let min = layer
        .min_ports_per_host
        .as_ref()
        .map_or(DEFAULT_MIN_PORTS_PER_HOST, |m| m.value);
    if layout.ports_per_host < min {
        return err(
            layer
                .min_ports_per_host
                .as_ref()
                .map_or(origin, |m| &m.origin),
            format!(
                "deterministic allocation leaves each of the {hosts} inside addresses {} ports \
                 ({} per pool address, ports {ports}), fewer than --min-ports-per-host {min}; \
                 narrow --internal, add pool addresses or widen --ports",
                layout.ports_per_host, layout.hosts_per_addr
            ),
        );
    }
    Ok(Allocation::Deterministic {
        hosts_per_addr: layout.hosts_per_addr,
        ports_per_host: layout.ports_per_host,
    })
}

/// `--allocation block` with its block size, cap and hold-down checked.
fn block_allocation(
    layer: &Layer,
    origin: &Origin,
    ports: PortRange,
) -> Result<Allocation, SettingError> {
    use nat_common::blocks::{
        DEFAULT_BLOCK_HOLD_DOWN, DEFAULT_BLOCK_SIZE, DEFAULT_MAX_BLOCKS_PER_HOST,
        MAX_BLOCKS_PER_HOST, MIN_BLOCK_SIZE,
    };
    if let Some(cap) = layer.max_ports_per_host.as_ref().filter(|c| c.value != 0) {
        return err(
            &cap.origin,
            "does not apply to block allocation: an inside address's cap is \
             --max-blocks-per-host blocks of --block-size ports",
        );
    }
    let size = layer.block_size.as_ref();
    let size_origin = size.map_or(origin, |s| &s.origin);
    let size = size.map_or(DEFAULT_BLOCK_SIZE, |s| s.value);
    let in_range = u32::from(ports.max()) - u32::from(ports.min()) + 1;
    if size < MIN_BLOCK_SIZE {
        return err(
            size_origin,
            format!("a port block holds at least {MIN_BLOCK_SIZE} ports (--block-size {size})"),
        );
    }
    if size > in_range {
        return err(
            size_origin,
            format!(
                "blocks of {size} ports do not fit the port range {ports} ({in_range} ports); \
                 use a smaller --block-size or widen --ports"
            ),
        );
    }
    let max = layer.max_blocks_per_host.as_ref();
    let max_per_host = max.map_or(DEFAULT_MAX_BLOCKS_PER_HOST, |m| m.value);
    if !(1..=MAX_BLOCKS_PER_HOST).contains(&max_per_host) {
        return err(
            max.map_or(origin, |m| &m.origin),
            format!("an inside address may hold 1 to {MAX_BLOCKS_PER_HOST} blocks"),
        );
    }
    Ok(Allocation::Block {
        size,
        max_per_host,
        hold_down: layer
            .block_hold_down
            .as_ref()
            .map_or(DEFAULT_BLOCK_HOLD_DOWN, |h| h.value),
    })
}

/// `--max-inbound-sessions`, by default half the session table; at most
/// the whole table (0: no cap).
fn max_inbound_sessions(layer: &Layer, limits: &Limits) -> Result<u32, SettingError> {
    match &layer.max_inbound_sessions {
        None => Ok(nat_common::default_max_inbound_sessions(
            limits.max_sessions,
        )),
        Some(s) if s.value > limits.max_sessions => err(
            &s.origin,
            format!(
                "{} inbound sessions: more than the session table holds ({}, --max-sessions)",
                s.value, limits.max_sessions
            ),
        ),
        Some(s) => Ok(s.value),
    }
}

fn check_forwards(
    forwards: &[Sourced<Forward>],
    napt: Option<&NaptSettings>,
    maps: &[Sourced<(Ipv4Addr, Ipv4Addr)>],
) -> Result<(), SettingError> {
    for (i, f) in forwards.iter().enumerate() {
        let Some(n) = napt else {
            return err(
                &f.origin,
                "port forwards need NAPT (a [napt] section, --masquerade, --pool or --internal)",
            );
        };
        let Forward {
            proto,
            public,
            inside,
        } = f.value;
        if !n.pool.contains(&public.0) {
            return err(&f.origin, format!("{} is not a pool address", public.0));
        }
        if !n.internal.iter().any(|p| p.contains(inside.0)) {
            return err(
                &f.origin,
                format!("{} is not inside any internal prefix", inside.0),
            );
        }
        if let Some(m) = maps.iter().find(|m| m.value.0 == inside.0) {
            return err(
                &f.origin,
                format!(
                    "{} is statically mapped ({}), so NAPT never sees its traffic",
                    inside.0, m.origin
                ),
            );
        }
        for earlier in &forwards[..i] {
            let e = earlier.value;
            if e.proto == proto && e.public == public {
                return err(
                    &f.origin,
                    format!(
                        "{} {}:{} is forwarded twice (first at {})",
                        proto.name(),
                        public.0,
                        public.1,
                        earlier.origin
                    ),
                );
            }
            if e.proto == proto && e.inside == inside {
                return err(
                    &f.origin,
                    format!(
                        "{} {}:{} is the target of two forwards (first at {}); one inside endpoint has one public endpoint",
                        proto.name(),
                        inside.0,
                        inside.1,
                        earlier.origin
                    ),
                );
            }
        }
    }
    Ok(())
}

/// `tcp` / `udp`.
pub fn proto_by_name(s: &str) -> Option<Proto> {
    match s {
        "tcp" => Some(Proto::Tcp),
        "udp" => Some(Proto::Udp),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag<T>(v: T, name: &str) -> Sourced<T> {
        Sourced::new(v, Origin::flag(name))
    }

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// Static maps checked as a list, as from flags.
    fn check_list(list: &[(Ipv4Addr, Ipv4Addr)]) -> Result<(), String> {
        let maps: Vec<_> = list.iter().map(|m| flag(*m, "--map")).collect();
        check_maps(&maps).map_err(|e| e.message)
    }

    #[test]
    fn list_rejects_duplicates() {
        let ok = [
            (a("10.0.0.2"), a("203.0.113.1")),
            (a("10.0.0.3"), a("203.0.113.2")),
        ];
        check_list(&ok).unwrap();
        let dup_priv = [
            (a("10.0.0.2"), a("203.0.113.1")),
            (a("10.0.0.2"), a("203.0.113.2")),
        ];
        let e = check_list(&dup_priv).unwrap_err();
        assert!(
            e.contains("private address 10.0.0.2 is mapped twice"),
            "{e}"
        );
        let dup_pub = [
            (a("10.0.0.2"), a("203.0.113.1")),
            (a("10.0.0.3"), a("203.0.113.1")),
        ];
        let e = check_list(&dup_pub).unwrap_err();
        assert!(
            e.contains("public address 203.0.113.1 is mapped twice"),
            "{e}"
        );
    }

    #[test]
    fn unusable_addresses_are_named() {
        for bad in ["0.0.0.0", "255.255.255.255", "224.0.0.1", "127.0.0.1"] {
            let e = check_list(&[(a(bad), a("203.0.113.1"))]).unwrap_err();
            assert!(e.starts_with(bad), "{e}");
        }
    }

    /// Errors about values given as flags name the flag.
    #[test]
    fn flag_errors_name_the_flag() {
        let base = Layer {
            ifname: Some(flag("lo".to_string(), "IFACE")),
            ..Layer::default()
        };
        let l = Layer {
            pool: Some(vec![flag("10.9.9.9".parse().unwrap(), "--pool")]),
            ..base.clone()
        };
        let e = resolve(&l, "x").unwrap_err().to_string();
        assert!(
            e.starts_with(
                "--pool: pool address 10.9.9.9 lies inside the internal prefix 10.0.0.0/8"
            ),
            "{e}"
        );
        let l = Layer {
            ifname: Some(flag("nosuch0".to_string(), "IFACE")),
            ..Layer::default()
        };
        assert_eq!(
            resolve(&l, "x").unwrap_err().to_string(),
            "IFACE: no such interface: nosuch0"
        );
        let e = resolve(&Layer::default(), "no interface given").unwrap_err();
        assert_eq!(e.to_string(), "IFACE: no interface given");
        let l = Layer {
            max_sessions: Some(flag(0, "--max-sessions")),
            ..base
        };
        assert!(
            resolve(&l, "x")
                .unwrap_err()
                .to_string()
                .starts_with("--max-sessions: 0 entries")
        );
    }

    /// The upper layer wins field by field; NAPT is on if any layer says so.
    #[test]
    fn xdp_redirect_names_our_own_interfaces_only() {
        let base = Layer {
            ifname: Some(flag("lo".to_string(), "IFACE")),
            ..Layer::default()
        };
        let l = Layer {
            xdp_redirect: Some(vec![flag("lo".to_string(), "--xdp-redirect")]),
            ..base.clone()
        };
        assert_eq!(
            resolve(&l, "x").unwrap().xdp_redirect,
            vec!["lo".to_string()]
        );
        let l = Layer {
            xdp_redirect: Some(vec![flag("veth9".to_string(), "--xdp-redirect")]),
            ..base
        };
        let e = resolve(&l, "x").unwrap_err().to_string();
        assert!(
            e.contains("--xdp-redirect")
                && e.contains("veth9 is neither the external interface nor an inside interface"),
            "{e}"
        );
    }

    /// NAPT settings are checked against each other; each error names
    /// the flag.
    #[test]
    fn napt_errors_name_the_flag() {
        let base = Layer {
            ifname: Some(flag("lo".to_string(), "IFACE")),
            pool: Some(vec![flag("198.51.100.1".parse().unwrap(), "--pool")]),
            ..Layer::default()
        };
        resolve(&base, "x").unwrap();
        let mut l = base.clone();
        l.pool
            .as_mut()
            .unwrap()
            .push(flag("198.51.100.1".parse().unwrap(), "--pool"));
        let e = resolve(&l, "x").unwrap_err().to_string();
        assert!(e.contains("--pool") && e.contains("listed twice"), "{e}");
        // A backwards `--ports` cannot make a layer: `PortRange` refuses it.
        assert!(PortRange::new(2000, 1000).is_err());
    }

    /// `resolve` checks NAT64 with the rest (the checks themselves:
    /// `nat64::tests`).
    #[test]
    fn nat64_is_resolved_with_the_rest() {
        let base = Layer {
            ifname: Some(flag("lo".to_string(), "IFACE")),
            nat64: Some(flag(nat64::Nat64Prefix::WELL_KNOWN, "--nat64")),
            ..Layer::default()
        };
        let e = resolve(&base, "x").unwrap_err().to_string();
        assert!(e.starts_with("--nat64: NAT64 needs NAPT"), "{e}");
        let l = Layer {
            pool: Some(vec![flag("198.51.100.1".parse().unwrap(), "--pool")]),
            ..base
        };
        let e = resolve(&l, "x").unwrap_err().to_string();
        assert!(
            e.starts_with("--nat64: NAT64 needs at least one inside interface"),
            "{e}"
        );
        let l = Layer { nat64: None, ..l };
        assert_eq!(resolve(&l, "x").unwrap().nat64, None);
        // A host prefix without NAT64 has nothing to apply to: refused.
        let l = Layer {
            nat64_host_prefix: Some(flag(64, "--nat64-host-prefix")),
            ..l
        };
        let e = resolve(&l, "x").unwrap_err().to_string();
        assert_eq!(
            e,
            "--nat64-host-prefix: the NAT64 host prefix applies to NAT64's IPv6 hosts: it needs \
             NAT64 (--nat64 or a [nat64] table)"
        );
    }

    /// `--nat64-host-prefix`: with NAT64, 32 to 128 (an error names the
    /// flag), 64 when not given; the flag over the file's key.
    #[test]
    fn nat64_host_prefix_is_checked() {
        let base = Layer {
            ifname: Some(flag("lo".to_string(), "IFACE")),
            inside: Some(vec![flag("lan0".to_string(), "--inside")]),
            pool: Some(vec![flag("198.51.100.1".parse().unwrap(), "--pool")]),
            nat64: Some(flag(nat64::Nat64Prefix::WELL_KNOWN, "--nat64")),
            ..Layer::default()
        };
        // NAT64's own checks (`resolve` would look for `lan0`).
        let host_prefix = |l: &Layer| {
            let napt = napt_of(l).unwrap();
            nat64::check(l, napt.as_ref(), &[], &[]).map(|s| s.unwrap().host_prefix)
        };
        assert_eq!(host_prefix(&base), Ok(64));
        for len in [32u8, 48, 64, 127, 128] {
            let l = Layer {
                nat64_host_prefix: Some(flag(len, "--nat64-host-prefix")),
                ..base.clone()
            };
            assert_eq!(host_prefix(&l), Ok(len));
        }
        for len in [0u8, 16, 31, 129, 200] {
            let l = Layer {
                nat64_host_prefix: Some(flag(len, "--nat64-host-prefix")),
                ..base.clone()
            };
            let e = host_prefix(&l).unwrap_err().to_string();
            assert!(
                e.starts_with(
                    "--nat64-host-prefix: the NAT64 host prefix is a length from 32 to 128"
                ) && e.ends_with(&format!("not {len}")),
                "{e}"
            );
        }
        let file = Layer {
            nat64_host_prefix: Some(flag(56, "nat64.host-prefix")),
            ..base.clone()
        };
        let flags = Layer {
            nat64_host_prefix: Some(flag(128, "--nat64-host-prefix")),
            ..Layer::default()
        };
        assert_eq!(host_prefix(&flags.over(file)), Ok(128));
    }

    #[test]
    fn layers_merge_field_by_field() {
        let file = Layer {
            napt: Some(flag(true, "napt")),
            ports: Some(flag(PortRange::new(1, 2).unwrap(), "file ports")),
            filtering: Some(flag(Filtering::AddressAndPort, "file filtering")),
            ..Layer::default()
        };
        let flags = Layer {
            ports: Some(flag(PortRange::new(3, 4).unwrap(), "--ports")),
            ..Layer::default()
        };
        let l = flags.over(file);
        assert_eq!(l.ports.unwrap().value.to_string(), "3-4");
        assert_eq!(l.filtering.unwrap().value, Filtering::AddressAndPort);
        assert!(l.napt.unwrap().value);
    }
}
