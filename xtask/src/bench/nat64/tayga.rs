//! TAYGA as a stateful NAT64, the common way (its man page's): TAYGA
//! itself is stateless and maps each IPv6 host to an address of its own
//! dynamic pool; nftables masquerade then shares the gateway's one IPv4
//! address among them (NAT44). TAYGA runs in user space and moves one
//! packet at a time through its TUN device: read, translate, write back.

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::topo::PREFIX;
use crate::{
    netns,
    proc::{self, Background},
    util,
};

/// TAYGA's TUN device.
const TUN: &str = "nat64";
/// TAYGA's own IPv4 address (the source of its ICMPv4 errors), in its pool.
const TAYGA_V4: &str = "192.168.255.1";
/// The pool TAYGA maps IPv6 hosts into, private: the masquerade follows.
const POOL: &str = "192.168.255.0/24";
/// TAYGA's own IPv6 address (the source of its ICMPv6 errors): TAYGA wants
/// one where its IPv4 address is private and the prefix the well-known one.
const TAYGA_V6: &str = "2001:db8:64:ffff::1";

/// A running TAYGA and the routes and masquerade around it in the
/// gateway's namespace; stopped when dropped (its TUN device goes with it).
pub struct Tayga {
    bg: Background,
}

impl Tayga {
    /// Process id of the daemon (one thread).
    pub fn pid(&self) -> i32 {
        self.bg.id() as i32
    }
}

/// TAYGA's version as Debian packaged it (`tayga` itself cannot say), if
/// dpkg knows it.
pub fn version() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "tayga"])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !v.is_empty()).then_some(v)
}

fn config() -> String {
    format!(
        "tun-device {TUN}\n\
         ipv4-addr {TAYGA_V4}\n\
         ipv6-addr {TAYGA_V6}\n\
         prefix {PREFIX}\n\
         dynamic-pool {POOL}\n"
    )
}

fn tun_exists(ns: &str) -> bool {
    netns::exec(ns, "ip")
        .args(["link", "show", TUN])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts TAYGA in namespace `ns` (the gateway; forwarding on, `ext0` its
/// external interface), its configuration written to `tmp`.
pub fn start(ns: &str, tmp: &Path) -> Result<Tayga> {
    let conf = tmp.join(format!("{ns}-tayga.conf"));
    fs::write(&conf, config())?;
    // `-d`: in the foreground, messages on stdout (startup only: TAYGA
    // logs nothing per packet). Without it they go to syslog, and a
    // refused configuration would fail without a word.
    let mut cmd = netns::exec(ns, "tayga");
    cmd.arg("-d").arg("--config").arg(&conf);
    let mut bg = Background::spawn(&format!("tayga in {ns}"), cmd, libc::SIGTERM)?;
    // Its TUN device appears once the configuration is read; TAYGA reads
    // from it right after.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tun_exists(ns) {
        if let Some(status) = bg.wait(Duration::ZERO)? {
            bail!(
                "tayga exited ({status}) before creating {TUN}: {}",
                bg.stdout_lines().join(" / ")
            );
        }
        proc::check_interrupted()?;
        if Instant::now() >= deadline {
            bail!("tayga did not create {TUN} within 10 s");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let tayga = Tayga { bg };
    netns::ip(ns, &["link", "set", TUN, "up"])?;
    netns::ip(ns, &["-6", "route", "add", PREFIX, "dev", TUN])?;
    netns::ip(ns, &["route", "add", POOL, "dev", TUN])?;
    let nft = tmp.join(format!("{ns}-masquerade.nft"));
    fs::write(
        &nft,
        "table ip nat {\n\
         \tchain postrouting {\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\toifname \"ext0\" masquerade\n\
         \t}\n\
         }\n",
    )?;
    util::output(netns::exec(ns, "nft").arg("-f").arg(&nft))
        .context("loading the nftables masquerade behind TAYGA")?;
    Ok(tayga)
}
