//! The health of an attachment, for the routing daemons that must stop
//! sending traffic to a gateway whose NAT is gone (`xnat status --check
//! IFACE`: keepalived's `track_script`, a BIRD protocol toggled by it).
//!
//! Healthy means all three, checked in this order and reported by the
//! first that fails:
//! 1. **attached**: the egress and an ingress link are pinned for IFACE in
//!    this network namespace, and every pinned link (inside interfaces'
//!    too) is still attached to its device. A pin alone proves nothing:
//!    a link whose device was removed, or that was detached by hand,
//!    stays pinned but runs nowhere.
//! 2. **agent**: the attachment's agent holds its lock. Without it
//!    translation goes on, but nothing expires bindings (the tables fill
//!    up), answers port exhaustion, reloads or logs; the pool should move
//!    to a gateway whose agent runs.
//! 3. **self-test**: each attached program passes a frame that is not the
//!    NAT's (loader::selftest says which, and what it counts).
use std::{fmt, fs, io, path::Path};

use nat_common::{
    PROG_EGRESS_TC, PROG_INGRESS_HANDOFF_TC, PROG_INGRESS_TC, PROG_INGRESS_XDP, PROG_INSIDE_TC,
    PROG_INSIDE_XDP,
};

use crate::{
    agent::runtime,
    loader::{
        link, netdev,
        selftest::{self, Hook},
    },
    tables::pins,
};

/// Why an attachment is not healthy; its `Display` is the line the check
/// prints after the interface's name.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    NoSuchInterface,
    /// Nothing of xnat's is pinned for the interface here.
    NotAttached,
    /// One of the external interface's two hooks has no pinned link.
    Missing {
        hook: &'static str,
    },
    /// A pinned link no longer runs on its device.
    Defunct {
        program: &'static str,
        on: String,
    },
    /// An inside interface of the attachment no longer exists.
    InsideGone {
        on: String,
    },
    NoAgent,
    /// A program answered the self-test frame with something else than
    /// its pass verdict.
    SelfTest {
        program: &'static str,
        on: String,
        verdict: String,
        expected: String,
    },
    /// The check itself could not look (not root, a pin unreadable, the
    /// test run refused).
    CannotCheck(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NoSuchInterface => write!(f, "no such interface"),
            Problem::NotAttached => write!(f, "not attached"),
            Problem::Missing { hook } => write!(f, "not attached: no {hook} link is pinned"),
            Problem::Defunct { program, on } => write!(
                f,
                "not attached: {program} on {on} is pinned but no longer attached (device \
                 replaced or link detached)"
            ),
            Problem::InsideGone { on } => {
                write!(f, "not attached: inside interface {on} is gone")
            }
            Problem::NoAgent => write!(f, "no agent running"),
            Problem::SelfTest {
                program,
                on,
                verdict,
                expected,
            } => write!(
                f,
                "self-test of {program} on {on} returned {verdict} (expected {expected})"
            ),
            Problem::CannotCheck(why) => write!(f, "cannot check: {why}"),
        }
    }
}

/// One pinned link of the attachment: the program it runs and where.
struct Link {
    program: &'static str,
    hook: Hook,
    /// The device it must be attached to.
    on: String,
    prog_id: u32,
}

/// Checks the attachment of `ifname` in the current network namespace.
pub fn check(ifname: &str) -> Result<(), Problem> {
    let ifindex = netdev::ifindex(ifname).map_err(|_| Problem::NoSuchInterface)?;
    let dir = pins::iface_dir(ifname).map_err(|e| Problem::CannotCheck(format!("{e:#}")))?;
    let links = attached_links(&dir, ifname, ifindex)?;
    if runtime::live_agent(&runtime::name_of(&dir)).is_none() {
        return Err(Problem::NoAgent);
    }
    links.iter().try_for_each(self_test)
}

