//! `xnat status`: which interfaces are attached here; with `--check
//! IFACE`, whether IFACE's attachment is healthy (nat_userspace::health).
use std::process::ExitCode;

use nat_userspace::{
    agent::runtime,
    health,
    settings::nat64::{self, Nat64Prefix},
    tables::pins,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Machine-readable output.
    #[arg(long, conflicts_with = "check")]
    pub json: bool,
    /// Health check for routing daemons: exit 0 only if xnat's programs
    /// are attached to IFACE here, its agent runs and every program
    /// passes a self-test frame; exit 1 with one line naming what failed.
    #[arg(long, value_name = "IFACE")]
    pub check: Option<String>,
    /// With --check: print nothing when healthy.
    #[arg(short, long, requires = "check")]
    pub quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(ifname) = &args.check {
        return Ok(check(ifname, args.quiet));
    }
    let mut rows = Vec::new();
    for ifname in pins::attached_interfaces()? {
        let dir = pins::iface_dir(&ifname)?;
        // NAT64's prefix while it is on (an unreadable map: not shown).
        let nat64 = nat64::read_config(&dir)
            .ok()
            .and_then(|c| Some((Nat64Prefix::of(&c)?, c.host_prefix)));
        rows.push((
            ifname,
            pins::ingress_mode(&dir).unwrap_or("?"),
            pins::inside_interfaces(&dir),
            pins::inside_xdp_interfaces(&dir),
            dir,
            nat64,
        ));
    }
    if args.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(i, m, inside, inside_xdp, d, nat64)| {
                let agent = runtime::live_agent(&runtime::name_of(d));
                serde_json::json!({"interface": i, "ingress": m, "inside": inside,
                    "inside_xdp": inside_xdp, "pins": d, "agent_pid": agent,
                    "nat64": nat64.map(|(p, _)| p.to_string()),
                    "nat64_host_prefix": nat64.map(|(_, h)| h)})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if rows.is_empty() {
        println!("xnat is not attached to any interface in this network namespace");
    } else {
        for (i, m, inside, inside_xdp, d, nat64) in rows {
            let inside = if inside.is_empty() {
                String::new()
            } else {
                format!(", inside {}", inside.join(","))
            };
            let inside = if inside_xdp.is_empty() {
                inside
            } else {
                format!("{inside} (fast path in XDP on {})", inside_xdp.join(","))
            };
            let agent = match runtime::live_agent(&runtime::name_of(&d)) {
                Some(pid) => format!("agent pid {pid}"),
                None => "no agent".to_string(),
            };
            let nat64 = nat64.map_or(String::new(), |(p, h)| {
                format!(", NAT64 {p} (host prefix /{h})")
            });
            println!(
                "{i}: ingress {m}, egress tc{inside}{nat64}, {agent}, pins {}",
                d.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--check IFACE`: one line, and the exit code routing daemons act on.
/// Every failure is exit 1 (not 3 for "not attached", as other verbs
/// say it): to keepalived or a script, unhealthy is unhealthy.
fn check(ifname: &str, quiet: bool) -> ExitCode {
    match health::check(ifname) {
        Ok(()) => {
            if !quiet {
                println!("{ifname}: healthy");
            }
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("xnat: {ifname}: {problem}");
            ExitCode::FAILURE
        }
    }
}
