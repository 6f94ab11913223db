//! `xnat reload [-i IFACE]`: makes the running agent re-read its config
//! file (SIGHUP) and waits until it reports the result in its state file.
//! Exit 0 when the reload was applied, 1 when the agent refused it (the
//! message says why; nothing changed) or did not answer in time.
use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::bail;
use nat_userspace::{agent::runtime, tables::pins};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds to wait for the agent's answer.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub wait: u64,
}

pub fn run(args: Args, iface: Option<&str>) -> anyhow::Result<ExitCode> {
    let (ifname, dir) = pins::resolve_iface(iface)?;
    let name = runtime::name_of(&dir);
    let Some(pid) = runtime::live_agent(&name) else {
        bail!(
            "{ifname}: no agent is running (the programs keep translating without one); \
             `xnat attach --config FILE` starts one and adopts the attachment"
        );
    };
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    // An agent that is still starting has not published its state (or a
    // killed predecessor's is still there): wait for its own, so the
    // generation we compare with is this agent's.
    let before = loop {
        match runtime::read_state(&name) {
            Some(s) if s.pid == pid => break s.generation,
            _ if Instant::now() >= deadline => bail!(
                "{ifname}: the agent (pid {pid}) did not become ready within {} s",
                args.wait
            ),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    // SAFETY: kill(2) with a pid from a pid file whose lock is held, so
    // the process is the agent.
    if unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) } != 0 {
        bail!(
            "{ifname}: signalling the agent (pid {pid}): {}",
            std::io::Error::last_os_error()
        );
    }
    loop {
        if let Some(s) = runtime::read_state(&name).filter(|s| s.generation > before) {
            if s.ok {
                println!("xnat: {ifname}: reloaded: {}", s.message);
                return Ok(ExitCode::SUCCESS);
            }
            bail!("{ifname}: reload refused, nothing changed: {}", s.message);
        }
        if Instant::now() >= deadline {
            bail!(
                "{ifname}: the agent (pid {pid}) did not report a reload within {} s",
                args.wait
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
