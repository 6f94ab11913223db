//! Prometheus metrics (`--metrics ADDR`), in the text exposition format
//! (OpenMetrics) encoded by `prometheus-client`.
//!
//! Table and counter values are read from the pinned maps at scrape time,
//! so a scrape always shows the kernel's numbers (and they continue across
//! an agent restart, like the maps do). Only what the agent itself does
//! (expiry sweeps, reloads, translation-log lines) lives in the agent.
use std::{collections::BTreeMap, path::Path};

use nat_common::{Counter as Kc, MAPPING_FORWARD, nat64::is_stand_in, tcp_state_name};
use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::{
    settings::napt,
    tables::flows::proto_name,
    tables::sessions,
    tables::static_map::from_be,
    tables::stats,
    tables::{Table, Tables},
};

type Labels = Vec<(String, String)>;

/// A table's name, capacity and `entries`, for its fill ratio.
fn table_size<K, V>(
    table: Table<K, V>,
    entries: usize,
) -> anyhow::Result<(&'static str, u32, usize)> {
    Ok((table.name(), table.max_entries()?, entries))
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What the agent measures itself. Clones share the same values.
#[derive(Clone)]
pub struct AgentMetrics {
    pub sweep_seconds: Histogram,
    /// Sweeps by where they walked the mappings (`kernel`, `user`).
    pub sweeps: Family<Labels, Counter>,
    pub expired: Family<Labels, Counter>,
    pub reloads: Family<Labels, Counter>,
    pub translog_records: Counter,
    /// IPFIX data records sent, by natEvent name.
    pub ipfix_records: Family<Labels, Counter>,
    pub ipfix_send_errors: Counter,
    /// Port blocks the agent released, by reason (`unused`, `removed`).
    pub blocks_released: Family<Labels, Counter>,
    /// Binding sync: records sent (once per peer), received in accepted
    /// datagrams, installed, refreshed; rejections by reason; send errors.
    pub sync_announced: Counter,
    pub sync_received: Counter,
    pub sync_installed: Counter,
    pub sync_refreshed: Counter,
    pub sync_rejects: Family<Labels, Counter>,
    pub sync_send_errors: Counter,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        AgentMetrics {
            // 50 µs .. ~3 s.
            sweep_seconds: Histogram::new(exponential_buckets(0.000_05, 3.0, 11)),
            sweeps: Family::default(),
            expired: Family::default(),
            reloads: Family::default(),
            translog_records: Counter::default(),
            ipfix_records: Family::default(),
            ipfix_send_errors: Counter::default(),
            blocks_released: Family::default(),
            sync_announced: Counter::default(),
            sync_received: Counter::default(),
            sync_installed: Counter::default(),
            sync_refreshed: Counter::default(),
            sync_rejects: Family::default(),
            sync_send_errors: Counter::default(),
        }
    }
}

impl AgentMetrics {
    /// IPFIX records sent (by natEvent) and send errors.
    pub fn ipfix(&self, counts: &[(u8, u64)], errors: u64) {
        for (ev, n) in counts {
            self.ipfix_records
                .get_or_create(&labels(&[("event", super::ipfix::event_name(*ev))]))
                .inc_by(*n);
        }
        self.ipfix_send_errors.inc_by(errors);
    }

    pub fn sweep(
        &self,
        seconds: f64,
        in_kernel: bool,
        sessions: usize,
        mappings: usize,
        orphans: usize,
        stand_ins: usize,
    ) {
        let walk = if in_kernel { "kernel" } else { "user" };
        self.sweeps.get_or_create(&labels(&[("walk", walk)])).inc();
        for (kind, n) in [
            ("session", sessions),
            ("mapping", mappings),
            ("orphan", orphans),
            ("nat64_stand_in", stand_ins),
        ] {
            self.expired
                .get_or_create(&labels(&[("kind", kind)]))
                .inc_by(n as u64);
        }
        // Last: a scrape that counts the sweep in the histogram (what a
        // wait for "a sweep has run" looks at) sees all of it.
        self.sweep_seconds.observe(seconds);
    }

    /// A block released (`reason`: `agent::blocks::Released::name`).
    pub fn block_released(&self, reason: &str) {
        self.blocks_released
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
    }

    /// Binding sync: `n` datagrams or records rejected for `reason`.
    pub fn sync_rejected(&self, reason: &str, n: u64) {
        self.sync_rejects
            .get_or_create(&labels(&[("reason", reason)]))
            .inc_by(n);
    }

    pub fn reload(&self, ok: bool) {
        self.reloads
            .get_or_create(&labels(&[("result", if ok { "ok" } else { "error" })]))
            .inc();
    }
}

