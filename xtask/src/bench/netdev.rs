//! The veths of the end-to-end topologies as the measurements need them:
//! sysfs attributes, RPS, GRO, a threaded NAPI pinned to the gateway's CPU
//! (`GatewayNapi`), `ethtool -S` counters.

use std::{
    fs,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::net;
use crate::{netns, util};

/// Writes `value` to `/sys/class/net/{dev}/{attr}` of namespace `ns`.
pub(super) fn sysfs_write(ns: &str, dev: &str, attr: &str, value: &str) -> Result<()> {
    // sysfs of the namespace's devices: `ip netns exec` mounts a fresh /sys.
    util::output(Command::new("ip").args([
        "netns",
        "exec",
        ns,
        "sh",
        "-c",
        &format!("echo {value} > /sys/class/net/{dev}/{attr}"),
    ]))
    .map(drop)
}

/// Steers receive processing on `dev` to `cpu` (RPS), or back to the CPU
/// that queued the packet (`None`).
pub(super) fn set_rps(ns: &str, dev: &str, cpu: Option<usize>) -> Result<()> {
    let mask = format!("{:x}", cpu.map_or(0, |c| 1u64 << c));
    sysfs_write(ns, dev, "queues/rx-0/rps_cpus", &mask)
}

/// Whether generic receive offload is on for `dev` in `ns`.
pub(super) fn gro(ns: &str, dev: &str) -> Result<bool> {
    let out = util::stdout(netns::exec(ns, "ethtool").args(["-k", dev]))?;
    out.lines()
        .find_map(|l| l.trim().strip_prefix("generic-receive-offload:"))
        .map(|v| v.trim().starts_with("on"))
        .with_context(|| format!("no generic-receive-offload in `ethtool -k {dev}` in {ns}"))
}

pub(super) fn set_gro(ns: &str, dev: &str, on: bool) -> Result<()> {
    util::output(netns::exec(ns, "ethtool").args(["-K", dev, "gro", if on { "on" } else { "off" }]))
        .map(drop)
}

/// Pids of the threaded-NAPI kernel threads of devices named `dev` (in any
/// namespace: every topology has an `int0`).
fn napi_threads(dev: &str) -> Vec<i32> {
    let prefix = format!("napi/{dev}-");
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end().starts_with(&prefix))
        })
        .collect()
}

/// The gateway's inside interface set up for the XDP generator, undone on
/// drop so the other tests see the topology as built.
///
/// A veth takes XDP frames (`ndo_xdp_xmit`) only if it has NAPI, which it
/// gets with GRO on (as a NIC driver would have) or an XDP program of its
/// own. Its NAPI is made threaded and the thread pinned to the gateway
/// CPU: the frames' whole receive and forwarding path (frame to skb, the
/// stack or the NAT, the transmit into the server's veth and the server's
/// XDP sink in its NAPI) then runs there, while the generator has the
/// other CPU. A softirq NAPI would run where the generator schedules it,
/// on the generator's CPU. RPS on the interface is off meanwhile: it would
/// only queue each packet again for the same CPU.
pub(super) struct GatewayNapi {
    ns: String,
    dev: String,
    gro_was_on: bool,
    rps: Option<usize>,
}

impl GatewayNapi {
    pub(super) fn setup(ns: &str, dev: &str, cpu: Option<usize>) -> Result<Self> {
        let napi = GatewayNapi {
            ns: ns.to_owned(),
            dev: dev.to_owned(),
            gro_was_on: gro(ns, dev)?,
            rps: cpu,
        };
        set_gro(ns, dev, true)?;
        if cpu.is_some() {
            set_rps(ns, dev, None)?;
        }
        // The kernel starts the thread when the NAPI is threaded and
        // enabled (GRO on first), and stops it when it no longer is (see
        // drop): ours is the new one.
        let before = napi_threads(dev);
        sysfs_write(ns, dev, "threaded", "1")?;
        if let Some(cpu) = cpu {
            let deadline = Instant::now() + Duration::from_secs(2);
            let pid = loop {
                if let Some(pid) = napi_threads(dev).into_iter().find(|p| !before.contains(p)) {
                    break pid;
                }
                if Instant::now() > deadline {
                    bail!("no new napi/{dev}-* kernel thread after threading {dev}'s NAPI in {ns}");
                }
                thread::sleep(Duration::from_millis(20));
            };
            net::pin_pid_to_cpu(pid, cpu)
                .with_context(|| format!("pinning napi/{dev} (pid {pid}) to CPU {cpu}"))?;
        }
        Ok(napi)
    }
}

impl Drop for GatewayNapi {
    fn drop(&mut self) {
        let (ns, dev) = (self.ns.as_str(), self.dev.as_str());
        let mut undo = vec![sysfs_write(ns, dev, "threaded", "0")];
        if !self.gro_was_on {
            undo.push(set_gro(ns, dev, false));
        }
        if let Some(cpu) = self.rps {
            undo.push(set_rps(ns, dev, Some(cpu)));
        }
        for e in undo.into_iter().filter_map(Result::err) {
            eprintln!("xtask: bench: could not restore {dev} in {ns}: {e:#}");
        }
    }
}

/// The `ethtool -S` counters `names` of `dev` in `ns`.
pub(super) fn ethtool_stats<const N: usize>(
    ns: &str,
    dev: &str,
    names: [&str; N],
) -> Result<[u64; N]> {
    let out = util::stdout(netns::exec(ns, "ethtool").args(["-S", dev]))?;
    let mut v = [0; N];
    for (x, name) in v.iter_mut().zip(names) {
        *x = out
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(name)
                    .and_then(|r| r.strip_prefix(':'))
                    .and_then(|v| v.trim().parse().ok())
            })
            .with_context(|| format!("no {name} in `ethtool -S {dev}` in {ns}"))?;
    }
    Ok(v)
}
