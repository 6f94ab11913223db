//! An outside SYN flood against a port forward while inside hosts open new
//! flows (issue 14): what `--max-inbound-sessions` is for. Shared by the
//! end-to-end test (tests/e2e_edges.rs, `inbound_flood_does_not_starve_inside`)
//! and the benchmark (`xnat-flood`, run by `cargo xtask bench --only flood`).
//!
//! On the NAPT topology ([`crate::napt_topo`]): xnat with the pool
//! 198.51.100.1 and a port forward 198.51.100.1:8080 -> 10.0.0.5:80
//! ([`attach`]); the server namespace sends SYNs from spoofed random
//! sources to the forward ([`syns`]) while the inside hosts open new flows
//! ([`inside`]); [`run`] puts the two together and reads xnat's counters
//! into [`Figures`].

pub mod inside;
pub mod syns;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use serde_json::{Value, json};

use crate::hairpin_topo::RawIp;
use crate::napt_topo::{HOST_FWD, NaptTopo, POOL};
use crate::wait::wait_until;

use inside::{FlowPlan, FlowTally, InsideFlows};
use syns::{FloodProgress, FloodRun, SPOOFED_PREFIX, SynFlood};

/// The pool address (a pool of one).
pub const PUBLIC: Ipv4Addr = POOL[0];
/// The port forward the flood aims at: PUBLIC:8080 -> 10.0.0.5:80 (no
/// listener: the inside host answers each SYN that gets through with a
/// reset, and the router drops the resets on their way to the spoofed
/// sources).
pub const FORWARD_PUBLIC: SocketAddrV4 = SocketAddrV4::new(PUBLIC, 8080);
pub const FORWARD_INSIDE: SocketAddrV4 = SocketAddrV4::new(HOST_FWD, 80);
/// How long the flood may take to be refused its first SYN.
const FILL_TIMEOUT: Duration = Duration::from_secs(30);

/// Readies the topology for the flood and attaches xnat with the pool,
/// `--internal 10.0.0.0/8` and `extra` (table sizes, the cap), then adds
/// the port forward. The router gets a blackhole route for the spoofed
/// sources (answers to them go nowhere) and no reverse-path filter (which
/// would drop SYNs from sources it has no route to).
pub fn attach(t: &mut NaptTopo, extra: &[&str]) {
    t.rtr.ip(&["route", "add", "blackhole", SPOOFED_PREFIX]);
    for k in ["all", "default", "eth1"] {
        t.rtr.sysctl(&format!("net.ipv4.conf.{k}.rp_filter"), "0");
    }
    let pool = PUBLIC.to_string();
    let mut args = vec!["--pool", &pool, "--internal", "10.0.0.0/8"];
    args.extend_from_slice(extra);
    t.attach(&args);
    let (public, inside) = (FORWARD_PUBLIC.to_string(), FORWARD_INSIDE.to_string());
    t.xnat_ok(&["forward", "add", "tcp", &public, &inside]);
}

/// The flood and the inside flows of one run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub flood: SynFlood,
    pub flows: FlowPlan,
}

impl Plan {
    /// SYNs to [`FORWARD_PUBLIC`], unpaced and until the inside flows are
    /// done, unless `flood.limit` and `flood.pace` say otherwise.
    pub fn new(flows: FlowPlan) -> Plan {
        Plan {
            flood: SynFlood {
                target: FORWARD_PUBLIC,
                limit: None,
                pace: None,
                seed: 0x9e37_79b9_7f4a_7c15,
            },
            flows,
        }
    }
}

/// What one run measured. Counter figures are increases over the run.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub flood: FloodRun,
    /// SYNs sent when the inside flows started, and when they were done.
    pub syns_at_flows_start: u64,
    pub syns_at_flows_end: u64,
    /// `napt_sessions_created` (the flood's and the inside's).
    pub sessions_created: u64,
    /// `drop_inbound_session_limit`; `None` if this build has no such counter.
    pub refused_inbound_limit: Option<u64>,
    /// `drop_session_table_full`.
    pub refused_table_full: u64,
    /// Live sessions at the end by protocol and state
    /// (`napt.sessions_by_state` of `xnat stats --json`).
    pub live_sessions: Value,
    pub flows: FlowTally,
}

impl Figures {
    /// Live TCP sessions at the end: the flood's (the inside opens UDP ones).
    pub fn live_tcp(&self) -> u64 {
        self.live_sessions
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.starts_with("tcp"))
                    .filter_map(|(_, v)| v.as_u64())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Live UDP sessions at the end: the inside's.
    pub fn live_udp(&self) -> u64 {
        self.live_sessions["udp"].as_u64().unwrap_or(0)
    }

