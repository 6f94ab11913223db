//! The translation log (RFC 6888 REQ-12: a large NAT must be able to log
//! bindings): one JSON object per line for every dynamic binding created
//! and deleted, with time, protocol, inside and public endpoint
//! (`--log-bindings`), and the same events as IPFIX records (`--ipfix`,
//! `ipfix.rs`): either or both. Under block allocation it logs the blocks
//! instead (`block-allocated`, `block-released`: inside address, pool
//! address, ports), one line per block rather than per binding. A NAT64
//! binding is logged with its IPv6 host (`"inside": "[2001:db8::5]:40000"`,
//! IPFIX's NAT64 BIB events), looked up when the binding is first seen and
//! remembered: by its deletion the host's stand-in may be freed.
//!
//! * created: from the data plane's ring-buffer records (exact time);
//! * deleted, reason "expired": by the agent's expiry sweep;
//! * deleted, reason "removed": a binding that vanished between two sweeps
//!   without the agent deleting it (`xnat flows flush`, a manual change).
//!
//! The agent remembers the bindings it has logged. A binding it finds in
//! the table without having seen its record (the ring overflowed) is
//! logged as created then, with its creation time from the table and
//! `"late": true`, so an overflow loses no log line as long as the binding
//! lives until the next sweep. Writing is buffered and flushed once per
//! batch; a failing write is reported and counted, never fatal.
use std::{
    collections::HashMap,
    fs::OpenOptions,
    io::{self, BufWriter, Write},
    net::{IpAddr, Ipv6Addr, SocketAddr},
    os::unix::fs::OpenOptionsExt as _,
    time::SystemTime,
};

use nat_common::{BindingEvent, EndpointKey, MAPPING_FORWARD, Mapping, nat64::is_stand_in};
use serde::Serialize;

use crate::{
    agent::{
        clock,
        ipfix::{self, BibEvent, Exporter, InsideHost},
    },
    settings::LogTarget,
    tables::flows::proto_name,
    tables::nat64::{HostOf, endpoint as inside_endpoint},
    tables::static_map::from_be,
};

/// How much older than the true time a data-plane stamp can be (its
/// clock is cached per CPU for a timer tick or two), with a wide margin.
pub const LISTING_SLACK: u64 = 50_000_000;

/// One refusal event per kind and host at most this often.
pub const REFUSALS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// Hosts remembered for that before the old ones are let go.
const REFUSALS_REMEMBERED: usize = 65536;

/// One log line.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Record {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// "created" or "deleted".
    pub event: &'static str,
    pub proto: &'static str,
    pub inside: String,
    pub public: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub late: bool,
}

/// One log line of a port block (block allocation): who held which
/// ports of a pool address from when (`block-allocated`) to when
/// (`block-released`).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct BlockRecord {
    pub time: String,
    /// "block-allocated" or "block-released".
    pub event: &'static str,
    /// The inside address (every port of the block is its).
    pub inside: String,
    /// The pool address.
    pub public: String,
    /// `first-last`.
    pub ports: String,
    /// Released: "unused" (past the hold-down) or "removed".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// What the log knows about a binding it has logged as created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Known {
    public_addr: u32,
    public_port: u16,
    created: u64,
    /// A NAT64 binding's IPv6 host (its inside address is a stand-in).
    host6: Option<Ipv6Addr>,
}

impl Known {
    /// Whether `self` and `other` are the same binding (the host is
    /// looked up only for some of what is compared).
    fn same(&self, other: &Known) -> bool {
        (self.public_addr, self.public_port, self.created)
            == (other.public_addr, other.public_port, other.created)
    }
}

/// One event, before it is written out.
struct Event<'a> {
    time: SystemTime,
    created: bool,
    key: &'a EndpointKey,
    public: &'a Known,
    reason: Option<&'static str>,
    late: bool,
}

/// The JSON-lines sink: its file (or stdout), open.
pub struct JsonSink {
    target: LogTarget,
    out: BufWriter<Box<dyn Write + Send>>,
}

impl JsonSink {
    pub fn open(target: LogTarget) -> io::Result<JsonSink> {
        Ok(JsonSink {
            out: BufWriter::new(open(&target)?),
            target,
        })
    }
}

