//! `xnat-flood`: the inbound-flood benchmark (issue 14). For each ingress
//! mode, once with the default `--max-inbound-sessions` (half the session
//! table) and once without a cap (`--max-inbound-sessions 0`): a small
//! session table, SYNs from spoofed sources to a port forward as fast as one
//! thread sends them, and the inside hosts opening a new flow every few ms
//! all through it (`xnat_tests::flood`). Run it through `cargo xtask bench
//! --only flood`, which builds it and xnat and writes the figures into
//! BENCHMARKS.md.
//!
//! Usage: xnat-flood [--secs S] [--every-ms N] [--max-sessions N] [--ingress tc,xdp]
//! Prints the figures as JSON on stdout, progress on stderr.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use clap::{CommandFactory, Parser};
use serde_json::{Value, json};
use xnat_tests::flood::{self, FORWARD_INSIDE, FORWARD_PUBLIC, inside::FlowPlan};
use xnat_tests::napt_topo::NaptTopo;
use xnat_tests::topology::Ingress;

/// Inside sockets, each holding its mapping's first session (not in the
/// session table, but counted here for margin).
const INSIDE_SOCKETS: usize = 3;

/// The inbound-flood benchmark: per ingress mode, a SYN flood at a port
/// forward with the default inbound-session cap and without one, while the
/// inside hosts open new flows.
///
/// Prints the figures as JSON on stdout, progress on stderr. Run it through
/// `cargo xtask bench --only flood`, which builds xnat beside it (else set
/// XNAT_BIN).
#[derive(Parser)]
#[command(name = "xnat-flood", args_override_self = true)]
struct Args {
    /// How long the inside hosts open new flows, in seconds (0 < S <= 60).
    #[arg(long, value_name = "S", default_value = "4", value_parser = secs)]
    secs: f64,
    /// The inside hosts open a new flow every N ms (non-zero).
    #[arg(long, value_name = "N", default_value = "10", value_parser = every_ms)]
    every_ms: u64,
    /// xnat's `--max-sessions` (the session table's size).
    #[arg(long, value_name = "N", default_value = "1024")]
    max_sessions: u32,
    /// The ingress modes to run, in order.
    #[arg(
        long = "ingress",
        value_name = "tc,xdp",
        value_enum,
        value_delimiter = ',',
        default_value = "tc,xdp"
    )]
    modes: Vec<Ingress>,
}

fn secs(v: &str) -> Result<f64, String> {
    let s: f64 = v.parse().map_err(|e| format!("{e}"))?;
    if !(s > 0.0 && s <= 60.0) {
        return Err("expected more than 0, at most 60".into());
    }
    Ok(s)
}

fn every_ms(v: &str) -> Result<u64, String> {
    match v.parse().map_err(|e| format!("{e}"))? {
        0 => Err("expected more than 0".into()),
        n => Ok(n),
    }
}

/// The flows of one run, which must all fit in the half of the table the
/// default cap leaves the inside (they live on past the run: UDP's
/// timeout is minutes), or a capped run would fail for want of room the
/// inside took itself.
fn flow_plan(a: &Args) -> Result<FlowPlan, String> {
    let flows = (a.secs * 1000.0 / a.every_ms as f64).round() as usize;
    let cap = nat_common::default_max_inbound_sessions(a.max_sessions);
    let room = (a.max_sessions - cap) as usize;
    if flows + INSIDE_SOCKETS > room || flows > flood::inside::MAX_FLOWS {
        return Err(format!(
            "{flows} flows do not fit in the {room} sessions the default cap leaves the inside \
             of --max-sessions {}: raise it, or open fewer flows",
            a.max_sessions
        ));
    }
    Ok(FlowPlan {
        flows,
        every: Duration::from_millis(a.every_ms),
        tries: 3,
        try_timeout: Duration::from_millis(500),
    })
}

/// One run: a fresh topology, xnat with `--max-sessions` and the cap
/// (`None`: the default), the flood and the flows.
fn run_case(a: &Args, flows: &FlowPlan, mode: Ingress, cap: Option<u32>, tag: &str) -> Value {
    let max = a.max_sessions.to_string();
    let mut extra = vec!["--max-sessions", &max];
    let cap_arg = cap.map(|c| c.to_string());
    if let Some(c) = &cap_arg {
        extra.extend(["--max-inbound-sessions", c]);
    }
    let cap_value = cap.unwrap_or(nat_common::default_max_inbound_sessions(a.max_sessions));
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut t = NaptTopo::new(tag, mode);
        flood::attach(&mut t, &extra);
        let fig = flood::run(&t, &flood::Plan::new(*flows));
        t.stop_agent();
        fig
    }));
    let mut v = match outcome {
        Ok(fig) => {
            eprintln!("xnat-flood: {}", fig.summary());
            fig.to_json()
        }
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into());
            json!({ "error": msg })
        }
    };
    v["ingress"] = mode.as_str().into();
    v["max_inbound_sessions"] = cap_value.into();
    v["cap"] = (cap_value != 0).into();
    v["attach_args"] = extra.join(" ").into();
    v
}

fn main() {
    let args = Args::parse();
    let flows = flow_plan(&args).unwrap_or_else(|e| {
        Args::command()
            .error(clap::error::ErrorKind::ValueValidation, e)
            .exit()
    });
    if std::env::var_os("XNAT_BIN").is_none() {
        // Built side by side with xnat (target/<profile>/).
        let exe = std::env::current_exe().expect("current_exe");
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("XNAT_BIN", exe.with_file_name("xnat")) };
    }
    let mut cases = Vec::new();
    for mode in &args.modes {
        for (cap, tag) in [(None, "fldc"), (Some(0), "fldn")] {
            eprintln!(
                "xnat-flood: {} ingress, {}: flood and {} inside flows",
                mode.as_str(),
                if cap.is_some() {
                    "no cap"
                } else {
                    "default cap"
                },
                flows.flows
            );
            cases.push(run_case(&args, &flows, *mode, cap, tag));
        }
    }
    let out = json!({
        "max_sessions": args.max_sessions,
        "default_cap": nat_common::default_max_inbound_sessions(args.max_sessions),
        "forward": format!("{FORWARD_PUBLIC} -> {FORWARD_INSIDE}"),
        "flows": flows.flows,
        "flow_every_ms": args.every_ms,
        "flow_tries": flows.tries,
        "flow_try_timeout_ms": flows.try_timeout.as_millis() as u64,
        "cases": cases,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
