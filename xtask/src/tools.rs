//! System tools for the end-to-end tests and the demo, and the bpffs mount.

use std::{fs, process::Command};

use anyhow::{Context, Result, bail};

use crate::util::{self, find_in_path};

/// Each command the tests or the demo run, and the Debian package that provides it.
pub const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("ss", "iproute2"),
    ("nsenter", "util-linux"),
    ("ping", "iputils-ping"),
    ("traceroute", "traceroute"),
    ("socat", "socat"),
    ("tcpdump", "tcpdump"),
    ("ethtool", "ethtool"),
    ("curl", "curl"),
    ("nft", "nftables"),
    ("conntrack", "conntrack"),
    ("iperf3", "iperf3"),
    ("bpftool", "bpftool"),
    // A real IPFIX collector and decoder for the `--ipfix` test.
    ("nfcapd", "nfdump"),
    ("nfdump", "nfdump"),
    // A second, independent IPFIX decoder: Wireshark's, for the fields
    // nfdump drops (the port block records' portRangeStart/End).
    ("tshark", "tshark"),
    // The routing daemons of the failover tests and `demo --ha`: BGP (with
    // BFD) and VRRP, as operators run them.
    ("bird", "bird2"),
    ("birdc", "bird2"),
    ("keepalived", "keepalived"),
    // The userspace NAT64 the NAT64 benchmark compares xnat with.
    ("tayga", "tayga"),
];

/// Installs (with apt) the packages of any missing tool.
pub fn ensure_tools() -> Result<()> {
    let mut missing: Vec<&str> = Vec::new();
    for (tool, package) in TOOLS {
        if find_in_path(tool).is_none() && !missing.contains(package) {
            missing.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if find_in_path("apt-get").is_none() {
        bail!("missing tools; install these packages (Debian names): {list}");
    }
    if !util::is_root() {
        bail!("missing tools; install them with: sudo apt-get install {list}");
    }
    println!("xtask: installing missing tools with apt-get: {list}");
    util::run(Command::new("apt-get").arg("update")).context("apt-get update failed")?;
    util::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing),
    )
    .with_context(|| format!("could not install {list}"))?;
    for (tool, _) in TOOLS {
        if find_in_path(tool).is_none() {
            bail!("`{tool}` is still missing after installing {list}");
        }
    }
    Ok(())
}

/// Mounts bpffs at /sys/fs/bpf if it is not mounted: xnat pins its maps there, and it is not
/// mounted at boot on every machine.
pub fn ensure_bpffs() -> Result<()> {
    let mounts = fs::read_to_string("/proc/mounts").context("could not read /proc/mounts")?;
    if bpffs_mounted(&mounts) {
        return Ok(());
    }
    println!("xtask: mounting bpffs at /sys/fs/bpf");
    util::run(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))
        .context("could not mount bpffs at /sys/fs/bpf")
}

fn bpffs_mounted(mounts: &str) -> bool {
    mounts.lines().any(|l| {
        let mut fields = l.split_whitespace();
        let _source = fields.next();
        fields.next() == Some("/sys/fs/bpf") && fields.next() == Some("bpf")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpffs_detection() {
        let without = "sysfs /sys sysfs rw,nosuid 0 0\nproc /proc proc rw 0 0\n";
        assert!(!bpffs_mounted(without));
        let with = "sysfs /sys sysfs rw 0 0\nbpf /sys/fs/bpf bpf rw,relatime 0 0\n";
        assert!(bpffs_mounted(with));
        assert!(!bpffs_mounted("none /mnt/bpf bpf rw 0 0\n"));
    }
}
