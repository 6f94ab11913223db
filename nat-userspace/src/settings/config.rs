//! The config file (`xnat attach --config FILE`, `xnat check`): TOML that
//! says everything the flags can say. It becomes a settings [`Layer`]
//! under the command line's. Unknown keys are errors; every error names
//! the file, the line and column, and the key.
//!
//! ```toml
//! interface = "eth0"
//! ingress = "auto"                  # auto | xdp | tc
//! inside = ["lan0"]                 # hairpinning
//! inside-hook = "auto"              # auto | xdp | tc (fast path on inside interfaces)
//! xdp-redirect = []                 # virtual devices that take XDP redirects
//! keep = true
//! metrics = "127.0.0.1:9469"
//! log-bindings = "/var/log/xnat/bindings.jsonl"   # or "-" for stdout
//! ipfix = "192.0.2.50:4739"       # IPFIX collector (RFC 8158 NAT events)
//! expiry-walk = "kernel"         # or "user" (see `xnat attach --help`)
//!
//! [[map]]
//! private = "10.0.0.2"
//! public = "203.0.113.1"
//!
//! [napt]                            # present: NAPT on
//! internal = ["10.0.0.0/8"]
//! pool = ["198.51.100.1-198.51.100.4"]
//! ports = "1024-65535"
//! filtering = "address"
//! max-ports-per-host = 0
//! max-mappings = 131072
//! max-sessions = 262144
//! timeouts = { udp = 300, tcp-established = 7440, tcp-transitory = 240, icmp = 60 }
//!
//! [[forward]]
//! proto = "tcp"
//! public = "198.51.100.1:8080"
//! inside = "10.0.0.5:80"
//!
//! [nat64]                           # present: stateful NAT64 on (needs [napt], inside)
//! prefix = "64:ff9b::/96"           # RFC 6052 prefix [default: 64:ff9b::/96]
//! host-prefix = 64                  # hosts of one /64 share max-ports-per-host [default: 64]
//!
//! [[nat64.map]]                     # static NAT64: an IPv6 host's own IPv4 address
//! inside = "2001:db8::10"
//! public = "203.0.113.10"
//!
//! [sync]                            # binding sync with peer gateways
//! listen = "192.0.2.10:4790"
//! peers = ["192.0.2.11:4790"]
//! key-file = "/etc/xnat/sync.key"   # optional shared secret (HMAC)
//! refresh = 30
//! ```
use std::{
    fmt,
    marker::PhantomData,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    ops::Range,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Deserializer, de};
use toml::Spanned;

use crate::{
    settings::HookMode,
    settings::napt::{AllocationMode, Filtering, PortRange, Prefix, TcpPickup, Timeouts},
    settings::nat64::Nat64Prefix,
    settings::parse,
    settings::{ExpiryWalk, Layer, LogTarget, Origin, Sourced, TimeoutLayer, proto_by_name},
    tables::forward::Forward,
};

/// A config file that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {err}")]
    Read { path: String, err: std::io::Error },
    /// A file that users other than root (or the one running xnat) may
    /// change.
    #[error("{path}: {message}; refusing it (it decides what the NAT lets through)")]
    Unsafe { path: String, message: String },
    /// A syntax error, a wrong type, an unknown or missing key, or a value
    /// that does not parse.
    #[error("{path}:{line}:{col}: {}{message}", key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
    Invalid {
        path: String,
        line: usize,
        col: usize,
        key: Option<String>,
        message: String,
    },
}

/// Parses a value from a TOML string with one of the `parse` functions,
/// so a bad value is reported by serde with its key and position.
struct Parsed<T, P>(T, PhantomData<P>);

trait Parser<T> {
    const EXPECTED: &'static str;
    fn parse(s: &str) -> Result<T, String>;
}

impl<'de, T, P: Parser<T>> Deserialize<'de> for Parsed<T, P> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, P>(PhantomData<(T, P)>);
        impl<T, P: Parser<T>> de::Visitor<'_> for V<T, P> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(P::EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
                P::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_str(V::<T, P>(PhantomData))
            .map(|v| Parsed(v, PhantomData))
    }
}

macro_rules! parser {
    ($name:ident, $t:ty, $expected:literal, $f:expr) => {
        struct $name;
        impl Parser<$t> for $name {
            const EXPECTED: &'static str = $expected;
            fn parse(s: &str) -> Result<$t, String> {
                $f(s)
            }
        }
    };
}

parser!(Addr, Ipv4Addr, "an IPv4 address as a string", parse::ipv4);
parser!(Addr6, Ipv6Addr, "an IPv6 address as a string", parse::ipv6);
parser!(
    Nat64Pfx,
    Nat64Prefix,
    "a prefix PREFIX/LEN as a string",
    parse::nat64_prefix
);
parser!(
    PoolItem,
    Vec<Ipv4Addr>,
    "an address or a range FIRST-LAST as a string",
    parse::pool_item
);
parser!(
    Ports,
    PortRange,
    "a port range MIN-MAX as a string",
    parse::port_range
);
parser!(
    Endpoint,
    (Ipv4Addr, u16),
    "ADDRESS:PORT as a string",
    parse::endpoint
);
parser!(
    Cidr,
    Prefix,
    "a prefix ADDRESS/LEN as a string",
    |s: &str| s.parse::<Prefix>()
);
parser!(Listen, SocketAddr, "ADDRESS:PORT as a string", |s: &str| s
    .parse::<SocketAddr>()
    .map_err(|_| format!("'{s}' is not ADDRESS:PORT")));