pub struct TransLog {
    json: Option<JsonSink>,
    ipfix: Option<Exporter>,
    known: HashMap<EndpointKey, Known>,
    /// When each (event kind, inside host) last gave an IPFIX refusal.
    refusals: HashMap<(u32, u32), std::time::Instant>,
    /// False until the first sweep has taken stock of existing bindings
    /// (those were made before this agent and are not logged again).
    primed: bool,
    /// When this log was made (data-plane clock): bindings made since are
    /// this agent's to log, even those the first sweep finds without
    /// having seen their record.
    started: u64,
    /// Lines written (shared with the metrics).
    pub records: prometheus_client::metrics::counter::Counter,
    pub write_errors: u64,
    /// Where NAT64 bindings' IPv6 hosts are looked up (none: their
    /// stand-ins are logged as they are).
    hosts: Option<Box<dyn HostOf>>,
}

fn open(target: &LogTarget) -> io::Result<Box<dyn Write + Send>> {
    Ok(match target {
        LogTarget::Stdout => Box::new(io::stdout()),
        LogTarget::File(path) => Box::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                // A new log is root-only: it names inside hosts and whom
                // they talk to. An existing file keeps the admin's mode.
                .mode(0o600)
                .open(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?,
        ),
    })
}

fn endpoint(addr: u32, port_be: u16) -> String {
    format!("{}:{}", from_be(addr), u16::from_be(port_be))
}

impl Default for TransLog {
    fn default() -> Self {
        Self::new()
    }
}

impl TransLog {
    /// A log with neither sink yet.
    pub fn new() -> TransLog {
        TransLog {
            json: None,
            ipfix: None,
            known: HashMap::new(),
            refusals: HashMap::new(),
            primed: false,
            started: clock::now_ns(),
            records: Default::default(),
            write_errors: 0,
            hosts: None,
        }
    }

    /// Looks NAT64 bindings' IPv6 hosts up in `hosts` from now on.
    pub fn set_hosts(&mut self, hosts: Box<dyn HostOf>) {
        self.hosts = Some(hosts);
    }

    /// The IPv6 host behind inside address `addr`, if it is a stand-in
    /// with one.
    fn host6(&self, addr: u32) -> Option<Ipv6Addr> {
        if !is_stand_in(addr) {
            return None;
        }
        self.hosts.as_ref()?.host_of(addr)
    }

    /// `m` as the log knows it, its IPv6 host looked up.
    fn known(&self, key: &EndpointKey, m: &Mapping) -> Known {
        Known {
            public_addr: m.addr,
            public_port: m.port,
            created: m.created,
            host6: self.host6(key.addr),
        }
    }

    /// A log to the JSON-lines `target`.
    pub fn open(target: LogTarget) -> io::Result<TransLog> {
        let mut log = TransLog::new();
        log.set_json(Some(JsonSink::open(target)?));
        Ok(log)
    }

    /// Where the JSON lines go, if anywhere.
    pub fn target(&self) -> Option<&LogTarget> {
        self.json.as_ref().map(|j| &j.target)
    }

    /// IPFIX records sent by natEvent, and send errors, since the last
    /// call.
    pub fn take_ipfix_counts(&mut self) -> (Vec<(u8, u64)>, u64) {
        self.ipfix
            .as_mut()
            .map_or_else(Default::default, Exporter::take_counts)
    }

    /// Bytes of IPFIX messages sent so far.
    pub fn ipfix_bytes(&self) -> u64 {
        self.ipfix.as_ref().map_or(0, |x| x.bytes_sent)
    }

    /// Where the IPFIX records go, if anywhere.
    pub fn collector(&self) -> Option<SocketAddr> {
        self.ipfix.as_ref().map(Exporter::collector)
    }

    /// Whether nothing is written anywhere.
    pub fn is_idle(&self) -> bool {
        self.json.is_none() && self.ipfix.is_none()
    }

    /// Writes the JSON lines to `sink` from now on (a file reopened after
    /// a reload lets go of one logrotate moved), or stops them.
    pub fn set_json(&mut self, sink: Option<JsonSink>) {
        if let Some(j) = &mut self.json {
            let _ = j.out.flush();
        }
        self.json = sink;
    }

    /// Exports the records to `x`, or stops exporting them.
    pub fn set_ipfix(&mut self, x: Option<Exporter>) {
        if let Some(old) = &mut self.ipfix {
            old.flush();
        }
        self.ipfix = x;
    }

