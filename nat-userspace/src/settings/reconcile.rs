//! Bringing a live attachment to the [`Settings`] of a config, touching only
//! what differs: `xnat reload` / SIGHUP, a restarted agent adopting pinned
//! state, and a fresh attach (from [`Live::fresh`], before its programs
//! are attached). The only writer of the tables' settings (CONFIG, POOL,
//! INTERNAL, static maps, forwards, the fast path's switch, NAT64's
//! prefix and its static entries).
//!
//! Entries in both the tables and the settings are left alone, so their
//! flows never notice. Static maps and forwards that the settings no longer
//! name are removed (and stop matching at once); new ones are added. NAPT
//! parameters (timeouts, filtering, port range, per-host cap, TCP pickup)
//! are rewritten in CONFIG in place; existing bindings keep their public
//! endpoint. NAT64's prefix is rewritten in place too, and NAT64 may be
//! switched off (`enabled = 0`): its bindings are NAPT bindings and expire
//! as such, and the agent frees their stand-ins.
//!
//! Refused, with nothing changed, because they would break live flows or
//! cannot be changed in place: removing a pool address that live bindings
//! use, removing an internal prefix that live bindings' inside hosts need,
//! switching NAPT off with live bindings, and changing the interface, the
//! ingress hook, the inside interfaces, an explicit `--inside-hook` or the
//! table sizes (those need `xnat detach` and a new attach). The XDP
//! redirect targets (`--xdp-redirect`) change in place.
use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
};

use anyhow::{Context as _, bail};
use aya::maps::lpm_trie::Key;
use nat_common::{
    EndpointKey, Ipv4Be, MAPPING_FORWARD, Mapping, NatConfig, PINNED_LOOKUP, PINNED_NONE,
    PINNED_RECORDING,
    nat64::{Nat64Config, is_stand_in},
};

use crate::{
    loader::Limits,
    loader::netdev,
    settings::HookMode,
    settings::Settings,
    settings::napt::{self, Allocation, NaptSettings, Prefix},
    settings::nat64::{self, Nat64Prefix},
    tables::Tables,
    tables::forward::{Forward, Forwards},
    tables::nat64::{StaticEntry, StaticNat64},
    tables::paired,
    tables::pins,
    tables::static_map::{StaticTable, from_be, to_be},
};

/// What an attachment holds now.
#[derive(Clone, Debug)]
pub struct Live {
    pub ingress: Option<&'static str>,
    pub inside: Vec<String>,
    /// Inside interfaces where the outbound fast path runs in XDP.
    pub inside_xdp: Vec<String>,
    /// Devices the XDP fast path may redirect to (ifindexes).
    pub xdp_targets: Vec<u32>,
    pub limits: Limits,
    pub fast_path: bool,
    /// Static 1:1 mappings (not the static NAT64 entries, whose private
    /// address is a stand-in).
    pub static_maps: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub forwards: Vec<Forward>,
    pub config: NatConfig,
    pub pool: Vec<Ipv4Addr>,
    pub internal: Vec<Prefix>,
    /// Dynamic bindings (not forwards): inside endpoint → public endpoint.
    pub bindings: Vec<(EndpointKey, Mapping)>,
    /// The `NAT64` map (`enabled == 0`: off).
    pub nat64: Nat64Config,
    /// Static NAT64 entries.
    pub nat64_maps: Vec<StaticEntry>,
}

impl Live {
    /// A freshly loaded attachment: empty tables, and the hooks, inside
    /// interfaces and table sizes it is about to be attached with.
    pub fn fresh(
        ingress: HookMode,
        inside: &[String],
        inside_xdp: &[String],
        limits: Limits,
    ) -> Live {
        Live {
            ingress: Some(match ingress {
                HookMode::Xdp => "xdp",
                _ => "tc",
            }),
            inside: inside.to_vec(),
            inside_xdp: inside_xdp.to_vec(),
            xdp_targets: Vec::new(),
            limits,
            fast_path: false,
            static_maps: Vec::new(),
            forwards: Vec::new(),
            config: NatConfig::default(),
            pool: Vec::new(),
            internal: Vec::new(),
            bindings: Vec::new(),
            nat64: Nat64Config::default(),
            nat64_maps: Vec::new(),
        }
    }
}

