//! Where an attachment's state lives on bpffs:
//! `/sys/fs/bpf/xnat/<ifname>/` in the host's network namespace, and
//! `/sys/fs/bpf/xnat/<ifname>@ns<inode>/` in any other one, so two
//! namespaces' `eth0` never share a directory.
//!
//! Inside: one pin per map (named as in nat-common) and one per link
//! (`link_egress`, `link_ingress_xdp` or `link_ingress_tc`), and the expiry
//! walk's program (`prog_expire`, never attached). The link pins
//! keep the programs attached without a running agent and mark the
//! directory as a live attachment.
use std::{
    fs,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

use crate::tables::bpffs::BPFFS_ROOT;

pub const LINK_EGRESS: &str = "link_egress";
pub const LINK_INGRESS_XDP: &str = "link_ingress_xdp";
pub const LINK_INGRESS_TC: &str = "link_ingress_tc";
/// The TC program behind XDP ingress (with NAT64), finishing what the XDP
/// program hands over.
pub const LINK_INGRESS_HANDOFF_TC: &str = "link_ingress_handoff_tc";
/// Prefix of the per-inside-interface links (`link_inside_<ifname>`).
pub const LINK_INSIDE_PREFIX: &str = "link_inside_";
/// Prefix of the XDP links of the outbound fast path on inside interfaces
/// (`link_fastpath_xdp_<ifname>`).
pub const LINK_INSIDE_XDP_PREFIX: &str = "link_fastpath_xdp_";
const LINK_PREFIX: &str = "link_";
/// The expiry walk program (`xnat_expire`), loaded but never attached:
/// pinned so that a restarted agent can run it.
pub const PROG_EXPIRE: &str = "prog_expire";

/// `/sys/fs/bpf/xnat`.
pub fn root() -> PathBuf {
    Path::new(BPFFS_ROOT).join("xnat")
}

/// The suffix that keeps namespaces apart: empty in the namespace of PID 1.
fn netns_suffix() -> anyhow::Result<String> {
    let ours = fs::metadata("/proc/self/ns/net").context("reading /proc/self/ns/net")?;
    let init = fs::metadata("/proc/1/ns/net").map(|m| m.ino()).ok();
    Ok(if init == Some(ours.ino()) {
        String::new()
    } else {
        format!("@ns{}", ours.ino())
    })
}

/// The state directory of `ifname` in the current network namespace.
pub fn iface_dir(ifname: &str) -> anyhow::Result<PathBuf> {
    Ok(root().join(format!("{ifname}{}", netns_suffix()?)))
}

/// Whether `dir` holds a live attachment (any link pin).
pub fn is_attached(dir: &Path) -> bool {
    !link_pins(dir).is_empty()
}

/// The link pins present in `dir`.
pub fn link_pins(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(LINK_PREFIX))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// The inside interfaces (hairpinning) of the attachment in `dir`.
pub fn inside_interfaces(dir: &Path) -> Vec<String> {
    links_with_prefix(dir, LINK_INSIDE_PREFIX)
}

/// The inside interfaces where the outbound fast path runs in XDP.
pub fn inside_xdp_interfaces(dir: &Path) -> Vec<String> {
    links_with_prefix(dir, LINK_INSIDE_XDP_PREFIX)
}

fn links_with_prefix(dir: &Path, prefix: &str) -> Vec<String> {
    link_pins(dir)
        .iter()
        .filter_map(|p| {
            p.file_name()?
                .to_str()?
                .strip_prefix(prefix)
                .map(str::to_string)
        })
        .collect()
}

/// Which ingress hook an attachment uses, from its link pin's name.
pub fn ingress_mode(dir: &Path) -> Option<&'static str> {
    if dir.join(LINK_INGRESS_XDP).exists() {
        Some("xdp")
    } else if dir.join(LINK_INGRESS_TC).exists() {
        Some("tc")
    } else {
        None
    }
}

/// Interfaces with a live attachment in the current network namespace.
pub fn attached_interfaces() -> anyhow::Result<Vec<String>> {
    let suffix = netns_suffix()?;
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(root()) else {
        return Ok(out);
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ifname = if suffix.is_empty() {
            if name.contains("@ns") {
                continue;
            }
            name
        } else {
            match name.strip_suffix(&suffix) {
                Some(n) => n.to_string(),
                None => continue,
            }
        };
        if is_attached(&entry.path()) {
            out.push(ifname);
        }
    }
    out.sort();
    Ok(out)
}

/// The interface a verb should work on has no attachment (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotAttached(pub String);

/// Resolves the interface a verb works on: the one given, or the only one
/// attached in this namespace.
pub fn resolve_iface(given: Option<&str>) -> anyhow::Result<(String, PathBuf)> {
    let ifname = match given {
        Some(i) => i.to_string(),
        None => {
            let mut all = attached_interfaces()?;
            match all.len() {
                0 => {
                    return Err(NotAttached(
                        "nothing is attached in this network namespace (run `xnat attach IFACE` first)"
                            .into(),
                    )
                    .into());
                }
                1 => all.remove(0),
                _ => bail!(
                    "several interfaces are attached ({}); pick one with -i IFACE",
                    all.join(", ")
                ),
            }
        }
    };
    let dir = iface_dir(&ifname)?;
    if !is_attached(&dir) {
        return Err(NotAttached(format!("{ifname} does not have xnat attached")).into());
    }
    Ok((ifname, dir))
}

/// Creates the state directory, readable by root only. The parent
/// (`/sys/fs/bpf/xnat`) is root-only too, whatever the umask: its entries
/// name the attached interfaces and namespaces.
pub fn create_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(root()).with_context(|| format!("creating {}", root().display()))?;
    fs::set_permissions(root(), fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod {}", root().display()))?;
    fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod {}", dir.display()))
}

/// Restricts a pin to root (pins are created 0600 by default on most
/// kernels, but a umask or an older kernel must not widen them).
pub fn restrict(path: &Path) -> anyhow::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Removes the directory and every pin in it.
pub fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}