    fn write(&mut self, ev: Event<'_>) {
        if let Some(x) = &mut self.ipfix {
            let nat64 = ev.public.host6.is_some();
            let bib = BibEvent {
                time: ev.time,
                nat_event: match (nat64, ev.created) {
                    (false, true) => ipfix::NAT44_BIB_CREATE,
                    (false, false) => ipfix::NAT44_BIB_DELETE,
                    (true, true) => ipfix::NAT64_BIB_CREATE,
                    (true, false) => ipfix::NAT64_BIB_DELETE,
                },
                proto: ev.key.proto,
                inside_addr: ev.key.addr,
                inside_port: ev.key.port,
                public_addr: ev.public.public_addr,
                public_port: ev.public.public_port,
            };
            match ev.public.host6 {
                Some(h) => x.bib64(&bib, h),
                None => x.bib(&bib),
            }
        }
        let inside = match ev.public.host6 {
            Some(h) => inside_endpoint(IpAddr::V6(h), u16::from_be(ev.key.port)),
            None => endpoint(ev.key.addr, ev.key.port),
        };
        self.line(&Record {
            time: clock::rfc3339(ev.time),
            event: if ev.created { "created" } else { "deleted" },
            proto: proto_name(ev.key.proto),
            inside,
            public: endpoint(ev.public.public_addr, ev.public.public_port),
            reason: ev.reason,
            late: ev.late,
        });
    }

    /// Writes `record` as one JSON line, if the JSON lines are on.
    fn line(&mut self, record: &impl Serialize) {
        let Some(j) = &mut self.json else {
            return;
        };
        let line = serde_json::to_string(record).expect("records serialize");
        match writeln!(j.out, "{line}") {
            Ok(()) => {
                self.records.inc();
            }
            Err(e) => {
                self.write_errors += 1;
                tracing::warn!("translation log {}: {e}", j.target);
            }
        }
    }

    /// Port block events (block allocation), in the JSON lines and as
    /// IPFIX port block records. An allocation carries the data plane's
    /// time of the reservation; a release the time it is logged.
    pub fn blocks(&mut self, events: &[crate::agent::blocks::BlockEvent]) {
        for ev in events {
            let time = match ev.released {
                None => clock::wall_time(ev.owner.allocated),
                Some(_) => SystemTime::now(),
            };
            if let Some(x) = &mut self.ipfix {
                x.port_block(
                    time,
                    ev.released.is_none(),
                    ev.owner.host,
                    ev.key.addr,
                    ev.ports,
                );
            }
            self.line(&BlockRecord {
                time: clock::rfc3339(time),
                event: if ev.released.is_none() {
                    "block-allocated"
                } else {
                    "block-released"
                },
                inside: from_be(ev.owner.host).to_string(),
                public: from_be(ev.key.addr).to_string(),
                ports: format!("{}-{}", ev.ports.0, ev.ports.1),
                reason: ev.released.map(|r| r.name()),
            });
        }
        self.flush();
    }

    /// A refused new mapping from the ring (ports exhausted, host cap):
    /// an IPFIX event (RFC 8158 "NAT ports exhausted", "Quota exceeded"),
    /// at most one per kind and host every [`REFUSALS_EVERY`] (a host
    /// retrying would otherwise send one per packet). Not in the JSON
    /// lines, which log bindings.
    pub fn refused(&mut self, ev: &nat_common::Event) {
        if self.ipfix.is_none() {
            return;
        }
        let Some((host, proto)) = crate::agent::events::quoted_source(ev) else {
            return;
        };
        let now = std::time::Instant::now();
        if self
            .refusals
            .get(&(ev.kind, host))
            .is_some_and(|t| now.duration_since(*t) < REFUSALS_EVERY)
        {
            return;
        }
        if self.refusals.len() >= REFUSALS_REMEMBERED {
            self.refusals
                .retain(|_, t| now.duration_since(*t) < REFUSALS_EVERY);
        }
        self.refusals.insert((ev.kind, host), now);
        let time = SystemTime::now();
        let host = match self.host6(host) {
            Some(h) => InsideHost::V6(h),
            None => InsideHost::V4(host),
        };
        let Some(x) = &mut self.ipfix else {
            return;
        };
        match ev.kind {
            nat_common::EVENT_PORTS_EXHAUSTED => {
                x.ports_exhausted(time, host, ev.public_addr, proto)
            }
            nat_common::EVENT_HOST_CAP => x.quota_exceeded(time, host, ev.limit),
            _ => {}
        }
    }