/// Reads the live state of the attachment in `dir`.
pub fn read_live(dir: &Path) -> anyhow::Result<Live> {
    let tables = Tables::at(dir);
    let config = napt::read_config(dir)?;
    let internal = napt::read_internal(dir)?;
    let napt_out = tables.napt_out()?;
    let bindings = napt_out
        .lookup_all()?
        .into_iter()
        .filter(|(_, m)| m.flags & MAPPING_FORWARD == 0)
        .collect();
    let fast_path = tables.fast_path()?;
    Ok(Live {
        fast_path: fast_path.get(&0, 0)? != 0,
        ingress: pins::ingress_mode(dir),
        inside: pins::inside_interfaces(dir),
        inside_xdp: pins::inside_xdp_interfaces(dir),
        xdp_targets: {
            let m = tables.xdp_targets()?;
            let mut v = m.keys().collect::<Result<Vec<u32>, _>>()?;
            v.sort_unstable();
            v
        },
        limits: Limits {
            max_mappings: napt_out.max_entries()?,
            max_sessions: tables.sessions()?.max_entries()?,
        },
        static_maps: StaticTable::open(dir)?
            .list()?
            .into_iter()
            .filter(|(private, _)| !is_stand_in(to_be(*private)))
            .collect(),
        forwards: Forwards::open(dir)?.list()?,
        pool: napt::read_pool(dir, &config)?,
        config,
        internal,
        bindings,
        nat64: nat64::read_config(dir)?,
        nat64_maps: StaticNat64::open(dir)?.list()?,
    })
}

/// The changes that bring `Live` to `Settings`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub maps_removed: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub maps_added: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub forwards_removed: Vec<Forward>,
    pub forwards_added: Vec<Forward>,
    /// New NAPT settings to write, if they differ from the live ones.
    pub napt: Option<NaptChange>,
    /// Switch the fast path on or off.
    pub fast_path: Option<bool>,
    /// The new set of XDP redirect targets (ifindexes), if it changes.
    pub xdp_targets: Option<Vec<u32>>,
    /// NAT64's prefix to write, or NAT64 to switch off.
    pub nat64: Option<Nat64Change>,
    pub nat64_maps_removed: Vec<StaticEntry>,
    pub nat64_maps_added: Vec<(Ipv6Addr, Ipv4Addr)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NaptChange {
    /// Write these settings (NAPT on).
    Set(NaptSettings),
    /// Switch NAPT off.
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat64Change {
    /// NAT64 on with this prefix, the inside interfaces' smallest MTU and
    /// the host prefix (`--nat64-host-prefix`).
    Set(Nat64Prefix, u32, u8),
    /// NAT64 off.
    Off,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        *self == Plan::default()
    }

    /// What a fresh attach reports: its forwards and XDP redirect targets
    /// (static maps, NAPT, NAT64 and the fast path are in its own line
    /// already).
    pub fn fresh_summary(&self) -> String {
        Plan {
            forwards_added: self.forwards_added.clone(),
            xdp_targets: self.xdp_targets.clone(),
            ..Plan::default()
        }
        .summary()
    }

    /// One line for logs and `xnat reload`.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "no changes".to_string();
        }
        let mut parts = Vec::new();
        let mut count = |n: usize, what: &str| {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        };
        count(self.maps_added.len(), "static map(s) added");
        count(self.maps_removed.len(), "static map(s) removed");
        count(self.forwards_added.len(), "forward(s) added");
        count(self.forwards_removed.len(), "forward(s) removed");
        count(self.nat64_maps_added.len(), "static NAT64 mapping(s) added");
        count(
            self.nat64_maps_removed.len(),
            "static NAT64 mapping(s) removed",
        );
        if let Some(on) = self.fast_path {
            parts.push(format!("fast path {}", if on { "on" } else { "off" }));
        }
        if self.xdp_targets.is_some() {
            parts.push("XDP redirect targets updated".to_string());
        }
        match &self.napt {
            Some(NaptChange::Set(_)) => parts.push("NAPT settings updated".to_string()),
            Some(NaptChange::Off) => parts.push("NAPT switched off".to_string()),
            None => {}
        }
        match self.nat64 {
            Some(Nat64Change::Set(p, _, h)) => {
                parts.push(format!("NAT64 prefix {p}, host prefix /{h}"))
            }
            Some(Nat64Change::Off) => parts.push("NAT64 switched off".to_string()),
            None => {}
        }
        parts.join(", ")
    }
}

/// The live NAPT settings, as `NaptSettings` (to compare with wanted ones).
fn live_napt(live: &Live) -> Option<NaptSettings> {
    NaptSettings::from_config(&live.config, &live.pool, &live.internal)
}

/// Settings with pool and prefixes in a canonical order: their order in
/// a config carries no meaning.
fn normalized(n: &NaptSettings) -> NaptSettings {
    let mut n = n.clone();
    n.pool.sort();
    n.internal.sort_by_key(|p| (u32::from(p.addr), p.len));
    n
}

fn same_set<T: Ord + Clone>(a: &[T], b: &[T]) -> bool {
    a.iter().cloned().collect::<BTreeSet<_>>() == b.iter().cloned().collect::<BTreeSet<_>>()
}