/// Where a data-plane counter goes: a metric name and an optional label.
fn classify(c: Kc) -> (&'static str, Option<(&'static str, &'static str)>) {
    match c {
        Kc::EgressTranslated => ("translated_packets", Some(("direction", "egress"))),
        Kc::IngressTranslated => ("translated_packets", Some(("direction", "ingress"))),
        Kc::EgressBytes => ("translated_bytes", Some(("direction", "egress"))),
        Kc::IngressBytes => ("translated_bytes", Some(("direction", "ingress"))),
        Kc::EgressDroppedMalformed => ("drops", Some(("reason", "egress_malformed"))),
        Kc::NaptMappingsCreated => ("bindings_created", None),
        Kc::NaptSessionsCreated => ("sessions_created", None),
        Kc::NaptBlocksAllocated => ("port_blocks_allocated", None),
        Kc::Nat64Out => ("nat64_translated_packets", Some(("direction", "out"))),
        Kc::Nat64In => ("nat64_translated_packets", Some(("direction", "in"))),
        c => {
            let name = c.name();
            if let Some(reason) = name.strip_prefix("nat64_drop_") {
                ("nat64_drops", Some(("reason", reason)))
            } else if let Some(reason) = name.strip_prefix("drop_") {
                ("drops", Some(("reason", reason)))
            } else if let Some(reason) = name
                .strip_prefix("ingress_passed_")
                .or_else(|| name.strip_prefix("passed_"))
            {
                ("passed", Some(("reason", reason)))
            } else {
                (name, None)
            }
        }
    }
}

fn help(metric: &str) -> &'static str {
    match metric {
        "translated_packets" => "Packets translated, by direction",
        "translated_bytes" => "Bytes (IPv4 total length) of translated packets, by direction",
        "drops" => "Packets dropped, by reason",
        "passed" => "Packets passed untouched to the stack, by reason",
        "bindings_created" => "Dynamic NAPT bindings (mappings) created",
        "sessions_created" => "NAPT sessions created",
        "events_lost" => "Ring-buffer events lost because the reader lagged",
        "port_blocks_allocated" => "Port blocks reserved for inside hosts (block allocation)",
        "nat64_translated_packets" => {
            "Packets NAT64 translated, by direction (out: IPv6 to IPv4, in: IPv4 to IPv6)"
        }
        "nat64_drops" => "Packets NAT64 dropped, by reason",
        _ => "Data-plane counter",
    }
}

/// A gauge per pool address (each of `pool`, 0 unless counted) counting
/// the occurrences of each address (network order) in `addrs`.
fn per_pool_address(
    pool: &[std::net::Ipv4Addr],
    addrs: impl Iterator<Item = u32>,
) -> Family<Labels, Gauge> {
    let family: Family<Labels, Gauge> = Family::default();
    for a in pool {
        let _ = family.get_or_create(&labels(&[("address", &a.to_string())]));
    }
    let mut per_addr: BTreeMap<u32, i64> = BTreeMap::new();
    for addr in addrs {
        *per_addr.entry(addr).or_default() += 1;
    }
    for (addr, n) in per_addr {
        family
            .get_or_create(&labels(&[("address", &from_be(addr).to_string())]))
            .set(n);
    }
    family
}