    /// Flushes buffered lines and sends queued IPFIX records (once per
    /// batch of events).
    pub fn flush(&mut self) {
        if let Some(x) = &mut self.ipfix {
            x.flush();
        }
        if let Some(j) = &mut self.json
            && let Err(e) = j.out.flush()
        {
            self.write_errors += 1;
            tracing::warn!("translation log {}: {e}", j.target);
        }
    }

    /// A binding-created record from the ring buffer.
    pub fn created(&mut self, ev: &BindingEvent) {
        let key = EndpointKey {
            addr: ev.inside_addr,
            port: ev.inside_port,
            proto: ev.proto,
            _pad: 0,
        };
        let known = Known {
            public_addr: ev.public_addr,
            public_port: ev.public_port,
            created: ev.time_ns,
            host6: self.host6(ev.inside_addr),
        };
        match self.known.insert(key, known) {
            // Already logged late by a sweep that ran before the record
            // was read.
            Some(old) if old.same(&known) => {
                self.known.insert(key, old);
                return;
            }
            // The endpoint had another binding that vanished (flushed)
            // before a sweep noticed.
            Some(old) => self.deleted(&key, &old, "removed"),
            None => {}
        }
        self.write(Event {
            time: clock::wall_time(ev.time_ns),
            created: true,
            key: &key,
            public: &known,
            reason: None,
            late: false,
        });
    }

    /// A binding whose record was lost (ring overflow), from the table.
    fn created_late(&mut self, key: &EndpointKey, v: &Known) {
        self.write(Event {
            time: clock::wall_time(v.created),
            created: true,
            key,
            public: v,
            reason: None,
            late: true,
        });
    }

    fn deleted(&mut self, key: &EndpointKey, k: &Known, reason: &'static str) {
        self.write(Event {
            time: SystemTime::now(),
            created: false,
            key,
            public: k,
            reason: Some(reason),
            late: false,
        });
    }

