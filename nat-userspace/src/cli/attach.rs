//! `xnat attach [IFACE] [--config FILE] ...`: settings from the file with
//! the flags over them, checked as a whole; then attach (or adopt the
//! pinned state a previous agent left running) and run the agent.
use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
};

use nat_userspace::{
    agent::lifecycle,
    settings::HookMode,
    settings::config,
    settings::napt::{Prefix, Timeouts},
    settings::nat64::Nat64Prefix,
    settings::{
        self, ExpiryWalk, Layer, LogTarget, NaptFlags, Origin, Settings, Sourced,
        napt::{Allocation, TcpPickup},
    },
    settings::{ephemeral, nat64},
    tables::forward::Forward,
    tables::pins,
};

use super::addr::{Mapping, parse_mapping, parse_nat64_mapping, parse_nat64_prefix, parse_pool};
use nat_userspace::agent::daemon::Daemon;

/// What to say when no layer names the interface.
pub const NO_IFACE: &str = "no interface: name it on the command line (`xnat attach IFACE`) \
                            or in the config file (`interface = \"eth0\"`)";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// External interface (the one facing the public network) [default:
    /// `interface` from --config].
    pub iface: Option<String>,

    /// TOML file with any of the settings below (see README); flags given
    /// as well override it. `xnat reload` and SIGHUP re-read it.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Static 1:1 mapping PRIVATE=PUBLIC; repeat for more.
    #[arg(long = "map", value_name = "PRIV=PUB", value_parser = parse_mapping)]
    pub maps: Vec<Mapping>,

    /// Hook for inbound translation: XDP, TC, or auto (XDP on physical
    /// NICs, TC on virtual devices such as veth) [default: auto].
    #[arg(long, value_enum)]
    pub ingress: Option<HookMode>,

    /// Hook of the outbound fast path on the --inside interfaces: XDP (in
    /// front of the TC program, for packets that come off a wire: complete
    /// checksums), TC only, or auto (XDP on physical NICs, TC on virtual
    /// devices) [default: auto].
    #[arg(long, value_enum, value_name = "HOOK")]
    pub inside_hook: Option<HookMode>,

    /// Virtual devices (the external or an inside interface) that take XDP
    /// redirects, e.g. a veth whose peer has an XDP program; physical NICs
    /// running an xnat XDP program always do.
    #[arg(long, value_name = "IFACE", value_delimiter = ',')]
    pub xdp_redirect: Vec<String>,

    /// On SIGINT/SIGTERM leave the programs attached (their pins keep them
    /// running) instead of detaching; a later `attach` adopts them.
    #[arg(long)]
    pub keep: bool,

    /// Inside interface (repeatable): hairpinned traffic between inside
    /// hosts through their public endpoints is translated there.
    #[arg(long, value_name = "IFACE", value_delimiter = ',')]
    pub inside: Vec<String>,

    /// Forward established flows in BPF (FIB lookup + redirect), skipping
    /// the kernel's forwarding: inbound from the external interface, and
    /// outbound from the --inside interfaces. New flows, unresolved
    /// neighbours, TTL <= 1 and traffic for the gateway itself take the
    /// normal path. With XDP ingress, a veth inside interface's peer needs
    /// an XDP program to receive redirected frames.
    #[arg(long)]
    pub fast_path: bool,

    /// Serve Prometheus metrics on ADDR:PORT (e.g. 127.0.0.1:9469).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,

    /// Write the translation log (binding created/deleted, JSON lines) to
    /// FILE, or to stdout with `-`.
    #[arg(long, value_name = "FILE|-")]
    pub log_bindings: Option<String>,

    /// Export the same binding events as IPFIX (RFC 7011, NAT event
    /// records of RFC 8158) over UDP to the collector at ADDR:PORT.
    #[arg(long, value_name = "ADDR:PORT")]
    pub ipfix: Option<SocketAddr>,

    /// Where the expiry sweep walks the mappings: `kernel` (default) walks
    /// them in the kernel, deleting the expired ones where they lie; `user`
    /// reads them out in batches, for about twice the CPU. The sweep reads
    /// them out anyway whenever it needs them (translation log,
    /// --max-ports-per-host, pinned hosts, the orphan scan).
    #[arg(long, value_enum, value_name = "WHERE")]
    pub expiry_walk: Option<ExpiryWalk>,

    #[command(flatten)]
    pub napt: NaptArgs,

    #[command(flatten)]
    pub nat64: Nat64Args,

    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Stateful NAT64 (RFC 6146): IPv6 hosts on the inside interfaces reach