    pub fn to_json(&self) -> Value {
        let f = &self.flows;
        json!({
            "syns_sent": self.flood.sent,
            "flood_secs": self.flood.secs,
            "syns_per_s": self.flood.rate(),
            "syns_at_flows_start": self.syns_at_flows_start,
            "syns_at_flows_end": self.syns_at_flows_end,
            "sessions_created": self.sessions_created,
            "refused_inbound_limit": self.refused_inbound_limit,
            "refused_table_full": self.refused_table_full,
            "live_sessions": self.live_sessions,
            "live_tcp": self.live_tcp(),
            "live_udp": self.live_udp(),
            "flows_total": f.total,
            "flows_ok": f.ok,
            "flows_ok_first_try": f.ok_first_try,
            "flows_ok_pct": f.ok_pct(),
            "flows_secs": f.secs,
            "flow_rtt_ms_median": f.rtt_quantile(0.5),
            "flow_rtt_ms_max": f.rtt_quantile(1.0),
            "flow_failures": f.failures,
        })
    }

    /// One paragraph for a test's log.
    pub fn summary(&self) -> String {
        format!(
            "{} spoofed SYNs to {FORWARD_PUBLIC} in {:.1} s ({:.0}/s; the inside flows ran while \
             SYNs {}..{} were being sent); sessions created {}; refused: \
             drop_inbound_session_limit {}, drop_session_table_full {}; live sessions at the \
             end {}; inside flows ok {}/{} ({} at the first try)",
            self.flood.sent,
            self.flood.secs,
            self.flood.rate(),
            self.syns_at_flows_start,
            self.syns_at_flows_end,
            self.sessions_created,
            self.refused_inbound_limit
                .map_or("(no such counter)".to_string(), |v| v.to_string()),
            self.refused_table_full,
            self.live_sessions,
            self.flows.ok,
            self.flows.total,
            self.flows.ok_first_try,
        )
    }
}

/// Runs `plan` on an attached topology ([`attach`]): binds the inside
/// flows' sockets and gives the inside sockets their mappings, starts the
/// flood, waits until xnat refuses its first SYN (the inbound share of the
/// session table is full, or with no cap the whole table), opens the inside
/// flows while the flood goes on, then ends the flood (one with a limit
/// runs on to it) and reads the counters.
pub fn run(t: &NaptTopo, plan: &Plan) -> Figures {
    let flows = InsideFlows::bind(t, plan.flows.flows, PUBLIC);
    flows.open_mappings(t);
    let created0 = t.counter("napt_sessions_created");
    let full0 = t.counter("drop_session_table_full");
    let limit0 = t.try_counter("drop_inbound_session_limit");
    let refused = || {
        t.try_counter("drop_inbound_session_limit").unwrap_or(0) > limit0.unwrap_or(0)
            || t.counter("drop_session_table_full") > full0
    };

    let progress = FloodProgress::default();
    let raw = RawIp::open(&t.srv);
    let (flood, at_start, tally, at_end) = std::thread::scope(|s| {
        let flood = s.spawn(|| plan.flood.run(&raw, &progress));
        // Stop the flood whatever happens here, so a panic cannot leave
        // the scope waiting for an endless flood.
        let _stop = StopOnDrop(&progress);
        wait_until(
            FILL_TIMEOUT,
            "the flood's SYNs to be refused (inbound session limit or a full table)",
            refused,
        );
        let at_start = progress.sent();
        let tally = flows.run(&plan.flows);
        let at_end = progress.sent();
        // A flood of a set size runs to its end; an open-ended one ends
        // with the flows.
        if plan.flood.limit.is_none() {
            progress.stop();
        }
        (flood.join().unwrap(), at_start, tally, at_end)
    });

    let stats = t.stats();
    let counter = |name: &str| crate::topology::json_counter(&stats["counters"], name);
    Figures {
        flood,
        syns_at_flows_start: at_start,
        syns_at_flows_end: at_end,
        sessions_created: counter("napt_sessions_created").unwrap_or(0) - created0,
        refused_inbound_limit: counter("drop_inbound_session_limit")
            .map(|v| v - limit0.unwrap_or(0)),
        refused_table_full: counter("drop_session_table_full").unwrap_or(0) - full0,
        live_sessions: stats["napt"]["sessions_by_state"].clone(),
        flows: tally,
    }
}

/// Stops the flood when dropped.
struct StopOnDrop<'a>(&'a FloodProgress);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}