parser!(
    ProtoName,
    crate::tables::forward::Proto,
    "\"tcp\" or \"udp\"",
    |s: &str| proto_by_name(s)
        .ok_or_else(|| format!("unknown protocol '{s}' (expected tcp or udp)"))
);
parser!(Iface, String, "an interface name as a string", |s: &str| {
    if s.is_empty() || s.len() >= libc::IFNAMSIZ || s.contains(['/', ' ']) {
        Err(format!("'{s}' is not a valid interface name"))
    } else {
        Ok(s.to_string())
    }
});

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    interface: Option<Spanned<Parsed<String, Iface>>>,
    ingress: Option<Spanned<HookMode>>,
    inside: Option<Vec<Spanned<Parsed<String, Iface>>>>,
    inside_hook: Option<Spanned<HookMode>>,
    xdp_redirect: Option<Vec<Spanned<Parsed<String, Iface>>>>,
    keep: Option<Spanned<bool>>,
    fast_path: Option<Spanned<bool>>,
    metrics: Option<Spanned<Parsed<SocketAddr, Listen>>>,
    log_bindings: Option<Spanned<String>>,
    ipfix: Option<Spanned<Parsed<SocketAddr, Listen>>>,
    expiry_walk: Option<Spanned<ExpiryWalk>>,
    map: Option<Vec<Spanned<RawMap>>>,
    napt: Option<Spanned<RawNapt>>,
    forward: Option<Vec<Spanned<RawForward>>>,
    sync: Option<RawSync>,
    nat64: Option<Spanned<RawNat64>>,
}

/// The `[nat64]` table (its presence switches NAT64 on).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNat64 {
    prefix: Option<Spanned<Parsed<Nat64Prefix, Nat64Pfx>>>,
    #[serde(rename = "host-prefix")]
    host_prefix: Option<Spanned<u8>>,
    map: Option<Vec<Spanned<RawNat64Map>>>,
}

/// One `[[nat64.map]]` entry (static NAT64).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNat64Map {
    inside: Parsed<Ipv6Addr, Addr6>,
    public: Parsed<Ipv4Addr, Addr>,
}

/// The `[sync]` table (binding sync).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSync {
    listen: Option<Spanned<Parsed<SocketAddr, Listen>>>,
    peers: Option<Vec<Spanned<Parsed<SocketAddr, Listen>>>>,
    #[serde(alias = "key_file")]
    key_file: Option<Spanned<String>>,
    refresh: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    private: Parsed<Ipv4Addr, Addr>,
    public: Parsed<Ipv4Addr, Addr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForward {
    proto: Parsed<crate::tables::forward::Proto, ProtoName>,
    public: Parsed<(Ipv4Addr, u16), Endpoint>,
    inside: Parsed<(Ipv4Addr, u16), Endpoint>,
}

/// One `pool` item: an address or a range.
type PoolEntry = Parsed<Vec<Ipv4Addr>, PoolItem>;

/// `ports = "MIN-MAX"`, parsed as `--ports` is.
impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Parsed::<PortRange, Ports>::deserialize(d).map(|p| p.0)
    }
}

/// Makes the `[napt]` table: the lists and tables below, then one key per
/// `napt_settings!` entry (with its span, so its origin is
/// `FILE:LINE:COL: napt.KEY`).
macro_rules! raw_napt {
    ($( $(#[doc = $doc:literal])* $field:ident: $ty:ty = $name:literal [$($clap:tt)*], )*) => {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        struct RawNapt {
            internal: Option<Vec<Spanned<Parsed<Prefix, Cidr>>>>,
            pool: Option<Vec<Spanned<PoolEntry>>>,
            $( #[serde(rename = $name)] $field: Option<Spanned<$ty>>, )*
            timeouts: Option<Timeouts<Option<Spanned<u32>>>>,
        }

        impl Ctx<'_> {
            /// The `napt_settings!` entries of `n` as a layer (the rest unset).
            fn napt_settings(&self, n: &mut RawNapt) -> Layer {
                Layer {
                    $( $field: n.$field.take().map(|s| self.sourced(s, concat!("napt.", $name))), )*
                    ..Layer::default()
                }
            }
        }
    };
}
super::napt_settings!(raw_napt);

/// Byte offset → 1-based line and column.
struct Lines<'a>(&'a str);

impl Lines<'_> {
    fn at(&self, offset: usize) -> (usize, usize) {
        let before = &self.0[..offset.min(self.0.len())];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rfind('\n')
            .map_or(before.len(), |i| before.len() - i - 1)
            + 1;
        (line, col)
    }
}

/// Builds the origins of values from one file.
struct Ctx<'a> {
    path: &'a str,
    lines: Lines<'a>,
}

impl Ctx<'_> {
    fn origin(&self, span: Range<usize>, key: &str) -> Origin {
        let (line, col) = self.lines.at(span.start);
        Origin(format!("{}:{line}:{col}: {key}", self.path))
    }

    fn sourced<T>(&self, s: Spanned<T>, key: &str) -> Sourced<T> {
        let origin = self.origin(s.span(), key);
        Sourced::new(s.into_inner(), origin)
    }
}

/// The dotted key of a serde path (`napt.pool[1]`), without the private
/// segments `toml::Spanned` adds.
fn key_of(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut key = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: k } if k.contains("__serde_spanned") => {}
            Segment::Map { key: k } | Segment::Enum { variant: k } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            Segment::Unknown => {}
        }
    }
    (!key.is_empty()).then_some(key)
}

/// Reads and parses `path` into a settings layer.
pub fn load(path: &Path) -> Result<Layer, ConfigError> {
    let read_err = |err| ConfigError::Read {
        path: path.display().to_string(),
        err,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    check_writers(&meta).map_err(|message| ConfigError::Unsafe {
        path: path.display().to_string(),
        message,
    })?;
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    parse_str(&text, &path.display().to_string())
}

/// Like sshd's StrictModes: whoever may write the config file controls
/// the NAT (maps, forwards, filtering), so only root (or the user running
/// xnat) may. Refuses a file owned by another user, writable by every
/// user, or writable by a group other than root's.
pub fn check_writers(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let mode = meta.mode() & 0o7777;
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(format!("owned by uid {} (chown root)", meta.uid()));
    }
    if mode & 0o002 != 0 {
        return Err(format!(
            "writable by every user (mode {mode:04o}; chmod o-w)"
        ));
    }
    if mode & 0o020 != 0 && meta.gid() != 0 {
        return Err(format!(
            "writable by group {} (mode {mode:04o}; chmod g-w)",
            meta.gid()
        ));
    }
    Ok(())
}