/// IPv4 hosts through NAPT's pool and bindings.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "NAT64")]
pub struct Nat64Args {
    /// Stateful NAT64: IPv6 hosts on the --inside interfaces reach the IPv4
    /// host a.b.c.d at PREFIX::a.b.c.d, with NAPT bindings on the pool.
    /// PREFIX is an RFC 6052 prefix (/32, /40, /48, /56, /64 or /96)
    /// [default: 64:ff9b::/96]. Needs NAPT and --inside.
    #[arg(
        long,
        value_name = "PREFIX",
        num_args = 0..=1,
        default_missing_value = "64:ff9b::/96",
        value_parser = parse_nat64_prefix
    )]
    pub nat64: Option<Nat64Prefix>,

    /// Static NAT64: the IPv6 inside host IPV6 has the public IPv4 address
    /// IPV4 to itself (every port, both ways); repeat for more. Switches
    /// NAT64 on.
    #[arg(long = "nat64-map", value_name = "IPV6=IPV4", value_parser = parse_nat64_mapping)]
    pub nat64_maps: Vec<(Ipv6Addr, Ipv4Addr)>,

    /// With --max-ports-per-host: the IPv6 hosts of one /LEN share one
    /// cap, as a subscriber's LAN picks new addresses at will (privacy
    /// addresses); 128 caps each address alone. 32 to 128 [default: 64].
    #[arg(long = "nat64-host-prefix", value_name = "LEN")]
    pub nat64_host_prefix: Option<u8>,
}

/// Binding sync: announce the mappings made here to peer gateways and
/// install theirs (active/standby failover). Needs NAPT.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Binding sync")]
pub struct SyncArgs {
    /// This gateway's sync socket (UDP), e.g. 192.0.2.10:4790; needs
    /// --sync-peer.
    #[arg(long, value_name = "ADDR:PORT")]
    pub sync_listen: Option<SocketAddr>,

    /// A peer gateway's sync socket (repeatable): mappings are announced
    /// to it, and datagrams are accepted only from the peers' addresses.
    #[arg(long = "sync-peer", value_name = "ADDR:PORT", value_delimiter = ',')]
    pub sync_peers: Vec<SocketAddr>,

    /// Shared secret (at least 16 bytes, not readable by every user): each
    /// datagram carries its HMAC-SHA256, and datagrams without a valid one
    /// are rejected.
    #[arg(long, value_name = "FILE")]
    pub sync_key_file: Option<PathBuf>,

    /// Seconds between full re-announcements of the mappings carried here
    /// (1-120) [default: 30].
    #[arg(long, value_name = "SECS")]
    pub sync_refresh: Option<u32>,
}

/// Dynamic NAPT (masquerade). Enabled by --masquerade, --pool or
/// --internal (or a [napt] section in the config file).
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Dynamic NAPT")]
pub struct NaptArgs {
    /// Enable NAPT with the defaults: the RFC 1918 ranges behind the
    /// interface's primary IPv4 address.
    #[arg(long)]
    pub masquerade: bool,

    /// Inside prefixes whose sources are translated [default: 10.0.0.0/8,
    /// 172.16.0.0/12, 192.168.0.0/16].
    #[arg(long, value_name = "CIDR", value_delimiter = ',')]
    pub internal: Vec<Prefix>,

    /// Public addresses: ADDR or FIRST-LAST, repeatable or comma-separated
    /// [default: the interface's primary IPv4 address].
    #[arg(long, value_name = "ADDR[-ADDR]", value_delimiter = ',', value_parser = parse_pool)]
    pub pool: Vec<Vec<std::net::Ipv4Addr>>,

    /// --ports, --filtering, --max-*: see `settings::napt_settings!`.
    #[command(flatten)]
    pub settings: NaptFlags,