/// Works out the changes, or refuses (see the module comment).
pub fn plan(live: &Live, want: &Settings) -> anyhow::Result<Plan> {
    let how = "that needs `xnat detach` and a new attach (live flows are lost)";
    if want.ingress != HookMode::Auto && live.ingress.is_some_and(|m| m != want.ingress.to_string())
    {
        bail!(
            "the attachment translates inbound traffic with {}, the settings ask for {}; {how}",
            live.ingress.unwrap_or("?"),
            want.ingress
        );
    }
    if !same_set(&live.inside, &want.inside) {
        bail!(
            "the attachment has inside interfaces [{}], the settings ask for [{}]; {how}",
            live.inside.join(", "),
            want.inside.join(", ")
        );
    }
    if want.inside_hook != HookMode::Auto {
        let wanted: Vec<String> = want
            .inside
            .iter()
            .filter(|i| want.fast_path && want.inside_hook.resolve(i) == HookMode::Xdp)
            .cloned()
            .collect();
        if !same_set(&live.inside_xdp, &wanted) {
            bail!(
                "the attachment runs the outbound fast path in XDP on [{}], the settings ask for [{}]; {how}",
                live.inside_xdp.join(", "),
                wanted.join(", ")
            );
        }
    }
    if live.limits != want.limits {
        bail!(
            "the attachment's tables hold {} mappings and {} sessions, the settings ask for {} and {}; {how}",
            live.limits.max_mappings,
            live.limits.max_sessions,
            want.limits.max_mappings,
            want.limits.max_sessions
        );
    }

    let mut plan = Plan::default();
    if live.fast_path != want.fast_path {
        plan.fast_path = Some(want.fast_path);
    }
    let targets = xdp_targets(live, want)?;
    if targets != live.xdp_targets {
        plan.xdp_targets = Some(targets);
    }
    let current = live_napt(live);
    match (&current, &want.napt) {
        (Some(_), None) if !live.bindings.is_empty() => bail!(
            "switching NAPT off would strand {} live binding(s); flush them first (`xnat flows flush`)",
            live.bindings.len()
        ),
        (Some(_), None) => plan.napt = Some(NaptChange::Off),
        (cur, Some(w)) => {
            if cur.as_ref().map(normalized) != Some(normalized(w)) {
                check_napt_change(live, w)?;
                plan.napt = Some(NaptChange::Set(w.clone()));
            }
        }
        (None, None) => {}
    }

    plan_nat64(live, want, &mut plan);
    for m in &live.static_maps {
        if !want.static_maps.contains(m) {
            plan.maps_removed.push(*m);
        }
    }
    for m in &want.static_maps {
        if !live.static_maps.contains(m) {
            plan.maps_added.push(*m);
        }
    }
    for f in &live.forwards {
        if !want.forwards.contains(f) {
            plan.forwards_removed.push(*f);
        }
    }
    for f in &want.forwards {
        if live.forwards.contains(f) {
            continue;
        }
        let pk = (f.proto.number(), to_be(f.public.0), f.public.1.to_be());
        let ik = (f.proto.number(), to_be(f.inside.0), f.inside.1.to_be());
        for (k, m) in &live.bindings {
            if (k.proto, m.addr, m.port) == pk {
                bail!(
                    "forward {} {}:{}: that public port is held by a live binding of {}:{}; \
                     it frees up when the binding expires or is flushed",
                    f.proto.name(),
                    f.public.0,
                    f.public.1,
                    from_be(k.addr),
                    u16::from_be(k.port)
                );
            }
            if (k.proto, k.addr, k.port) == ik {
                bail!(
                    "forward {} to {}:{}: that inside endpoint has a live binding (public {}:{}); \
                     it can be forwarded once the binding expires or is flushed",
                    f.proto.name(),
                    f.inside.0,
                    f.inside.1,
                    from_be(m.addr),
                    u16::from_be(m.port)
                );
            }
        }
        plan.forwards_added.push(*f);
    }
    Ok(plan)
}

/// NAT64's prefix and static entries: rewritten where they differ. Its
/// dynamic bindings need nothing: they are NAPT bindings, and outlive a
/// change of prefix or NAT64 switched off as any binding outlives a
/// change of timeouts.
fn plan_nat64(live: &Live, want: &Settings, plan: &mut Plan) {
    let wanted = want.nat64.as_ref().map(|n| (n.prefix, n.host_prefix));
    // The inside links' smallest MTU, as the data plane answers packets
    // too big for them (0 if one cannot be read: no answer then).
    let mtu = want
        .inside
        .iter()
        .map(|i| crate::loader::netdev::mtu(i).unwrap_or(0))
        .min()
        .unwrap_or(0);
    let is = Nat64Prefix::of(&live.nat64).map(|p| (p, live.nat64.host_prefix));
    if is != wanted || (wanted.is_some() && live.nat64.inside_mtu != mtu) {
        plan.nat64 = Some(wanted.map_or(Nat64Change::Off, |(p, h)| Nat64Change::Set(p, mtu, h)));
    }
    let maps = want.nat64.as_ref().map_or(&[][..], |n| &n.maps[..]);
    plan.nat64_maps_removed = live
        .nat64_maps
        .iter()
        .filter(|e| !maps.contains(&(e.inside, e.public)))
        .copied()
        .collect();
    plan.nat64_maps_added = maps
        .iter()
        .filter(|(inside, public)| {
            !live
                .nat64_maps
                .iter()
                .any(|e| (e.inside, e.public) == (*inside, *public))
        })
        .copied()
        .collect();
}

