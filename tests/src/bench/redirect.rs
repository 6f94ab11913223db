//! `xnat-bench --attach-redirect IFACE --to EGRESS --dst-mac MAC`: the
//! end-to-end benchmark's bare XDP redirect
//! (`nat-ebpf/src/bench_baseline.rs`) attached to IFACE, forwarding to the
//! fixed next hop MAC out of EGRESS, for as long as this process runs.
//! `cargo xtask bench` starts it in the gateway namespace of its
//! `xdp_redirect` topology and stops it with SIGINT when it is done.

use anyhow::{Context as _, Result};
use aya::{
    Ebpf,
    maps::Array,
    programs::{Xdp, XdpMode},
};
use nat_common::bench::{MAP_BASELINE_HOP, PROG_BASELINE_REDIRECT_XDP, RedirectHop};
use nat_userspace::loader::netdev;

/// A MAC address written aa:bb:cc:dd:ee:ff.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("not a MAC address (aa:bb:cc:dd:ee:ff): {s}");
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next().ok_or_else(bad)?;
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// Attaches the program to `iface` (of this network namespace) with its
/// next hop set to `dst_mac` out of `to`, says so on stdout, and holds it
/// attached until SIGINT or SIGTERM.
///
/// The attachment is a BPF link held only by this process's fd, never
/// pinned: however the process ends, even killed, the kernel detaches the
/// program when the fd goes, so nothing outlives the benchmark.
pub fn attach_and_wait(iface: &str, to: &str, dst_mac: [u8; 6]) -> Result<()> {
    // Blocked before anything else, so a signal sent as soon as we report
    // attached waits for sigwait below instead of killing us mid-drop.
    let signals = block_stop_signals()?;
    // The next hop, resolved here once: the program itself looks nothing
    // up (see its comment).
    let hop = RedirectHop {
        ifindex: netdev::ifindex(to)?,
        smac: netdev::hwaddr(to)?,
        dmac: dst_mac,
    };
    let mut ebpf = Ebpf::load(nat_userspace::bench_baseline_object())
        .context("loading the bench-baseline object")?;
    let mut hops: Array<_, RedirectHop> = ebpf
        .map_mut(MAP_BASELINE_HOP)
        .with_context(|| format!("no map {MAP_BASELINE_HOP} in bench-baseline"))?
        .try_into()?;
    hops.set(0, hop, 0)
        .with_context(|| format!("writing the next hop into {MAP_BASELINE_HOP}"))?;
    let prog: &mut Xdp = ebpf
        .program_mut(PROG_BASELINE_REDIRECT_XDP)
        .with_context(|| format!("no {PROG_BASELINE_REDIRECT_XDP} in bench-baseline"))?
        .try_into()?;
    prog.load()
        .with_context(|| format!("loading {PROG_BASELINE_REDIRECT_XDP} (verifier)"))?;
    // Driver (native) mode, where xnat's XDP fast path runs on a veth:
    // generic XDP would build an skb first and measure something else.
    // Failing beats silently falling back.
    let link = prog.attach(iface, XdpMode::Driver).with_context(|| {
        format!("attaching {PROG_BASELINE_REDIRECT_XDP} to {iface} (native XDP)")
    })?;
    println!("xnat-bench: redirect attached to {iface}");
    let mut sig = 0;
    // SAFETY: `signals` is an initialised set of blocked signals.
    let rc = unsafe { libc::sigwait(&signals, &mut sig) };
    if rc != 0 {
        anyhow::bail!("sigwait: {}", std::io::Error::from_raw_os_error(rc));
    }
    prog.detach(link)
        .with_context(|| format!("detaching {PROG_BASELINE_REDIRECT_XDP} from {iface}"))?;
    println!("xnat-bench: redirect detached from {iface}");
    Ok(())
}

fn block_stop_signals() -> Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before
    // use; sigprocmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            anyhow::bail!("sigprocmask: {}", std::io::Error::last_os_error());
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_mac;

    #[test]
    fn mac() {
        assert_eq!(
            parse_mac("02:00:00:00:02:0a"),
            Ok([0x02, 0, 0, 0, 0x02, 0x0a])
        );
        for bad in [
            "",
            "02:00:00:00:02",
            "02:00:00:00:02:0a:00",
            "2:00:00:00:02:0a",
            "zz:00:00:00:02:0a",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