    /// Idle timeouts in seconds, e.g. udp=300,tcp-established=7440,
    /// tcp-transitory=240,tcp-syn-in=60,icmp=60 (unnamed ones keep their
    /// default).
    #[arg(long = "timeout", value_name = "NAME=SECS,...", value_parser = Timeouts::<Option<u32>>::parse)]
    pub timeouts: Option<Timeouts<Option<u32>>>,
}

fn some_vec<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn flag<T>(value: T, name: &str) -> Sourced<T> {
    Sourced::new(value, Origin::flag(name))
}

impl Args {
    /// The command line as a settings layer (only what was given).
    pub fn layer(&self) -> Layer {
        let n = &self.napt;
        let t = n.timeouts.unwrap_or_default();
        Layer {
            ifname: self.iface.clone().map(|i| flag(i, "IFACE")),
            ingress: self.ingress.map(|i| flag(i, "--ingress")),
            inside: some_vec(
                self.inside
                    .iter()
                    .map(|i| flag(i.clone(), "--inside"))
                    .collect(),
            ),
            inside_hook: self.inside_hook.map(|i| flag(i, "--inside-hook")),
            xdp_redirect: some_vec(
                self.xdp_redirect
                    .iter()
                    .map(|i| flag(i.clone(), "--xdp-redirect"))
                    .collect(),
            ),
            keep: self.keep.then(|| flag(true, "--keep")),
            fast_path: self.fast_path.then(|| flag(true, "--fast-path")),
            maps: some_vec(
                self.maps
                    .iter()
                    .map(|m| {
                        flag(
                            (m.private, m.public),
                            &format!("--map {}={}", m.private, m.public),
                        )
                    })
                    .collect(),
            ),
            napt: n.masquerade.then(|| flag(true, "--masquerade")),
            internal: some_vec(n.internal.iter().map(|p| flag(*p, "--internal")).collect()),
            pool: some_vec(
                n.pool
                    .iter()
                    .flatten()
                    .map(|a| flag(*a, "--pool"))
                    .collect(),
            ),
            timeouts: t.map(|name, v| v.map(|v| flag(v, &format!("--timeout {name}")))),
            forwards: None::<Vec<Sourced<Forward>>>,
            metrics: self.metrics.map(|m| flag(m, "--metrics")),
            log_bindings: self
                .log_bindings
                .as_deref()
                .map(|l| flag(LogTarget::parse(l), "--log-bindings")),
            ipfix: self.ipfix.map(|c| flag(c, "--ipfix")),
            expiry_walk: self.expiry_walk.map(|w| flag(w, "--expiry-walk")),
            sync_listen: self.sync.sync_listen.map(|a| flag(a, "--sync-listen")),
            sync_peers: some_vec(
                self.sync
                    .sync_peers
                    .iter()
                    .map(|a| flag(*a, "--sync-peer"))
                    .collect(),
            ),
            sync_key_file: self
                .sync
                .sync_key_file
                .clone()
                .map(|p| flag(p, "--sync-key-file")),
            sync_refresh: self.sync.sync_refresh.map(|r| flag(r, "--sync-refresh")),
            nat64: self.nat64.nat64.map(|p| flag(p, "--nat64")),
            nat64_host_prefix: self
                .nat64
                .nat64_host_prefix
                .map(|l| flag(l, "--nat64-host-prefix")),
            nat64_maps: some_vec(
                self.nat64
                    .nat64_maps
                    .iter()
                    .map(|&(inside, public)| {
                        flag((inside, public), &format!("--nat64-map {inside}={public}"))
                    })
                    .collect(),
            ),
            ..n.settings.layer()
        }
    }
}

/// Loads the config file (if any) under the flags and resolves it all.
pub fn settings_from(
    config_path: Option<&std::path::Path>,
    flags: Layer,
) -> anyhow::Result<Settings> {
    let file = match config_path {
        Some(p) => config::load(p)?,
        None => Layer::default(),
    };
    Ok(settings::resolve(&flags.over(file), NO_IFACE)?)
}