/// Parses config text; `path` is only used in messages and origins.
pub fn parse_str(text: &str, path: &str) -> Result<Layer, ConfigError> {
    let ctx = Ctx {
        path,
        lines: Lines(text),
    };
    let invalid = |span: Option<Range<usize>>, key: Option<String>, message: String| {
        let (line, col) = span.map_or((1, 1), |s| ctx.lines.at(s.start));
        ConfigError::Invalid {
            path: path.to_string(),
            line,
            col,
            key,
            message,
        }
    };
    let de = toml::Deserializer::parse(text)
        .map_err(|e| invalid(e.span(), None, e.message().trim().to_string()))?;
    let raw: RawFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = key_of(e.path());
        let inner = e.into_inner();
        invalid(inner.span(), key, inner.message().trim().to_string())
    })?;
    Ok(ctx.layer(raw))
}

impl Ctx<'_> {
    fn ifaces(&self, v: Vec<Spanned<Parsed<String, Iface>>>, key: &str) -> Vec<Sourced<String>> {
        v.into_iter()
            .enumerate()
            .map(|(i, s)| {
                let s = self.sourced(s, &format!("{key}[{i}]"));
                Sourced::new(s.value.0, s.origin)
            })
            .collect()
    }

    fn layer(&self, raw: RawFile) -> Layer {
        let sync = raw.sync.map_or_else(Layer::default, |s| self.sync(s));
        let nat64 = raw.nat64.map_or_else(Layer::default, |n| self.nat64(n));
        Layer {
            nat64: nat64.nat64,
            nat64_maps: nat64.nat64_maps,
            nat64_host_prefix: nat64.nat64_host_prefix,
            sync_listen: sync.sync_listen,
            sync_peers: sync.sync_peers,
            sync_key_file: sync.sync_key_file,
            sync_refresh: sync.sync_refresh,
            ifname: raw.interface.map(|s| {
                let s = self.sourced(s, "interface");
                Sourced::new(s.value.0, s.origin)
            }),
            ingress: raw.ingress.map(|s| self.sourced(s, "ingress")),
            inside: raw.inside.map(|v| self.ifaces(v, "inside")),
            inside_hook: raw.inside_hook.map(|s| self.sourced(s, "inside-hook")),
            xdp_redirect: raw.xdp_redirect.map(|v| self.ifaces(v, "xdp-redirect")),
            keep: raw.keep.map(|s| self.sourced(s, "keep")),
            fast_path: raw.fast_path.map(|s| self.sourced(s, "fast-path")),
            metrics: raw.metrics.map(|s| {
                let s = self.sourced(s, "metrics");
                Sourced::new(s.value.0, s.origin)
            }),
            log_bindings: raw.log_bindings.map(|s| {
                let s = self.sourced(s, "log-bindings");
                Sourced::new(LogTarget::parse(&s.value), s.origin)
            }),
            ipfix: raw.ipfix.map(|s| {
                let s = self.sourced(s, "ipfix");
                Sourced::new(s.value.0, s.origin)
            }),
            expiry_walk: raw.expiry_walk.map(|s| self.sourced(s, "expiry-walk")),
            maps: raw.map.map(|v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let s = self.sourced(s, &format!("map[{i}]"));
                        Sourced::new((s.value.private.0, s.value.public.0), s.origin)
                    })
                    .collect()
            }),
            forwards: raw.forward.map(|v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let s = self.sourced(s, &format!("forward[{i}]"));
                        let f = Forward {
                            proto: s.value.proto.0,
                            public: s.value.public.0,
                            inside: s.value.inside.0,
                        };
                        Sourced::new(f, s.origin)
                    })
                    .collect()
            }),
            ..raw.napt.map_or_else(Layer::default, |n| self.napt(n))
        }
    }

    /// The `[sync]` table.
    fn sync(&self, s: RawSync) -> Layer {
        let addr = |s: Spanned<Parsed<SocketAddr, Listen>>, key: &str| {
            let s = self.sourced(s, key);
            Sourced::new(s.value.0, s.origin)
        };
        Layer {
            sync_listen: s.listen.map(|l| addr(l, "sync.listen")),
            sync_peers: s.peers.map(|v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, p)| addr(p, &format!("sync.peers[{i}]")))
                    .collect()
            }),
            sync_key_file: s.key_file.map(|k| {
                let k = self.sourced(k, "sync.key-file");
                Sourced::new(PathBuf::from(k.value), k.origin)
            }),
            sync_refresh: s.refresh.map(|r| self.sourced(r, "sync.refresh")),
            ..Layer::default()
        }
    }

    /// The `[nat64]` table: present, NAT64 is on (with the well-known
    /// prefix unless `prefix` says otherwise).
    fn nat64(&self, n: Spanned<RawNat64>) -> Layer {
        let table = self.origin(n.span(), "nat64");
        let n = n.into_inner();
        let prefix = match n.prefix {
            Some(p) => {
                let p = self.sourced(p, "nat64.prefix");
                Sourced::new(p.value.0, p.origin)
            }
            None => Sourced::new(Nat64Prefix::WELL_KNOWN, table),
        };
        Layer {
            nat64: Some(prefix),
            nat64_host_prefix: n.host_prefix.map(|l| self.sourced(l, "nat64.host-prefix")),
            nat64_maps: n.map.map(|v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let s = self.sourced(s, &format!("nat64.map[{i}]"));
                        Sourced::new((s.value.inside.0, s.value.public.0), s.origin)
                    })
                    .collect()
            }),
            ..Layer::default()
        }
    }

    /// The `[napt]` table (its presence switches NAPT on).
    fn napt(&self, n: Spanned<RawNapt>) -> Layer {
        let origin = self.origin(n.span(), "napt");
        let mut n = n.into_inner();
        Layer {
            napt: Some(Sourced::new(true, origin)),
            internal: n.internal.take().map(|v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let s = self.sourced(s, &format!("napt.internal[{i}]"));
                        Sourced::new(s.value.0, s.origin)
                    })
                    .collect()
            }),
            pool: n.pool.take().map(|v| {
                let mut out = Vec::new();
                for (i, s) in v.into_iter().enumerate() {
                    let s = self.sourced(s, &format!("napt.pool[{i}]"));
                    for a in s.value.0 {
                        out.push(Sourced::new(a, s.origin.clone()));
                    }
                }
                out
            }),
            timeouts: n.timeouts.take().map_or_else(TimeoutLayer::default, |t| {
                t.map(|name, v| v.map(|s| self.sourced(s, &format!("napt.timeouts.{name}"))))
            }),
            ..self.napt_settings(&mut n)
        }
    }
}