/// Step 1: the pinned links, each checked to run on its device.
fn attached_links(dir: &Path, ifname: &str, ifindex: u32) -> Result<Vec<Link>, Problem> {
    // Tell "nothing pinned" from "cannot look" (bpffs's xnat directory is
    // root's only): `pins::link_pins` takes both for an empty list.
    match fs::read_dir(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Problem::NotAttached),
        Err(e) => {
            return Err(Problem::CannotCheck(format!(
                "reading {}: {e}",
                dir.display()
            )));
        }
    }
    let pinned = pins::link_pins(dir);
    if pinned.is_empty() {
        return Err(Problem::NotAttached);
    }
    let names: Vec<String> = pinned
        .iter()
        .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
        .collect();
    if !names.iter().any(|n| n == pins::LINK_EGRESS) {
        return Err(Problem::Missing { hook: "egress" });
    }
    if !names
        .iter()
        .any(|n| n == pins::LINK_INGRESS_XDP || n == pins::LINK_INGRESS_TC)
    {
        return Err(Problem::Missing { hook: "ingress" });
    }
    let mut links = Vec::new();
    for (path, name) in pinned.iter().zip(&names) {
        let Some((program, hook, on)) = what_runs(name, ifname) else {
            // A pin of a newer xnat: not ours to judge.
            continue;
        };
        let expected = if on == ifname {
            ifindex
        } else {
            netdev::ifindex(&on).map_err(|_| Problem::InsideGone { on: on.clone() })?
        };
        let info = match link::info_of_pinned(path) {
            Ok(info) => info,
            // Detached between the listing and now.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Problem::NotAttached),
            Err(e) => {
                return Err(Problem::CannotCheck(format!(
                    "opening {}: {e}",
                    path.display()
                )));
            }
        };
        if info.ifindex != expected {
            return Err(Problem::Defunct { program, on });
        }
        links.push(Link {
            program,
            hook,
            on,
            prog_id: info.prog_id,
        });
    }
    Ok(links)
}

/// The program a link pin runs, its hook and its device, from the pin's
/// name (the loader names them).
fn what_runs(pin: &str, ifname: &str) -> Option<(&'static str, Hook, String)> {
    Some(match pin {
        pins::LINK_EGRESS => (PROG_EGRESS_TC, Hook::Tc, ifname.to_string()),
        pins::LINK_INGRESS_XDP => (PROG_INGRESS_XDP, Hook::Xdp, ifname.to_string()),
        pins::LINK_INGRESS_TC => (PROG_INGRESS_TC, Hook::Tc, ifname.to_string()),
        pins::LINK_INGRESS_HANDOFF_TC => (PROG_INGRESS_HANDOFF_TC, Hook::Tc, ifname.to_string()),
        _ => {
            if let Some(on) = pin.strip_prefix(pins::LINK_INSIDE_XDP_PREFIX) {
                (PROG_INSIDE_XDP, Hook::Xdp, on.to_string())
            } else {
                let on = pin.strip_prefix(pins::LINK_INSIDE_PREFIX)?;
                (PROG_INSIDE_TC, Hook::Tc, on.to_string())
            }
        }
    })
}

/// Step 3: the self-test frame through the program `link` runs.
fn self_test(link: &Link) -> Result<(), Problem> {
    let cannot = |what: &str, e: io::Error| {
        Problem::CannotCheck(format!("{what} {} on {}: {e}", link.program, link.on))
    };
    let prog = selftest::program_by_id(link.prog_id).map_err(|e| cannot("opening", e))?;
    let verdict = selftest::run(std::os::fd::AsFd::as_fd(&prog), &selftest::FRAME)
        .map_err(|e| cannot("test-running", e))?;
    if verdict == link.hook.pass() {
        return Ok(());
    }
    Err(Problem::SelfTest {
        program: link.program,
        on: link.on.clone(),
        verdict: link.hook.verdict_name(verdict),
        expected: link.hook.verdict_name(link.hook.pass()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_name_their_program_and_device() {
        let w = |p| what_runs(p, "eth0");
        assert_eq!(
            w("link_egress"),
            Some((PROG_EGRESS_TC, Hook::Tc, "eth0".into()))
        );
        assert_eq!(
            w("link_ingress_xdp"),
            Some((PROG_INGRESS_XDP, Hook::Xdp, "eth0".into()))
        );
        assert_eq!(
            w("link_inside_lan0"),
            Some((PROG_INSIDE_TC, Hook::Tc, "lan0".into()))
        );
        assert_eq!(
            w("link_fastpath_xdp_lan0"),
            Some((PROG_INSIDE_XDP, Hook::Xdp, "lan0".into()))
        );
        assert_eq!(w("link_something_new"), None);
    }

    #[test]
    fn problems_read_as_one_line() {
        let p = Problem::SelfTest {
            program: PROG_INGRESS_XDP,
            on: "eth0".into(),
            verdict: "XDP_DROP".into(),
            expected: "XDP_PASS".into(),
        };
        assert_eq!(
            p.to_string(),
            "self-test of xnat_ingress_xdp on eth0 returned XDP_DROP (expected XDP_PASS)"
        );
        assert!(
            !Problem::Defunct {
                program: PROG_EGRESS_TC,
                on: "eth0".into()
            }
            .to_string()
            .contains('\n')
        );
    }
}