    /// After a sweep: logs what it expired, then compares the remaining
    /// table with what was logged (see the module comment). The sweep
    /// read the table from `listed_from` (data-plane clock, ns) on: a
    /// binding created since (give or take the data plane's cached clock,
    /// [`LISTING_SLACK`]) may be missing from `remaining` though it lives,
    /// so it is judged by the next sweep, not called removed by this one.
    pub fn after_sweep(
        &mut self,
        expired: &[(EndpointKey, Mapping)],
        remaining: &[(EndpointKey, Mapping)],
        listed_from: u64,
    ) {
        let dynamic = |m: &Mapping| m.flags & MAPPING_FORWARD == 0;
        if !self.primed {
            self.primed = true;
            // Bindings made before this agent (its predecessor logged
            // them); one made since whose record it has not seen (made
            // before the data plane was asked for records) is logged late
            // below.
            let before_us = |m: &Mapping| m.created < self.started;
            for (k, m) in remaining
                .iter()
                .chain(expired)
                .filter(|(_, m)| dynamic(m) && before_us(m))
            {
                if !self.known.contains_key(k) {
                    let known = self.known(k, m);
                    self.known.insert(*k, known);
                }
            }
        }
        for (k, m) in expired.iter().filter(|(_, m)| dynamic(m)) {
            let known = match self.known.remove(k) {
                Some(known) => known,
                None => {
                    // Its record was lost: log its creation now.
                    let known = self.known(k, m);
                    self.created_late(k, &known);
                    known
                }
            };
            self.deleted(k, &known, "expired");
        }
        // As the table has them (hosts not looked up: most are known).
        let mut now: HashMap<EndpointKey, &Mapping> = HashMap::with_capacity(remaining.len());
        for (k, m) in remaining.iter().filter(|(_, m)| dynamic(m)) {
            now.insert(*k, m);
        }
        let same = |v: &Known, m: &Mapping| {
            (v.public_addr, v.public_port, v.created) == (m.addr, m.port, m.created)
        };
        // Logged bindings that are gone, or were replaced by a new one.
        let gone: Vec<(EndpointKey, Known)> = self
            .known
            .iter()
            .filter(|(k, v)| {
                !now.get(k).is_some_and(|m| same(v, m))
                    && v.created.saturating_add(LISTING_SLACK) < listed_from
            })
            .map(|(k, v)| (*k, *v))
            .collect();
        for (k, v) in gone {
            self.known.remove(&k);
            self.deleted(&k, &v, "removed");
        }
        // Bindings never logged (their record was lost).
        for (k, m) in now {
            if !self.known.contains_key(&k) {
                let v = self.known(&k, m);
                self.known.insert(k, v);
                self.created_late(&k, &v);
            }
        }
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::static_map::to_be;

    fn key(port: u16) -> EndpointKey {
        EndpointKey {
            addr: to_be("10.0.0.2".parse().unwrap()),
            port: port.to_be(),
            proto: 17,
            _pad: 0,
        }
    }

    fn mapping(port: u16, created: u64) -> Mapping {
        Mapping {
            addr: to_be("198.51.100.1".parse().unwrap()),
            port: port.to_be(),
            flags: 0,
            created,
            last_seen: created,
            ..Default::default()
        }
    }

    /// The ring's record of a UDP binding of endpoint `port` (see `key`,
    /// `mapping`) made at `time_ns`.
    fn record(port: u16, time_ns: u64) -> BindingEvent {
        BindingEvent {
            kind: nat_common::EVENT_BINDING_CREATED,
            proto: 17,
            inside_addr: key(port).addr,
            inside_port: key(port).port,
            public_addr: mapping(port, 0).addr,
            public_port: mapping(port, 0).port,
            time_ns,
            ..Default::default()
        }
    }

    fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn created_expired_removed_and_late() {
        let path = std::env::temp_dir().join(format!("xnat-translog-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut log = TransLog::open(LogTarget::File(path.clone())).unwrap();
        // A binding that existed before the agent: taken stock of, not logged.
        log.after_sweep(&[], &[(key(1), mapping(1, 5))], u64::MAX);
        assert!(lines(&path).is_empty());

        let ev = record(2, clock::now_ns());
        log.created(&ev);
        log.flush();
        // Sweep: 1 expired, 2 remains, 3 appears without a record (late),
        // and the record of 3 arriving afterwards is not logged twice.
        log.after_sweep(
            &[(key(1), mapping(1, 5))],
            &[(key(2), mapping(2, ev.time_ns)), (key(3), mapping(3, 7))],
            u64::MAX,
        );
        log.created(&BindingEvent {
            inside_port: key(3).port,
            public_port: mapping(3, 7).port,
            time_ns: 7,
            ..ev
        });
        // 2 vanished without the agent (flush).
        log.after_sweep(&[], &[(key(3), mapping(3, 7))], u64::MAX);

        let v = lines(&path);
        let brief: Vec<(String, String, String, bool)> = v
            .iter()
            .map(|r| {
                (
                    r["event"].as_str().unwrap().to_string(),
                    r["inside"].as_str().unwrap().to_string(),
                    r["reason"].as_str().unwrap_or("").to_string(),
                    r["late"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        assert_eq!(
            brief,
            vec![
                ("created".into(), "10.0.0.2:2".into(), "".into(), false),
                (
                    "deleted".into(),
                    "10.0.0.2:1".into(),
                    "expired".into(),
                    false
                ),
                ("created".into(), "10.0.0.2:3".into(), "".into(), true),
                (
                    "deleted".into(),
                    "10.0.0.2:2".into(),
                    "removed".into(),
                    false
                ),
            ]
        );
        assert_eq!(v[0]["proto"], "udp");
        assert_eq!(v[0]["public"], "198.51.100.1:2");
        assert!(v[0]["time"].as_str().unwrap().ends_with('Z'));
        let _ = std::fs::remove_file(&path);
    }

    /// A binding made while a sweep read the table: its record comes in
    /// before the sweep's report, which does not list it. It is not
    /// called removed (nor logged late after), and a later sweep that
    /// still does not find it says it is gone.
    #[test]
    fn a_binding_made_during_the_sweep_is_not_removed_by_it() {
        let path =
            std::env::temp_dir().join(format!("xnat-translog3-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut log = TransLog::open(LogTarget::File(path.clone())).unwrap();
        log.after_sweep(&[], &[], u64::MAX);
        let listed_from = 1_000_000_000;
        // Stamped a little before the listing began (a cached clock).
        let ev = record(4, listed_from - 1_000_000);
        log.created(&ev);
        log.after_sweep(&[], &[], listed_from);
        // The next sweep lists it: nothing new to say.
        log.after_sweep(&[], &[(key(4), mapping(4, ev.time_ns))], u64::MAX);
        // One that does not: removed.
        log.after_sweep(&[], &[], u64::MAX);
        let events: Vec<(String, bool)> = lines(&path)
            .iter()
            .map(|r| {
                (
                    format!(
                        "{} {}",
                        r["event"].as_str().unwrap(),
                        r["reason"].as_str().unwrap_or("")
                    ),
                    r["late"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        assert_eq!(
            events,
            vec![
                ("created ".to_string(), false),
                ("deleted removed".to_string(), false)
            ]
        );
        let _ = std::fs::remove_file(&path);
    }

    /// The first sweep takes the bindings it finds as its predecessor's,
    /// but not one made since this log started whose record it missed
    /// (made before the data plane was asked for records): that one is
    /// logged, late.
    #[test]
    fn the_first_sweep_logs_what_was_made_since_the_start() {
        let path =
            std::env::temp_dir().join(format!("xnat-translog4-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut log = TransLog::open(LogTarget::File(path.clone())).unwrap();
        let since_start = clock::now_ns() + 1;
        log.after_sweep(
            &[],
            &[(key(5), mapping(5, 3)), (key(6), mapping(6, since_start))],
            u64::MAX,
        );
        let logged: Vec<(String, String, bool)> = lines(&path)
            .iter()
            .map(|r| {
                (
                    r["event"].as_str().unwrap().to_string(),
                    r["inside"].as_str().unwrap().to_string(),
                    r["late"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert_eq!(logged[0].0, "created");
        assert!(logged[0].1.ends_with(":6") && logged[0].2, "{logged:?}");
        let _ = std::fs::remove_file(&path);
    }

    /// A NAT64 binding is logged with its IPv6 host, also when its
    /// deletion comes after its stand-in was freed; one made while its
    /// record was lost is looked up when the sweep finds it.
    #[test]
    fn nat64_bindings_are_logged_with_their_ipv6_host() {
        use crate::tables::nat64::Hosts;
        use nat_common::nat64::stand_in;
        let path =
            std::env::temp_dir().join(format!("xnat-translog5-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut log = TransLog::open(LogTarget::File(path.clone())).unwrap();
        let (s, t) = (stand_in(0x1234), stand_in(0x1235));
        log.set_hosts(Box::new(Hosts::from_pairs([
            (s, "2001:db8::5".parse().unwrap()),
            (t, "2001:db8::6".parse().unwrap()),
        ])));
        log.after_sweep(&[], &[], u64::MAX);
        let v6 = |addr, port: u16| EndpointKey { addr, ..key(port) };
        log.created(&BindingEvent {
            inside_addr: s,
            ..record(1, clock::now_ns())
        });
        // Both stand-ins freed: what was looked up is remembered; the
        // binding seen first now is logged with its stand-in as it is.
        log.set_hosts(Box::new(Hosts::default()));
        log.after_sweep(
            &[(v6(s, 1), mapping(1, 0))],
            &[(v6(t, 2), mapping(2, 9))],
            u64::MAX,
        );
        let v = lines(&path);
        let brief: Vec<(&str, &str)> = v
            .iter()
            .map(|r| (r["event"].as_str().unwrap(), r["inside"].as_str().unwrap()))
            .collect();
        assert_eq!(
            brief,
            vec![
                ("created", "[2001:db8::5]:1"),
                ("deleted", "[2001:db8::5]:1"),
                ("created", "0.0.18.53:2"),
            ]
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn lost_records_are_logged_late_and_replacements_close_the_old_binding() {
        let path =
            std::env::temp_dir().join(format!("xnat-translog2-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut log = TransLog::open(LogTarget::File(path.clone())).unwrap();
        log.after_sweep(&[], &[], u64::MAX);
        // Never seen, then expired: created (late) and deleted.
        log.after_sweep(&[(key(7), mapping(7, 70))], &[], u64::MAX);
        // A record for endpoint 8, then a new binding of endpoint 8 (the
        // first was flushed and the flow came back before a sweep).
        let ev = record(8, 80);
        log.created(&ev);
        log.created(&BindingEvent { time_ns: 81, ..ev });
        log.flush();
        let brief: Vec<(String, String, bool)> = lines(&path)
            .iter()
            .map(|r| {
                (
                    r["event"].as_str().unwrap().to_string(),
                    r["reason"].as_str().unwrap_or("").to_string(),
                    r["late"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        assert_eq!(
            brief,
            vec![
                ("created".into(), "".into(), true),
                ("deleted".into(), "expired".into(), false),
                ("created".into(), "".into(), false),
                ("deleted".into(), "removed".into(), false),
                ("created".into(), "".into(), false),
            ]
        );
        let _ = std::fs::remove_file(&path);
    }
}