/// The path as given, made absolute so a reload finds the same file
/// whatever the agent's working directory.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Settings, resolve};

    const FILE: &str = "/etc/xnat/test.toml";

    /// Parses and resolves `text` (interface `lo`, which every Linux host
    /// has); returns the one-line error as the CLI prints it.
    fn check(text: &str) -> Result<Settings, String> {
        let layer = parse_str(text, FILE).map_err(|e| e.to_string())?;
        resolve(&layer, "no interface").map_err(|e| e.to_string())
    }

    fn bad(text: &str, expect: &[&str]) {
        let e = check(text).expect_err(text);
        for x in expect {
            assert!(e.contains(x), "error for\n{text}\nis {e:?}, lacks {x:?}");
        }
        assert!(!e.contains('\n'), "multi-line error {e:?}");
        assert!(!e.contains("__serde"), "internal names leak: {e:?}");
    }

    const GOOD: &str = r#"
interface = "lo"
ingress = "tc"
keep = true
metrics = "127.0.0.1:9469"
log-bindings = "-"
expiry-walk = "user"

[[map]]
private = "10.0.0.2"
public = "203.0.113.1"

[napt]
internal = ["10.0.0.0/8", "192.168.0.0/16"]
pool = ["198.51.100.1-198.51.100.4"]
ports = "2000-40000"
filtering = "endpoint-independent"
max-ports-per-host = 100
max-mappings = 1000
max-sessions = 2000
timeouts = { udp = 30, icmp = 10 }