/// Renders every metric of the attachment in `dir`.
pub fn render(dir: &Path, ifname: &str, agent: &AgentMetrics) -> anyhow::Result<String> {
    let mut reg = Registry::with_prefix_and_labels(
        "xnat",
        [(
            std::borrow::Cow::Borrowed("interface"),
            std::borrow::Cow::Owned(ifname.to_string()),
        )]
        .into_iter(),
    );

    let info: Family<Labels, Gauge> = Family::default();
    info.get_or_create(&labels(&[
        ("version", env!("CARGO_PKG_VERSION")),
        ("layout", &nat_common::LAYOUT_VERSION.to_string()),
    ]))
    .set(1);
    reg.register(
        "build_info",
        "xnat build (version, pinned-state layout)",
        info,
    );

    // Data-plane counters, grouped into families by metric name.
    let mut families: BTreeMap<&str, (Family<Labels, Counter>, Option<Counter>)> = BTreeMap::new();
    for (c, v) in stats::read(dir)? {
        let (metric, label) = classify(c);
        let entry = families
            .entry(metric)
            .or_insert_with(|| (Family::default(), None));
        match label {
            Some((k, val)) => {
                entry.0.get_or_create(&labels(&[(k, val)])).inc_by(v);
            }
            None => {
                let counter = Counter::default();
                counter.inc_by(v);
                entry.1 = Some(counter);
            }
        }
    }
    for (metric, (family, plain)) in families {
        match plain {
            Some(counter) => reg.register(metric, help(metric), counter),
            None => reg.register(metric, help(metric), family),
        }
    }

    // Tables.
    let sessions::Snapshot {
        mappings: out,
        sessions,
    } = sessions::read(dir)?;
    let tables = Tables::at(dir);
    let inb = tables.napt_in()?.lookup_all()?;
    // Entries of SESSIONS itself (its fill), not the first sessions held in
    // mappings.
    let session_entries = sessions.len() - out.iter().filter(|(_, m)| m.first.live != 0).count();
    let filters = tables.filter()?.lookup_all()?;
    let statics = tables.static_out()?.lookup_all()?;
    // The static table holds the static NAT64 entries too (their private
    // address a stand-in); NAT64_IDS every IPv6 host with a stand-in.
    let nat64_statics = statics.iter().filter(|(k, _)| is_stand_in(*k)).count();
    let nat64_hosts = tables.nat64_ids()?.lookup_all()?.len();

    let bindings: Family<Labels, Gauge> = Family::default();
    let forwards = Gauge::<i64>::default();
    for proto in ["tcp", "udp", "icmp"] {
        let _ = bindings.get_or_create(&labels(&[("proto", proto)]));
    }
    // Counted first, then set: a labelled series looked up per entry cost
    // seconds at a million bindings, in the agent's thread.
    let mut per_proto: BTreeMap<&str, i64> = BTreeMap::new();
    for (k, m) in &out {
        if m.flags & MAPPING_FORWARD != 0 {
            forwards.inc();
        } else {
            *per_proto.entry(proto_name(k.proto)).or_default() += 1;
        }
    }
    for (proto, n) in per_proto {
        bindings.get_or_create(&labels(&[("proto", proto)])).set(n);
    }
    reg.register(
        "bindings",
        "Live dynamic NAPT bindings (mappings), by protocol",
        bindings,
    );
    reg.register("forwards", "Port forwards", forwards);

    let by_proto: Family<Labels, Gauge> = Family::default();
    let tcp: Family<Labels, Gauge> = Family::default();
    for proto in ["tcp", "udp", "icmp"] {
        let _ = by_proto.get_or_create(&labels(&[("proto", proto)]));
    }
    for state in nat_common::TCP_SYN_OUT..=nat_common::TCP_PICKUP_IN {
        let name = tcp_state_name(state).to_ascii_lowercase();
        let _ = tcp.get_or_create(&labels(&[("state", &name)]));
    }
    let (mut per_proto, mut per_state) = (BTreeMap::<&str, i64>::new(), BTreeMap::new());
    for (k, s) in &sessions {
        *per_proto.entry(proto_name(k.proto)).or_default() += 1;
        if k.proto == 6 {
            *per_state.entry(s.tcp).or_insert(0i64) += 1;
        }
    }
    for (proto, n) in per_proto {
        by_proto.get_or_create(&labels(&[("proto", proto)])).set(n);
    }
    for (state, n) in per_state {
        let name = tcp_state_name(state).to_ascii_lowercase();
        tcp.get_or_create(&labels(&[("state", &name)])).set(n);
    }
    reg.register("sessions", "Live NAPT sessions, by protocol", by_proto);
    reg.register("tcp_sessions", "Live TCP NAPT sessions, by state", tcp);

    let cfg = napt::read_config(dir)?;
    let pool = napt::read_pool(dir, &cfg)?;
    reg.register(
        "pool_ports_in_use",
        "Public ports (and ICMP identifiers) in use, per pool address",
        per_pool_address(&pool, inb.iter().map(|(k, _)| k.addr)),
    );

    let blocks = tables.blocks()?.lookup_all()?;
    if cfg.allocation == nat_common::blocks::ALLOCATION_BLOCK || !blocks.is_empty() {
        let held = per_pool_address(&pool, blocks.iter().map(|(k, _)| k.addr));
        reg.register(
            "port_blocks_held",
            "Port blocks held by inside hosts, per pool address (block allocation)",
            held,
        );
        let per_addr = Gauge::<i64>::default();
        per_addr.set(i64::from(nat_common::blocks::Blocks::of(&cfg).count()));
        reg.register(
            "port_blocks_per_address",
            "Port blocks each pool address has (block allocation)",
            per_addr,
        );
    }

    let fill: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
    for (map, max, n) in [
        table_size(tables.napt_out()?, out.len())?,
        table_size(tables.napt_in()?, inb.len())?,
        table_size(tables.sessions()?, session_entries)?,
        table_size(tables.filter()?, filters.len())?,
        table_size(tables.static_out()?, statics.len())?,
        table_size(tables.nat64_ids()?, nat64_hosts)?,
    ] {
        let max = max.max(1);
        fill.get_or_create(&labels(&[("map", map)]))
            .set(n as f64 / max as f64);
    }
    reg.register("map_fill_ratio", "Entries over capacity, per table", fill);
    let statics_gauge = Gauge::<i64>::default();
    statics_gauge.set((statics.len() - nat64_statics) as i64);
    reg.register("static_mappings", "Static 1:1 mappings", statics_gauge);
    let nat64_statics_gauge = Gauge::<i64>::default();
    nat64_statics_gauge.set(nat64_statics as i64);
    reg.register(
        "nat64_static_mappings",
        "Static NAT64 mappings (an IPv6 host's own public IPv4 address)",
        nat64_statics_gauge,
    );
    let nat64_hosts_gauge = Gauge::<i64>::default();
    nat64_hosts_gauge.set(nat64_hosts as i64);
    reg.register(
        "nat64_hosts",
        "IPv6 inside hosts holding a NAT64 stand-in address (static ones included)",
        nat64_hosts_gauge,
    );

    reg.register(
        "expiry_sweep_duration_seconds",
        "Duration of the agent's expiry sweeps",
        agent.sweep_seconds.clone(),
    );
    reg.register(
        "expiry_sweeps",
        "Expiry sweeps, by where they walked the mappings (kernel: xnat_expire; user: read out)",
        agent.sweeps.clone(),
    );
    reg.register(
        "expired",
        "Sessions, mappings, orphaned public endpoints and unused NAT64 stand-ins the expiry sweep deleted, by kind",
        agent.expired.clone(),
    );
    reg.register(
        "reloads",
        "Configuration reloads, by result",
        agent.reloads.clone(),
    );
    reg.register(
        "translog_records",
        "Lines written to the translation log",
        agent.translog_records.clone(),
    );
    reg.register(
        "ipfix_records",
        "IPFIX data records sent (--ipfix), by natEvent",
        agent.ipfix_records.clone(),
    );
    reg.register(
        "ipfix_send_errors",
        "IPFIX messages the collector could not be sent",
        agent.ipfix_send_errors.clone(),
    );

    reg.register(
        "port_blocks_released",
        "Port blocks the agent released, by reason (unused: past the hold-down; removed: \
         deleted by someone else)",
        agent.blocks_released.clone(),
    );

    for (name, help, c) in [
        (
            "sync_announced",
            "Binding sync: mapping records sent to peers (once per peer)",
            &agent.sync_announced,
        ),
        (
            "sync_received",
            "Binding sync: mapping records received in datagrams accepted from peers",
            &agent.sync_received,
        ),
        (
            "sync_installed",
            "Binding sync: mappings learned from peers installed",
            &agent.sync_installed,
        ),
        (
            "sync_refreshed",
            "Binding sync: peer-learned mappings kept alive by a new announcement",
            &agent.sync_refreshed,
        ),
        (
            "sync_send_errors",
            "Binding sync: datagrams that could not be sent to a peer",
            &agent.sync_send_errors,
        ),
    ] {
        reg.register(name, help, c.clone());
    }
    reg.register(
        "sync_rejected",
        "Binding sync: datagrams (peer, short, magic, version, length, mac) and records (proto, \
         inside, pool, port, range, conflict, full, error) rejected, by reason",
        agent.sync_rejects.clone(),
    );

    let mut text = String::new();
    encode(&mut text, &reg)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_a_distinct_metric() {
        let mut seen = std::collections::HashSet::new();
        for c in Kc::ALL {
            let (metric, label) = classify(c);
            assert!(seen.insert((metric, label)), "{c:?} collides");
            // A Prometheus name: digits, but not first.
            assert!(
                metric
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
                    && !metric.starts_with(|ch: char| ch.is_ascii_digit()),
                "{metric}"
            );
        }
        assert_eq!(
            classify(Kc::DropPortsExhausted),
            ("drops", Some(("reason", "ports_exhausted")))
        );
        assert_eq!(
            classify(Kc::PassedNotOurs),
            ("passed", Some(("reason", "not_ours")))
        );
        assert_eq!(
            classify(Kc::Nat64DropNonGlobal),
            ("nat64_drops", Some(("reason", "non_global")))
        );
        assert_eq!(
            classify(Kc::Nat64Out),
            ("nat64_translated_packets", Some(("direction", "out")))
        );
        for c in [Kc::Nat64In, Kc::Nat64DropHostsFull] {
            assert_ne!(help(classify(c).0), "Data-plane counter", "{c:?}");
        }
    }
}