/// Pool addresses and internal prefixes that live bindings rely on must
/// stay.
fn check_napt_change(live: &Live, w: &NaptSettings) -> anyhow::Result<()> {
    for gone in live.pool.iter().filter(|a| !w.pool.contains(a)) {
        let n = live
            .bindings
            .iter()
            .filter(|(_, m)| from_be(m.addr) == *gone)
            .count();
        if n > 0 {
            bail!(
                "pool address {gone} still carries {n} live binding(s); it can be removed once they \
                 expire or are flushed (`xnat flows flush`)"
            );
        }
    }
    // NAT64 bindings (their inside address a stand-in) need no internal
    // prefix.
    let stranded: Vec<Ipv4Addr> = live
        .bindings
        .iter()
        .filter(|(k, _)| !is_stand_in(k.addr))
        .map(|(k, _)| from_be(k.addr))
        .filter(|a| !w.internal.iter().any(|p| p.contains(*a)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if let Some(first) = stranded.first() {
        bail!(
            "{} inside host(s) with live bindings (e.g. {first}) would no longer be inside any \
             internal prefix, and their packets would leave untranslated; flush them first \
             (`xnat flows flush --inside {first}`)",
            stranded.len()
        );
    }
    Ok(())
}

/// Applies `plan` to the attachment in `dir`. Order matters for flows in
/// flight: new pool addresses and prefixes before the CONFIG that uses
/// them; removals before the additions that may reuse an address; forwards
/// after the pool that must contain them; NAT64 switched off before its
/// static entries go, and on only once they are there.
pub fn apply(dir: &Path, live: &Live, plan: &Plan) -> anyhow::Result<()> {
    let mut forwards = Forwards::open(dir)?;
    for f in &plan.forwards_removed {
        forwards.remove(f.proto, f.public).with_context(|| {
            format!(
                "removing forward {} {}:{}",
                f.proto.name(),
                f.public.0,
                f.public.1
            )
        })?;
    }
    let mut table = StaticTable::open(dir)?;
    for (private, _) in &plan.maps_removed {
        table.remove(*private)?;
    }
    if plan.nat64 == Some(Nat64Change::Off) {
        write_nat64(dir, Nat64Config::default())?;
    }
    let mut nat64_static = StaticNat64::open(dir)?;
    for e in &plan.nat64_maps_removed {
        nat64_static.remove(e)?;
    }
    match &plan.napt {
        Some(NaptChange::Set(w)) => write_napt(dir, live, w)?,
        Some(NaptChange::Off) => {
            let tables = Tables::at(dir);
            let mut config = tables.config()?;
            config.set(0, NatConfig::default(), 0)?;
            let mut trie = tables.internal()?;
            for p in &live.internal {
                let _ = trie.remove(&Key::new(p.len as u32, to_be(p.addr)));
            }
        }
        None => {}
    }
    for (private, public) in &plan.maps_added {
        table.add(*private, *public)?;
    }
    for (inside, public) in &plan.nat64_maps_added {
        nat64_static.add(*inside, *public)?;
    }
    if let Some(Nat64Change::Set(p, mtu, host_prefix)) = plan.nat64 {
        write_nat64(
            dir,
            Nat64Config {
                inside_mtu: mtu,
                host_prefix,
                ..p.config()
            },
        )?;
    }
    if let Some(on) = plan.fast_path {
        let mut flag = Tables::at(dir).fast_path()?;
        flag.set(0, on as u32, 0)?;
    }
    if let Some(t) = &plan.xdp_targets {
        write_xdp_targets(dir, live, t)?;
    }
    for f in &plan.forwards_added {
        forwards.add(*f)?;
    }
    Ok(())
}

fn write_nat64(dir: &Path, c: Nat64Config) -> anyhow::Result<()> {
    Tables::at(dir)
        .nat64()?
        .set(0, c, 0)
        .with_context(|| format!("writing {}", nat_common::nat64::MAP_NAT64))
}

/// The devices the XDP fast path may redirect to (sorted ifindexes): the
/// physical NICs running one of xnat's XDP programs (a driver takes XDP
/// frames once an XDP program is attached to it; many allocate their XDP
/// transmit queues only then) and the devices the operator declared
/// (`--xdp-redirect`: e.g. a veth, which takes XDP frames only when its
/// *peer* has an XDP program — nothing xnat can see). A redirect anywhere
/// else would be dropped by the kernel, so those packets take the stack
/// instead.
fn xdp_targets(live: &Live, want: &Settings) -> anyhow::Result<Vec<u32>> {
    let ext = (live.ingress == Some("xdp")).then_some(&want.ifname);
    let running_xdp = ext
        .into_iter()
        .chain(&live.inside_xdp)
        .filter(|name| !netdev::is_virtual(name));
    let mut out = Vec::new();
    for name in running_xdp.chain(&want.xdp_redirect) {
        out.push(netdev::ifindex(name).with_context(|| format!("XDP redirect target {name}"))?);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Makes XDP_TARGETS hold exactly `want`.
fn write_xdp_targets(dir: &Path, live: &Live, want: &[u32]) -> anyhow::Result<()> {
    let mut m = Tables::at(dir).xdp_targets()?;
    for i in want {
        m.insert(*i, *i, None, 0)
            .with_context(|| format!("adding ifindex {i} to {}", nat_common::MAP_XDP_TARGETS))?;
    }
    for i in live.xdp_targets.iter().filter(|i| !want.contains(i)) {
        m.remove(*i).with_context(|| {
            format!("removing ifindex {i} from {}", nat_common::MAP_XDP_TARGETS)
        })?;
    }
    Ok(())
}

fn write_napt(dir: &Path, live: &Live, w: &NaptSettings) -> anyhow::Result<()> {
    let tables = Tables::at(dir);
    let mut trie = tables.internal()?;
    // Every prefix, old ones too: a new prefix renumbers the hosts of
    // those above it (the values matter to deterministic allocation).
    for (p, offset) in w.internal_entries() {
        trie.insert(&Key::new(p.len as u32, to_be(p.addr)), offset, 0)?;
    }
    let deterministic = matches!(w.allocation, Allocation::Deterministic { .. });
    let new_pool: Vec<Ipv4Addr> = if deterministic {
        // The layout takes the pool in ascending order.
        let mut pool = w.pool.clone();
        pool.sort();
        pool
    } else {
        // Surviving addresses first, in their order, then the new ones: a
        // pool that only grows keeps every address in its slot.
        live.pool
            .iter()
            .filter(|a| w.pool.contains(a))
            .chain(w.pool.iter().filter(|a| !live.pool.contains(a)))
            .copied()
            .collect()
    };
    let pool_be: Vec<Ipv4Be> = new_pool.iter().map(|a| to_be(*a)).collect();
    let mut config = tables.config()?;
    // A changed pool moves the hash's choice of pool address: hosts with
    // bindings are pinned to theirs first, the data plane recording the
    // hosts it maps meanwhile; twice, for a binding being made on another
    // CPU while the first pass read the table. (Deterministic allocation
    // has no such choice: the layout says, and a changed layout moves
    // hosts by design; live bindings keep their ports.)
    let pool_changes = !deterministic && live.config.pool_len != 0 && new_pool != live.pool;
    if pool_changes {
        config.set(
            0,
            NatConfig {
                pinned_hosts: PINNED_RECORDING,
                ..live.config
            },
            0,
        )?;
        paired::pin_live_hosts(&tables, &pool_be)?;
    }
    let mut pool = tables.pool()?;
    for (i, a) in pool_be.iter().enumerate() {
        pool.set(i as u32, *a, 0)?;
    }
    let mut full = 0;
    if pool_changes {
        full = paired::pin_live_hosts(&tables, &pool_be)?;
    }
    if full > 0 {
        tracing::warn!(
            hosts = full,
            "HOST_POOL is full: {full} host(s) with bindings may change pool address"
        );
    }
    let mut settings = w.clone();
    settings.pool = new_pool;
    let pinned_hosts = if paired::any_pinned(&tables)? {
        PINNED_LOOKUP
    } else {
        PINNED_NONE
    };
    config.set(
        0,
        NatConfig {
            pinned_hosts,
            ..settings.config()
        },
        0,
    )?;
    for p in live.internal.iter().filter(|p| !w.internal.contains(p)) {
        let _ = trie.remove(&Key::new(p.len as u32, to_be(p.addr)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::forward::Proto;

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn napt_settings(pool: &[&str]) -> NaptSettings {
        NaptSettings {
            internal: vec!["10.0.0.0/8".parse().unwrap()],
            pool: pool.iter().map(|p| a(p)).collect(),
            ..NaptSettings::default()
        }
    }

    fn live(pool: &[&str], bindings: &[(&str, u16, &str, u16)]) -> Live {
        let s = napt_settings(pool);
        Live {
            ingress: Some("tc"),
            inside: vec![],
            inside_xdp: vec![],
            xdp_targets: vec![],
            limits: Limits::default(),
            fast_path: false,
            static_maps: vec![(a("10.0.0.9"), a("203.0.113.9"))],
            forwards: vec![],
            config: s.config(),
            pool: s.pool.clone(),
            internal: s.internal.clone(),
            bindings: bindings
                .iter()
                .map(|(ia, ip, pa, pp)| {
                    (
                        EndpointKey {
                            addr: to_be(a(ia)),
                            port: ip.to_be(),
                            proto: 17,
                            _pad: 0,
                        },
                        Mapping {
                            addr: to_be(a(pa)),
                            port: pp.to_be(),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
            nat64: Nat64Config::default(),
            nat64_maps: vec![],
        }
    }

    fn want(napt: Option<NaptSettings>) -> Settings {
        Settings {
            ifname: "eth0".into(),
            ingress: HookMode::Auto,
            inside: vec![],
            inside_hook: HookMode::Auto,
            xdp_redirect: vec![],
            keep: false,
            fast_path: false,
            static_maps: vec![(a("10.0.0.9"), a("203.0.113.9"))],
            napt,
            limits: Limits::default(),
            forwards: vec![],
            metrics: None,
            log_bindings: None,
            ipfix: None,
            expiry_walk: Default::default(),
            sync: None,
            nat64: None,
        }
    }

    #[test]
    fn unchanged_settings_plan_nothing() {
        let l = live(
            &["198.51.100.1"],
            &[("10.0.0.2", 5000, "198.51.100.1", 5000)],
        );
        let p = plan(&l, &want(Some(napt_settings(&["198.51.100.1"])))).unwrap();
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(p.summary(), "no changes");
    }

    #[test]
    fn maps_and_forwards_diff_both_ways() {
        let l = live(&["198.51.100.1"], &[]);
        let mut w = want(Some(napt_settings(&["198.51.100.1"])));
        w.static_maps = vec![(a("10.0.0.8"), a("203.0.113.8"))];
        let f = Forward {
            proto: Proto::Tcp,
            public: (a("198.51.100.1"), 8080),
            inside: (a("10.0.0.5"), 80),
        };
        w.forwards = vec![f];
        let p = plan(&l, &w).unwrap();
        assert_eq!(p.maps_removed, vec![(a("10.0.0.9"), a("203.0.113.9"))]);
        assert_eq!(p.maps_added, vec![(a("10.0.0.8"), a("203.0.113.8"))]);
        assert_eq!(p.forwards_added, vec![f]);
        assert!(p.napt.is_none());
    }

    #[test]
    fn timeouts_change_in_place() {
        let l = live(
            &["198.51.100.1"],
            &[("10.0.0.2", 5000, "198.51.100.1", 5000)],
        );
        let mut n = napt_settings(&["198.51.100.1"]);
        n.timeouts.udp = 30;
        let p = plan(&l, &want(Some(n.clone()))).unwrap();
        assert_eq!(p.napt, Some(NaptChange::Set(n)));
    }

    #[test]
    fn tcp_pickup_changes_in_place() {
        let l = live(
            &["198.51.100.1"],
            &[("10.0.0.2", 5000, "198.51.100.1", 5000)],
        );
        let mut n = napt_settings(&["198.51.100.1"]);
        n.tcp_pickup = napt::TcpPickup::Off;
        let p = plan(&l, &want(Some(n.clone()))).unwrap();
        assert_eq!(p.napt, Some(NaptChange::Set(n.clone())));
        assert_eq!(p.summary(), "NAPT settings updated");
        // And back: the live CONFIG says off, the settings on.
        let mut l = l;
        l.config = n.config();
        let p = plan(&l, &want(Some(napt_settings(&["198.51.100.1"])))).unwrap();
        assert_eq!(
            p.napt,
            Some(NaptChange::Set(napt_settings(&["198.51.100.1"])))
        );
    }

    #[test]
    fn pool_address_in_use_is_kept() {
        let l = live(
            &["198.51.100.1", "198.51.100.2"],
            &[("10.0.0.2", 5000, "198.51.100.2", 5000)],
        );
        let e = plan(&l, &want(Some(napt_settings(&["198.51.100.1"]))))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pool address 198.51.100.2 still carries 1 live binding"),
            "{e}"
        );
        // Unused: fine.
        let l = live(&["198.51.100.1", "198.51.100.2"], &[]);
        assert!(plan(&l, &want(Some(napt_settings(&["198.51.100.1"])))).is_ok());
    }

    #[test]
    fn internal_prefix_needed_by_bindings_is_kept() {
        let l = live(
            &["198.51.100.1"],
            &[("10.0.0.2", 5000, "198.51.100.1", 5000)],
        );
        let mut n = napt_settings(&["198.51.100.1"]);
        n.internal = vec!["10.1.0.0/16".parse().unwrap()];
        let e = plan(&l, &want(Some(n))).unwrap_err().to_string();
        assert!(e.contains("e.g. 10.0.0.2"), "{e}");
    }

    #[test]
    fn napt_off_with_bindings_is_refused() {
        let l = live(
            &["198.51.100.1"],
            &[("10.0.0.2", 5000, "198.51.100.1", 5000)],
        );
        let e = plan(&l, &want(None)).unwrap_err().to_string();
        assert!(e.contains("switching NAPT off"), "{e}");
        let l = live(&["198.51.100.1"], &[]);
        assert_eq!(plan(&l, &want(None)).unwrap().napt, Some(NaptChange::Off));
    }

    #[test]
    fn fixed_properties_are_refused() {
        let l = live(&["198.51.100.1"], &[]);
        let mut w = want(Some(napt_settings(&["198.51.100.1"])));
        w.ingress = HookMode::Xdp;
        assert!(plan(&l, &w).unwrap_err().to_string().contains("with tc"));
        let mut w = want(Some(napt_settings(&["198.51.100.1"])));
        w.limits.max_sessions = 5;
        assert!(plan(&l, &w).unwrap_err().to_string().contains("sessions"));
        let mut w = want(Some(napt_settings(&["198.51.100.1"])));
        w.inside = vec!["lan0".into()];
        assert!(
            plan(&l, &w)
                .unwrap_err()
                .to_string()
                .contains("inside interfaces")
        );
        // An explicit inside hook must match the live XDP links; `auto`
        // takes whatever runs (the TC program does the fast path too).
        let mut l = live(&["198.51.100.1"], &[]);
        l.inside = vec!["lan0".into()];
        let mut w = want(Some(napt_settings(&["198.51.100.1"])));
        w.inside = vec!["lan0".into()];
        w.fast_path = true;
        l.fast_path = true;
        assert!(plan(&l, &w).is_ok());
        w.inside_hook = HookMode::Xdp;
        let e = plan(&l, &w).unwrap_err().to_string();
        assert!(
            e.contains("in XDP on [], the settings ask for [lan0]"),
            "{e}"
        );
        l.inside_xdp = vec!["lan0".into()];
        w.inside_hook = HookMode::Tc;
        let e = plan(&l, &w).unwrap_err().to_string();
        assert!(
            e.contains("in XDP on [lan0], the settings ask for []"),
            "{e}"
        );
    }

    #[test]
    fn xdp_redirect_targets_change_in_place() {
        // `lo` (ifindex 1) exists in every namespace.
        let l = live(&["198.51.100.1"], &[]);
        let mut w = want(Some(napt_settings(&["198.51.100.1"])));
        w.xdp_redirect = vec!["lo".into()];
        let p = plan(&l, &w).unwrap();
        assert_eq!(p.xdp_targets, Some(vec![1]));
        assert!(p.summary().contains("XDP redirect targets updated"));
        let mut l = live(&["198.51.100.1"], &[]);
        l.xdp_targets = vec![1];
        assert_eq!(plan(&l, &w).unwrap().xdp_targets, None);
        w.xdp_redirect = vec![];
        assert_eq!(plan(&l, &w).unwrap().xdp_targets, Some(vec![]));
    }

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn with_nat64(prefix: &str, maps: &[(&str, &str)]) -> Settings {
        Settings {
            nat64: Some(nat64::Nat64Settings {
                prefix: prefix.parse().unwrap(),
                maps: maps.iter().map(|(i, p)| (v6(i), a(p))).collect(),
                host_prefix: 64,
            }),
            ..want(Some(napt_settings(&["198.51.100.1"])))
        }
    }

    fn entry(inside: &str, public: &str, n: u32) -> StaticEntry {
        StaticEntry {
            inside: v6(inside),
            public: a(public),
            stand_in: nat_common::nat64::stand_in(n),
        }
    }

    #[test]
    fn nat64_switches_on_with_its_static_entries() {
        let l = live(&["198.51.100.1"], &[]);
        let p = plan(
            &l,
            &with_nat64("64:ff9b::/96", &[("2001:db8::10", "203.0.113.10")]),
        )
        .unwrap();
        assert!(matches!(
            p.nat64,
            Some(Nat64Change::Set(Nat64Prefix::WELL_KNOWN, _, 64))
        ));
        assert_eq!(
            p.nat64_maps_added,
            vec![(v6("2001:db8::10"), a("203.0.113.10"))]
        );
        assert!(p.nat64_maps_removed.is_empty());
        assert_eq!(
            p.summary(),
            "1 static NAT64 mapping(s) added, NAT64 prefix 64:ff9b::/96, host prefix /64"
        );
    }

    #[test]
    fn nat64_unchanged_plans_nothing_and_a_new_prefix_is_written() {
        let mut l = live(&["198.51.100.1"], &[]);
        l.nat64 = Nat64Config {
            host_prefix: 64,
            ..Nat64Prefix::WELL_KNOWN.config()
        };
        l.nat64_maps = vec![entry("2001:db8::10", "203.0.113.10", 0x00ff_fffe)];
        let same = with_nat64("64:ff9b::/96", &[("2001:db8::10", "203.0.113.10")]);
        assert!(plan(&l, &same).unwrap().is_empty());
        let p = plan(
            &l,
            &with_nat64("2001:db8:64::/96", &[("2001:db8::10", "203.0.113.10")]),
        )
        .unwrap();
        assert_eq!(
            p.nat64,
            Some(Nat64Change::Set("2001:db8:64::/96".parse().unwrap(), 0, 64))
        );
        assert!(p.nat64_maps_added.is_empty() && p.nat64_maps_removed.is_empty());
        // The host prefix alone changes: rewritten, as a reload carries it.
        let mut per_56 = same.clone();
        per_56.nat64.as_mut().unwrap().host_prefix = 56;
        let p = plan(&l, &per_56).unwrap();
        assert_eq!(
            p.nat64,
            Some(Nat64Change::Set(Nat64Prefix::WELL_KNOWN, 0, 56))
        );
        assert_eq!(p.summary(), "NAT64 prefix 64:ff9b::/96, host prefix /56");
    }

    #[test]
    fn nat64_static_entries_diff_both_ways() {
        let mut l = live(&["198.51.100.1"], &[]);
        l.nat64 = Nat64Config {
            host_prefix: 64,
            ..Nat64Prefix::WELL_KNOWN.config()
        };
        l.nat64_maps = vec![
            entry("2001:db8::10", "203.0.113.10", 0x00ff_fffe),
            entry("2001:db8::11", "203.0.113.11", 0x00ff_fffd),
        ];
        // ::10 moves to another public address, ::11 goes, ::12 comes.
        let w = with_nat64(
            "64:ff9b::/96",
            &[
                ("2001:db8::10", "203.0.113.20"),
                ("2001:db8::12", "203.0.113.12"),
            ],
        );
        let p = plan(&l, &w).unwrap();
        assert_eq!(p.nat64, None);
        assert_eq!(p.nat64_maps_removed, l.nat64_maps);
        assert_eq!(
            p.nat64_maps_added,
            vec![
                (v6("2001:db8::10"), a("203.0.113.20")),
                (v6("2001:db8::12"), a("203.0.113.12"))
            ]
        );
        // An entry the tables hold half-written (its host lost) matches no
        // setting: removed.
        l.nat64_maps = vec![entry("::", "203.0.113.20", 0x00ff_fffe)];
        let p = plan(&l, &w).unwrap();
        assert_eq!(p.nat64_maps_removed, l.nat64_maps);
    }

    #[test]
    fn nat64_off_removes_its_static_entries_and_keeps_its_bindings() {
        let mut l = live(
            &["198.51.100.1"],
            &[("0.255.0.1", 5000, "198.51.100.1", 5000)],
        );
        l.nat64 = Nat64Prefix::WELL_KNOWN.config();
        l.nat64_maps = vec![entry("2001:db8::10", "203.0.113.10", 0x00ff_fffe)];
        let p = plan(&l, &want(Some(napt_settings(&["198.51.100.1"])))).unwrap();
        assert_eq!(p.nat64, Some(Nat64Change::Off));
        assert_eq!(p.nat64_maps_removed, l.nat64_maps);
        assert_eq!(
            p.summary(),
            "1 static NAT64 mapping(s) removed, NAT64 switched off"
        );
    }

    /// A NAT64 binding's inside address is a stand-in, in no internal
    /// prefix: a change of the prefixes does not strand it.
    #[test]
    fn nat64_bindings_need_no_internal_prefix() {
        let mut l = live(
            &["198.51.100.1"],
            &[("0.255.0.1", 5000, "198.51.100.1", 5000)],
        );
        l.nat64 = Nat64Prefix::WELL_KNOWN.config();
        let mut w = with_nat64("64:ff9b::/96", &[]);
        w.napt.as_mut().unwrap().internal = vec!["10.1.0.0/16".parse().unwrap()];
        let p = plan(&l, &w).unwrap();
        assert!(matches!(p.napt, Some(NaptChange::Set(_))), "{p:?}");
    }

    #[test]
    fn forward_onto_a_live_binding_is_refused() {
        let l = live(
            &["198.51.100.1"],
            &[("10.0.0.2", 5000, "198.51.100.1", 8080)],
        );
        let mut w = want(Some(napt_settings(&["198.51.100.1"])));
        w.forwards = vec![Forward {
            proto: Proto::Udp,
            public: (a("198.51.100.1"), 8080),
            inside: (a("10.0.0.5"), 80),
        }];
        let e = plan(&l, &w).unwrap_err().to_string();
        assert!(e.contains("held by a live binding of 10.0.0.2:5000"), "{e}");
    }
}