/// Warns (stderr) of what the settings allow but an operator would not
/// want: for `attach` and `xnat check`.
pub fn warn_about(s: &Settings) {
    if let Some(w) = s.napt.as_ref().and_then(ephemeral::check) {
        tracing::warn!("{w}");
    }
    if let Some(w) = s
        .nat64
        .as_ref()
        .and_then(|n| nat64::route_warning(n, &s.ifname))
    {
        tracing::warn!("{w}");
    }
}

/// One line describing settings, for the ready line and `xnat check`.
pub fn describe(s: &Settings) -> String {
    let mut out = format!("{} static mapping(s)", s.static_maps.len());
    if let Some(n) = &s.napt {
        let list = |v: Vec<String>| v.join(",");
        out.push_str(&format!(
            ", NAPT {} -> {} ports {} filtering {}",
            list(n.internal.iter().map(ToString::to_string).collect()),
            list(n.pool.iter().map(ToString::to_string).collect()),
            n.ports,
            n.filtering.name(),
        ));
        if n.tcp_pickup == TcpPickup::Off {
            out.push_str(", TCP pickup off");
        }
        match n.allocation {
            Allocation::Dynamic => {}
            Allocation::Deterministic {
                hosts_per_addr,
                ports_per_host,
            } => out.push_str(&format!(
                ", deterministic allocation: {ports_per_host} ports per inside address, \
                 {hosts_per_addr} per pool address"
            )),
            Allocation::Block {
                size,
                max_per_host,
                hold_down,
            } => out.push_str(&format!(
                ", block allocation: blocks of {size} ports, up to {max_per_host} per inside \
                 address, released {hold_down} s after their last use"
            )),
        }
    }
    if let Some(n) = &s.nat64 {
        out.push_str(&format!(", NAT64 {}", n.prefix));
        if !n.maps.is_empty() {
            out.push_str(&format!(" ({} static)", n.maps.len()));
        }
        // The cap's unit for IPv6 hosts (nothing to say without a cap).
        if s.napt.as_ref().is_some_and(|n| n.max_ports_per_host != 0) {
            out.push_str(&format!(", port cap per IPv6 /{}", n.host_prefix));
        }
    }
    if !s.forwards.is_empty() {
        out.push_str(&format!(", {} forward(s)", s.forwards.len()));
    }
    if let Some(m) = s.metrics {
        out.push_str(&format!(", metrics on {m}"));
    }
    if let Some(l) = &s.log_bindings {
        out.push_str(&format!(", translation log to {l}"));
    }
    if let Some(c) = &s.ipfix {
        out.push_str(&format!(", IPFIX to {c}"));
    }
    if let Some(y) = &s.sync {
        out.push_str(&format!(", {}", settings::sync::describe(y)));
    }
    out
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // SIGHUP means "reload" once the agent runs; until its handler is in
    // place, an early one (a reload racing the start) must not kill it.
    // SAFETY: setting a signal disposition; no handler code runs.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let flags = args.layer();
    let settings = settings_from(args.config.as_deref(), flags.clone())?;
    let dir = pins::iface_dir(&settings.ifname)?;
    // The lock, ports and files first: a failure here leaves nothing
    // attached.
    let lock = lifecycle::lock(&settings)?;
    let daemon = Daemon::prepare(
        &settings,
        args.config.as_deref().map(config::absolute),
        flags,
        &dir,
    )?;
    // From here a SIGTERM waits for the agent's handler (see hold_signals).
    nat_userspace::agent::hold_signals();
    let running = lifecycle::start(&settings, lock)?;
    // The records the log needs from the first packet on, before the ready
    // line lets traffic start.
    daemon.want_events(&running.dir)?;
    // Only once attached: a refused attach says why and nothing else.
    warn_about(&settings);
    let how = if running.adopted {
        format!("adopted the running attachment ({})", running.changes)
    } else {
        format!("ingress: {}, egress: tc", running.ingress)
    };
    let inside = if settings.inside.is_empty() {
        String::new()
    } else {
        format!(", inside {}", settings.inside.join(","))
    };
    println!(
        "xnat: attached to {} ({how}{inside}), {}; state in {}",
        running.ifname,
        describe(&settings),
        running.dir.display()
    );
    nat_userspace::agent::run(running, daemon)?;
    Ok(ExitCode::SUCCESS)
}