[[forward]]
proto = "tcp"
public = "198.51.100.1:8080"
inside = "10.0.0.5:80"
"#;

    #[test]
    fn a_full_config_resolves() {
        let s = check(GOOD).unwrap();
        assert_eq!(s.ifname, "lo");
        assert_eq!(s.ingress, HookMode::Tc);
        assert!(s.keep);
        assert_eq!(s.static_maps.len(), 1);
        let n = s.napt.unwrap();
        assert_eq!(n.pool.len(), 4);
        assert_eq!(n.ports.to_string(), "2000-40000");
        assert_eq!(n.filtering, Filtering::EndpointIndependent);
        assert_eq!(n.timeouts.udp, 30);
        assert_eq!(n.timeouts.icmp, 10);
        assert_eq!(n.timeouts.tcp_established, 7440);
        assert_eq!(s.limits.max_mappings, 1000);
        assert_eq!(s.forwards.len(), 1);
        assert_eq!(s.metrics.unwrap().port(), 9469);
        assert_eq!(s.log_bindings, Some(LogTarget::Stdout));
        assert_eq!(s.expiry_walk, ExpiryWalk::User);
        assert_eq!(
            check("interface = \"lo\"\n").unwrap().expiry_walk,
            ExpiryWalk::Kernel,
            "the default"
        );
    }

    #[test]
    fn flags_override_the_file() {
        let file = parse_str(GOOD, FILE).unwrap();
        let flags = Layer {
            ports: Some(Sourced::new(
                PortRange::new(5000, 6000).unwrap(),
                Origin::flag("--ports"),
            )),
            maps: Some(vec![]),
            ..Layer::default()
        };
        let s = resolve(&flags.over(file), "x").unwrap();
        assert_eq!(s.napt.unwrap().ports.to_string(), "5000-6000");
        assert!(s.static_maps.is_empty());
    }

    #[test]
    fn empty_napt_section_enables_masquerade_defaults() {
        // lo's only address is loopback: the default pool is unusable, and
        // the error says where NAPT was switched on.
        bad(
            "interface = \"lo\"\n[napt]\n",
            &["test.toml:2:1: napt:", "loopback"],
        );
    }

    // ---- At least ten kinds of bad config, each named by file:line:col and key ----

    #[test]
    fn syntax_error() {
        bad("interface = \"lo\n", &["test.toml:1:", "string"]);
    }

    #[test]
    fn unknown_key() {
        bad(
            "interface = \"lo\"\ninterfaces = [\"eth0\"]\n",
            &[
                "test.toml:2:1: interfaces: unknown field `interfaces`",
                "expected one of",
            ],
        );
    }

    #[test]
    fn unknown_nested_key() {
        bad(
            "interface = \"lo\"\n[napt]\npools = [\"198.51.100.1\"]\n",
            &["test.toml:3:1: napt.pools: unknown field `pools`"],
        );
        bad(
            "interface = \"lo\"\n[napt.timeouts]\ntcp = 5\n",
            &["test.toml:3:1: napt.timeouts.tcp: unknown field `tcp`"],
        );
    }

    #[test]
    fn wrong_type() {
        bad(
            "interface = \"lo\"\nkeep = \"yes\"\n",
            &["test.toml:2:8: keep: invalid type: string \"yes\", expected a boolean"],
        );
        bad(
            "interface = \"lo\"\n[napt]\nmax-ports-per-host = -1\n",
            &["test.toml:3:22: napt.max-ports-per-host: invalid value: integer `-1`"],
        );
    }

    #[test]
    fn deterministic_allocation() {
        let s = check(
            "interface = \"lo\"\n[napt]\ninternal = [\"100.64.0.0/22\"]\n\
             pool = [\"198.51.100.1-198.51.100.4\"]\nallocation = \"deterministic\"\n",
        )
        .unwrap();
        assert_eq!(
            s.napt.unwrap().allocation,
            crate::settings::napt::Allocation::Deterministic {
                hosts_per_addr: 256,
                ports_per_host: 252
            }
        );
        bad(
            "interface = \"lo\"\n[napt]\ninternal = [\"10.0.0.0/24\"]\npool = [\"198.51.100.1\"]\n\
             ports-per-host = 100\n",
            &["test.toml:5:18: napt.ports-per-host: applies to deterministic allocation only"],
        );
        bad(
            "interface = \"lo\"\n[napt]\ninternal = [\"10.0.0.0/16\"]\npool = [\"198.51.100.1\"]\n\
             allocation = \"deterministic\"\n",
            &[
                "test.toml:5:14: napt.allocation: deterministic allocation: 65536 inside addresses \
                 over 1 pool address(es) put 65536 on each, more than its 64512 ports",
            ],
        );
        bad(
            "interface = \"lo\"\n[napt]\ninternal = [\"10.0.0.0/17\"]\npool = [\"198.51.100.1\"]\n\
             allocation = \"deterministic\"\n",
            &[
                "test.toml:5:14: napt.allocation: deterministic allocation leaves each of the 32768 \
                 inside addresses 1 ports",
                "fewer than --min-ports-per-host 64",
            ],
        );
        bad(
            "interface = \"lo\"\n[napt]\ninternal = [\"10.0.0.0/24\"]\npool = [\"198.51.100.1\"]\n\
             allocation = \"blocks\"\n",
            &["napt.allocation: unknown variant `blocks`"],
        );
    }

    #[test]
    fn block_allocation() {
        const NAPT: &str = "interface = \"lo\"\n[napt]\ninternal = [\"10.0.0.0/24\"]\n\
                            pool = [\"198.51.100.1\"]\n";
        let s = check(&format!("{NAPT}allocation = \"block\"\n")).unwrap();
        assert_eq!(
            s.napt.unwrap().allocation,
            crate::settings::napt::Allocation::Block {
                size: 256,
                max_per_host: 8,
                hold_down: 60
            }
        );
        let s = check(&format!(
            "{NAPT}allocation = \"block\"\nblock-size = 100\nmax-blocks-per-host = 16\n\
             block-hold-down = 0\n"
        ))
        .unwrap();
        assert_eq!(
            s.napt.unwrap().allocation,
            crate::settings::napt::Allocation::Block {
                size: 100,
                max_per_host: 16,
                hold_down: 0
            }
        );
        bad(
            &format!("{NAPT}block-size = 128\n"),
            &["test.toml:5:14: napt.block-size: applies to block allocation only"],
        );
        bad(
            &format!("{NAPT}allocation = \"block\"\nblock-size = 32\n"),
            &["napt.block-size: a port block holds at least 64 ports"],
        );
        bad(
            &format!("{NAPT}allocation = \"block\"\nports = \"2000-2099\"\nblock-size = 128\n"),
            &["blocks of 128 ports do not fit the port range 2000-2099 (100 ports)"],
        );
        bad(
            &format!("{NAPT}allocation = \"block\"\nmax-blocks-per-host = 17\n"),
            &["napt.max-blocks-per-host: an inside address may hold 1 to 16 blocks"],
        );
        bad(
            &format!("{NAPT}allocation = \"block\"\nmax-ports-per-host = 100\n"),
            &["napt.max-ports-per-host: does not apply to block allocation"],
        );
        bad(
            &format!("{NAPT}allocation = \"block\"\nports-per-host = 100\n"),
            &["napt.ports-per-host: applies to deterministic allocation only"],
        );
    }

    #[test]
    fn tcp_pickup() {
        use crate::settings::napt::TcpPickup;
        const NAPT: &str = "interface = \"lo\"\n[napt]\ninternal = [\"10.0.0.0/24\"]\n\
                            pool = [\"198.51.100.1\"]\n";
        // On unless said otherwise, under every allocation.
        for alloc in [
            "",
            "allocation = \"deterministic\"\n",
            "allocation = \"block\"\n",
        ] {
            let s = check(&format!("{NAPT}{alloc}")).unwrap();
            assert_eq!(s.napt.unwrap().tcp_pickup, TcpPickup::On, "{alloc}");
        }
        let s = check(&format!("{NAPT}tcp-pickup = \"off\"\n")).unwrap();
        let n = s.napt.unwrap();
        assert_eq!(n.tcp_pickup, TcpPickup::Off);
        assert_eq!(n.config().tcp_pickup, nat_common::TCP_PICKUP_OFF);
        let s = check(&format!("{NAPT}tcp-pickup = \"on\"\n")).unwrap();
        assert_eq!(s.napt.unwrap().tcp_pickup, TcpPickup::On);
        bad(
            &format!("{NAPT}tcp-pickup = \"loose\"\n"),
            &["test.toml:5:14: napt.tcp-pickup: unknown variant `loose`, expected `on` or `off`"],
        );
        bad(
            &format!("{NAPT}tcp-pickup = true\n"),
            &["test.toml:5:14: napt.tcp-pickup: wanted string or table"],
        );
    }

    #[test]
    fn bad_address() {
        bad(
            "interface = \"lo\"\n[[map]]\nprivate = \"10.0.0.300\"\npublic = \"203.0.113.1\"\n",
            &["test.toml:3:11: map[0].private: '10.0.0.300' is not an IPv4 address"],
        );
    }

    #[test]
    fn missing_key() {
        bad(
            "interface = \"lo\"\n[[map]]\nprivate = \"10.0.0.2\"\n",
            &["test.toml:2:1: map[0]: missing field `public`"],
        );
        bad(
            "[[map]]\nprivate = \"10.0.0.2\"\npublic = \"203.0.113.1\"\n",
            &["no interface"],
        );
    }

    #[test]
    fn prefix_with_host_bits() {
        bad(
            "interface = \"lo\"\n[napt]\ninternal = [\"10.0.0.1/8\"]\npool = [\"198.51.100.1\"]\n",
            &[
                "test.toml:3:13: napt.internal[0]:",
                "did you mean 10.0.0.0/8",
            ],
        );
    }

    #[test]
    fn bad_port_range() {
        bad(
            "interface = \"lo\"\n[napt]\npool = [\"198.51.100.1\"]\nports = \"2000-1000\"\n",
            &["test.toml:4:9: napt.ports: range '2000-1000' ends before it starts"],
        );
        bad(
            "interface = \"lo\"\n[napt]\npool = [\"198.51.100.1\"]\nports = 1024\n",
            &["test.toml:4:9: napt.ports: invalid type: integer `1024`, expected a port range"],
        );
    }

    #[test]
    fn unknown_enum_value() {
        bad(
            "interface = \"lo\"\n[napt]\npool = [\"198.51.100.1\"]\nfiltering = \"adress\"\n",
            &[
                "test.toml:4:13: napt.filtering: unknown variant `adress`",
                "address-and-port",
            ],
        );
        bad(
            "interface = \"lo\"\ningress = \"fast\"\n",
            &["test.toml:2:11: ingress: unknown variant `fast`"],
        );
        bad(
            "interface = \"lo\"\nexpiry-walk = \"bpf\"\n",
            &[
                "test.toml:2:15: expiry-walk: unknown variant `bpf`",
                "kernel",
            ],
        );
    }

    #[test]
    fn zero_timeout() {
        bad(
            "interface = \"lo\"\n[napt]\npool = [\"198.51.100.1\"]\ntimeouts = { udp = 0 }\n",
            &["test.toml:4:20: napt.timeouts.udp: a timeout must be at least 1 second"],
        );
    }

    #[test]
    fn pool_inside_internal() {
        bad(
            "interface = \"lo\"\n[napt]\ninternal = [\"10.0.0.0/8\"]\npool = [\"198.51.100.1\", \"10.9.9.9\"]\n",
            &[
                "test.toml:4:25: napt.pool[1]: pool address 10.9.9.9 lies inside the internal prefix 10.0.0.0/8",
                "test.toml:3:13: napt.internal[0]",
            ],
        );
    }

    #[test]
    fn pool_range_too_big_or_twice() {
        bad(
            "interface = \"lo\"\n[napt]\npool = [\"198.51.100.0-198.51.101.0\"]\n",
            &[
                "test.toml:3:9: napt.pool[0]: range",
                "more than 64 addresses",
            ],
        );
        bad(
            "interface = \"lo\"\n[napt]\npool = [\"198.51.100.1-198.51.100.3\", \"198.51.100.2\"]\n",
            &[
                "napt.pool[1]: pool address 198.51.100.2 is listed twice",
                "napt.pool[0]",
            ],
        );
    }

    #[test]
    fn static_map_conflicts() {
        bad(
            "interface = \"lo\"\n[[map]]\nprivate = \"10.0.0.2\"\npublic = \"203.0.113.1\"\n\
             [[map]]\nprivate = \"10.0.0.2\"\npublic = \"203.0.113.2\"\n",
            &[
                "test.toml:5:1: map[1]: private address 10.0.0.2 is mapped twice",
                "test.toml:2:1: map[0]",
            ],
        );
        bad(
            "interface = \"lo\"\n[[map]]\nprivate = \"10.0.0.2\"\npublic = \"198.51.100.1\"\n\
             [napt]\npool = [\"198.51.100.1\"]\n",
            &[
                "test.toml:2:1: map[0]: 10.0.0.2=198.51.100.1: 198.51.100.1 is also a NAPT pool address",
            ],
        );
        bad(
            "interface = \"lo\"\n[[map]]\nprivate = \"10.0.0.2\"\npublic = \"224.0.0.1\"\n",
            &["test.toml:2:1: map[0]: 224.0.0.1 cannot be mapped: it is a multicast address"],
        );
    }

    #[test]
    fn forward_problems() {
        bad(
            "interface = \"lo\"\n[[forward]]\nproto = \"tcp\"\npublic = \"198.51.100.1:80\"\ninside = \"10.0.0.5:80\"\n",
            &["test.toml:2:1: forward[0]: port forwards need NAPT"],
        );
        bad(
            "interface = \"lo\"\n[napt]\npool = [\"198.51.100.1\"]\n\
             [[forward]]\nproto = \"tcp\"\npublic = \"198.51.100.9:80\"\ninside = \"10.0.0.5:80\"\n",
            &["test.toml:4:1: forward[0]: 198.51.100.9 is not a pool address"],
        );
        bad(
            "interface = \"lo\"\n[napt]\npool = [\"198.51.100.1\"]\n\
             [[forward]]\nproto = \"sctp\"\npublic = \"198.51.100.1:80\"\ninside = \"10.0.0.5:80\"\n",
            &["test.toml:5:9: forward[0].proto: unknown protocol 'sctp'"],
        );
        bad(
            "interface = \"lo\"\n[napt]\npool = [\"198.51.100.1\"]\n\
             [[forward]]\nproto = \"udp\"\npublic = \"198.51.100.1\"\ninside = \"10.0.0.5:80\"\n",
            &["test.toml:6:10: forward[0].public: expected ADDRESS:PORT"],
        );
    }

    #[test]
    fn unknown_interface() {
        bad(
            "interface = \"nosuch0\"\n",
            &["test.toml:1:13: interface: no such interface: nosuch0"],
        );
        bad(
            "interface = \"lo\"\ninside = [\"lo\"]\n",
            &["test.toml:2:11: inside[0]: lo is the external interface"],
        );
        bad(
            "interface = \"a/b\"\n",
            &["test.toml:1:13: interface: 'a/b' is not a valid interface name"],
        );
    }

    #[test]
    fn bad_limits_and_outputs() {
        bad(
            "interface = \"lo\"\n[napt]\npool = [\"198.51.100.1\"]\nmax-mappings = 0\n",
            &["test.toml:4:16: napt.max-mappings: 0 entries: expected 1 to"],
        );
        bad(
            "interface = \"lo\"\nmetrics = \"localhost\"\n",
            &["test.toml:2:11: metrics: 'localhost' is not ADDRESS:PORT"],
        );
        bad(
            "interface = \"lo\"\nlog-bindings = \"/nonexistent-dir/x.jsonl\"\n",
            &[
                "test.toml:2:16: log-bindings:",
                "directory /nonexistent-dir does not exist",
            ],
        );
    }

    /// `[sync]`: its keys, and errors naming the file, line and key.
    #[test]
    fn sync_section() {
        let napt = "[napt]\ninternal = [\"10.0.0.0/24\"]\npool = [\"198.51.100.1\"]\n\
                    allocation = \"deterministic\"\n";
        let s = check(&format!(
            "interface = \"lo\"\n{napt}[sync]\nlisten = \"192.0.2.10:4790\"\n\
             peers = [\"192.0.2.11:4790\", \"192.0.2.12:4790\"]\nrefresh = 10\n"
        ))
        .unwrap()
        .sync
        .unwrap();
        assert_eq!(s.listen.to_string(), "192.0.2.10:4790");
        assert_eq!(s.peers.len(), 2);
        assert_eq!(s.refresh, 10);
        assert!(s.key.is_none());
        bad(
            &format!("interface = \"lo\"\n{napt}[sync]\nlisten = \"192.0.2.10:4790\"\n"),
            &["test.toml:7:10: sync.listen: binding sync needs at least one peer"],
        );
        bad(
            &format!("interface = \"lo\"\n{napt}[sync]\npeers = [\"192.0.2.11:4790\"]\n"),
            &["test.toml:7:10: sync.peers[0]: binding sync needs this gateway's own"],
        );
        bad(
            "interface = \"lo\"\n[napt]\npool = [\"198.51.100.1\"]\nallocation = \"block\"\n\
             [sync]\nlisten = \"192.0.2.10:4790\"\npeers = [\"192.0.2.11:4790\"]\n",
            &["sync.listen: binding sync does not support block allocation yet"],
        );
        bad(
            &format!(
                "interface = \"lo\"\n{napt}[sync]\nlisten = \"192.0.2.10:4790\"\n\
                 peers = [\"192.0.2.11:4790\"]\nkey-file = \"/nonexistent/key\"\n"
            ),
            &["test.toml:9:12: sync.key-file: /nonexistent/key: No such file"],
        );
        bad(
            &format!("interface = \"lo\"\n{napt}[sync]\nlisten = \"x\"\n"),
            &["test.toml:7:10: sync.listen: 'x' is not ADDRESS:PORT"],
        );
        bad(
            &format!("interface = \"lo\"\n{napt}[sync]\nport = 1\n"),
            &["unknown field `port`"],
        );
    }

    /// `[nat64]`: present, NAT64 is on (the well-known prefix unless
    /// `prefix` says otherwise; `[[nat64.map]]` alone switches it on too);
    /// every error names the file, line and key.
    #[test]
    fn nat64_table() {
        use crate::settings::nat64::{Nat64Prefix, Nat64Settings, check};
        const NAPT: &str = "interface = \"lo\"\ninside = [\"lan0\"]\n[napt]\n\
                            internal = [\"10.0.0.0/24\"]\npool = [\"198.51.100.1\"]\n";
        // The NAT64 checks of `resolve`, without its look at this
        // machine's devices (`lan0` need not exist).
        let nat64 = |text: &str| -> Result<Option<Nat64Settings>, String> {
            let layer = parse_str(text, FILE).map_err(|e| e.to_string())?;
            let napt = crate::settings::napt_of(&layer).map_err(|e| e.to_string())?;
            let maps = layer.maps.clone().unwrap_or_default();
            check(&layer, napt.as_ref(), &maps, &[]).map_err(|e| e.to_string())
        };
        let bad = |text: &str, expect: &str| {
            let e = nat64(text).expect_err(text);
            assert_eq!(e, expect, "for\n{text}");
        };
        assert_eq!(nat64(NAPT), Ok(None));
        let s = nat64(&format!("{NAPT}[nat64]\n")).unwrap().unwrap();
        assert_eq!(s.prefix, Nat64Prefix::WELL_KNOWN);
        let s = nat64(&format!("{NAPT}[nat64]\nprefix = \"2001:db8:64::/64\"\n"))
            .unwrap()
            .unwrap();
        assert_eq!(s.prefix.to_string(), "2001:db8:64::/64");
        let s = nat64(&format!(
            "{NAPT}[[nat64.map]]\ninside = \"2001:db8::10\"\npublic = \"203.0.113.10\"\n\
             [[nat64.map]]\ninside = \"2001:db8::11\"\npublic = \"203.0.113.11\"\n"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(s.prefix, Nat64Prefix::WELL_KNOWN);
        assert_eq!(
            s.maps,
            vec![
                (
                    "2001:db8::10".parse().unwrap(),
                    "203.0.113.10".parse().unwrap()
                ),
                (
                    "2001:db8::11".parse().unwrap(),
                    "203.0.113.11".parse().unwrap()
                ),
            ]
        );

        bad(
            &format!("{NAPT}[nat64]\nprefix = \"64:ff9b::/80\"\n"),
            "/etc/xnat/test.toml:7:10: nat64.prefix: 64:ff9b::/80: the prefix length must be \
             32, 40, 48, 56, 64 or 96 (RFC 6052)",
        );
        bad(
            &format!("{NAPT}[nat64]\nprefix = \"2001:db8::1/64\"\n"),
            "/etc/xnat/test.toml:7:10: nat64.prefix: 2001:db8::1/64: the prefix has bits set \
             past its length",
        );
        bad(
            &format!("{NAPT}[nat64]\nprefix = \"2001:db8:0:0:ff00::/96\"\n"),
            "/etc/xnat/test.toml:7:10: nat64.prefix: 2001:db8:0:0:ff00::/96: bits 64 to 71 of \
             the prefix (the \"u\" octet) must be zero (RFC 6052)",
        );
        // The host prefix of the port cap: /64 unless given, 32 to 128.
        assert_eq!(s.host_prefix, 64);
        let s = nat64(&format!("{NAPT}[nat64]\nhost-prefix = 56\n"))
            .unwrap()
            .unwrap();
        assert_eq!((s.prefix, s.host_prefix), (Nat64Prefix::WELL_KNOWN, 56));
        let s = nat64(&format!("{NAPT}[nat64]\nhost-prefix = 128\n"))
            .unwrap()
            .unwrap();
        assert_eq!(s.host_prefix, 128);
        for len in [0, 31, 129, 255] {
            bad(
                &format!("{NAPT}[nat64]\nhost-prefix = {len}\n"),
                &format!(
                    "/etc/xnat/test.toml:7:15: nat64.host-prefix: the NAT64 host prefix is a \
                     length from 32 to 128 (64: the hosts of one /64 share a port cap; 128: \
                     each address has its own), not {len}"
                ),
            );
        }
        let e = nat64(&format!("{NAPT}[nat64]\nhost-prefix = 300\n")).unwrap_err();
        assert!(
            e.starts_with("/etc/xnat/test.toml:7:15: nat64.host-prefix: invalid value"),
            "{e}"
        );
        let e = nat64(&format!("{NAPT}[nat64]\nhost-prefix = \"64\"\n")).unwrap_err();
        assert!(
            e.starts_with("/etc/xnat/test.toml:7:15: nat64.host-prefix: invalid type"),
            "{e}"
        );
        bad(
            &format!("{NAPT}[nat64]\nprefix = 96\n"),
            "/etc/xnat/test.toml:7:10: nat64.prefix: invalid type: integer `96`, expected a \
             prefix PREFIX/LEN as a string",
        );
        let e = nat64(&format!("{NAPT}[nat64]\nprefx = \"64:ff9b::/96\"\n")).unwrap_err();
        assert!(
            e.starts_with("/etc/xnat/test.toml:7:1: nat64.prefx: unknown field `prefx`"),
            "{e}"
        );
        bad(
            &format!("{NAPT}[[nat64.map]]\ninside = \"10.0.0.1\"\npublic = \"203.0.113.10\"\n"),
            "/etc/xnat/test.toml:7:10: nat64.map[0].inside: '10.0.0.1' is not an IPv6 address",
        );
        bad(
            &format!("{NAPT}[[nat64.map]]\ninside = \"2001:db8::10\"\npublic = \"198.51.100.1\"\n"),
            "/etc/xnat/test.toml:6:1: nat64.map[0]: 2001:db8::10=198.51.100.1: 198.51.100.1 is \
             also a NAPT pool address",
        );
        bad(
            "interface = \"lo\"\ninside = [\"lan0\"]\n[nat64]\n",
            "/etc/xnat/test.toml:3:1: nat64: NAT64 needs NAPT (--masquerade, --pool or a [napt] \
             table): its bindings are NAPT bindings on the pool",
        );
        bad(
            "interface = \"lo\"\n[napt]\npool = [\"198.51.100.1\"]\n[nat64]\n",
            "/etc/xnat/test.toml:4:1: nat64: NAT64 needs at least one inside interface \
             (--inside): the IPv6 inside interfaces take the NAT64 program",
        );
        bad(
            &format!("{NAPT}allocation = \"deterministic\"\n[nat64]\n"),
            "/etc/xnat/test.toml:7:1: nat64: NAT64 supports dynamic allocation only (for now); \
             the allocation is deterministic (/etc/xnat/test.toml:6:14: napt.allocation)",
        );
        bad(
            &format!(
                "{NAPT}[nat64]\n[sync]\nlisten = \"192.0.2.10:4790\"\n\
                 peers = [\"192.0.2.11:4790\"]\n"
            ),
            "/etc/xnat/test.toml:6:1: nat64: binding sync carries IPv4 inside hosts only, so \
             NAT64 cannot be used with it (/etc/xnat/test.toml:8:10: sync.listen)",
        );

        // The flag over the file: its prefix, its origin.
        let file = parse_str(&format!("{NAPT}[nat64]\n"), FILE).unwrap();
        let flags = crate::settings::Layer {
            nat64: Some(Sourced::new(
                "2001:db8:64::/96".parse().unwrap(),
                Origin::flag("--nat64"),
            )),
            ..crate::settings::Layer::default()
        };
        let both = flags.over(file);
        let p = both.nat64.unwrap();
        assert_eq!(p.value.to_string(), "2001:db8:64::/96");
        assert_eq!(p.origin.0, "--nat64");
    }

    /// A config file others may write is refused, naming the problem; an
    /// ordinary 0644 or 0600 file is read.
    #[test]
    fn config_writable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let path =
            std::env::temp_dir().join(format!("xnat-config-mode-{}.toml", std::process::id()));
        std::fs::write(&path, "interface = \"lo\"\n").unwrap();
        for (mode, ok) in [(0o644, true), (0o600, true), (0o666, false), (0o602, false)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            match load(&path) {
                Ok(_) => assert!(ok, "mode {mode:o} accepted"),
                Err(e) => {
                    assert!(!ok, "mode {mode:o} refused: {e}");
                    let msg = e.to_string();
                    assert!(
                        msg.contains("writable by every user") && msg.contains("chmod o-w"),
                        "{msg}"
                    );
                }
            }
        }
        let _ = std::fs::remove_file(&path);
    }

    /// A value of each type `napt_settings!` uses, as a flag gives it and
    /// as the file does.
    trait Sample {
        const FLAG: &'static str;
        const TOML: &'static str;
    }
    impl Sample for u32 {
        const FLAG: &'static str = "7";
        const TOML: &'static str = "7";
    }
    impl Sample for PortRange {
        const FLAG: &'static str = "2000-3000";
        const TOML: &'static str = "\"2000-3000\"";
    }
    impl Sample for Filtering {
        const FLAG: &'static str = "address-and-port";
        const TOML: &'static str = "\"address-and-port\"";
    }
    impl Sample for crate::settings::napt::TcpPickup {
        const FLAG: &'static str = "off";
        const TOML: &'static str = "\"off\"";
    }
    impl Sample for crate::settings::napt::AllocationMode {
        const FLAG: &'static str = "deterministic";
        const TOML: &'static str = "\"deterministic\"";
    }

    /// Every `napt_settings!` entry is the flag `--NAME` and the key `NAME`
    /// in `[napt]`, each value with its origin, and the flag wins.
    macro_rules! check_entries {
        ($( $(#[doc = $doc:literal])* $field:ident: $ty:ty = $name:literal [$($clap:tt)*], )*) => {{
            use clap::{Args as _, FromArgMatches as _};
            $(
                let text = format!("[napt]\n{} = {}\n", $name, <$ty as Sample>::TOML);
                let file = parse_str(&text, FILE).unwrap();
                let given = file.$field.clone().expect($name);
                assert_eq!(given.origin.0, format!("{FILE}:2:{}: napt.{}", $name.len() + 4, $name));

                let cmd = crate::settings::NaptFlags::augment_args(clap::Command::new("t"));
                let arg = cmd.get_arguments().find(|a| a.get_id() == stringify!($field)).unwrap();
                assert_eq!(arg.get_long(), Some($name));
                assert!(arg.get_help().is_some(), "--{} has no help", $name);
                let m = cmd
                    .try_get_matches_from(["t", concat!("--", $name), <$ty as Sample>::FLAG])
                    .unwrap();
                let flags = crate::settings::NaptFlags::from_arg_matches(&m).unwrap().layer();
                let both = flags.over(file);
                let v = both.$field.expect($name);
                assert_eq!(v.origin.0, concat!("--", $name));
                // The flag and the key read the same text the same way.
                assert_eq!(v.value, given.value);
            )*
        }};
    }

    #[test]
    fn each_napt_setting_is_a_flag_and_a_key() {
        crate::settings::napt_settings!(check_entries);
    }
}
