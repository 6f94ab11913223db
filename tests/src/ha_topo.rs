//! Two xnat gateways as an active/standby pair (tests/e2e_failover.rs, the
//! failover benchmark and `cargo xtask demo --ha`): keepalived (VRRPv3)
//! owns the inside virtual gateway address, BIRD announces the pool to
//! the outside router over BGP (with BFD) from the gateway keepalived made
//! master only, and both run `xnat attach` with the same deterministic
//! configuration, syncing their bindings to each other.
//!
//! ```text
//!   cli 10.77.0.10 ──┐        gw1 in0 10.77.0.2 (+ VIP 10.77.0.1)   EXT1 198.51.100.0/31 ── rtr gw1 .1
//!     default via    ├─ lan ──┤                                                               rtr srv0 198.18.0.1 ── srv 198.18.0.10
//!     10.77.0.1      │ (br0)  gw2 in0 10.77.0.3                      EXT2 198.51.100.2/31 ── rtr gw2 .3
//! ```
//!
//! The pool 203.0.113.0/28 is no gateway's address: each has a blackhole
//! route for it (what xnat does not translate dies there), BIRD exports
//! that route as the announcement, and the router routes the pool to
//! whichever gateway announces it. keepalived's `track_script` is `xnat
//! status --check`; its notify script enables BIRD's `pool` protocol on
//! MASTER and disables it otherwise, so only the master announces (the
//! standby's announcement also carries a longer AS path, a tie-breaker).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::agent::Agent;
use crate::net::Net;
use crate::netns::{BgChild, CMD_TIMEOUT, Netns, run_cmd, xnat_bin};
use crate::topology::{Ingress, pid36, remove_stale_pins};

pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 10);
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
pub const POOL: &str = "203.0.113.0/28";
/// Each gateway's address on the inside LAN (also its sync endpoint).
const GW_INSIDE: [&str; 2] = ["10.77.0.2", "10.77.0.3"];
/// Each gateway's outside address and the router's end of the link.
const GW_OUTSIDE: [(&str, &str); 2] = [
    ("198.51.100.0", "198.51.100.1"),
    ("198.51.100.2", "198.51.100.3"),
];
const SYNC_PORT: u16 = 4790;

/// How the pair is run.
#[derive(Clone, Copy, Debug)]
pub struct HaOptions {
    /// Binding sync between the two agents (`--sync-listen/--sync-peer`).
    pub sync: bool,
    /// VRRP advertisement interval, seconds.
    pub advert: f32,
}

impl Default for HaOptions {
    fn default() -> Self {
        HaOptions {
            sync: true,
            advert: 0.1,
        }
    }
}

/// One gateway: its namespace, external interface, agent and daemons.
pub struct Gateway {
    pub ns: Netns,
    pub ext: String,
    pub agent: Option<Agent>,
    bird: Option<BgChild>,
    keepalived: Option<BgChild>,
    /// keepalived's VRRP child (its pid file), killed with it.
    vrrp_pid: PathBuf,
    bird_ctl: PathBuf,
}

impl Gateway {
    /// The pid keepalived's VRRP child wrote, if any.
    fn vrrp_child(&self) -> Option<libc::pid_t> {
        std::fs::read_to_string(&self.vrrp_pid)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// SIGKILLs the agent, BIRD and keepalived (both processes), as a
    /// machine that dies does: nothing runs its shutdown.
    fn kill_all(&mut self) {
        if let Some(pid) = self.vrrp_child() {
            // SAFETY: plain kill(2); a stale pid of an exited child of ours
            // is at worst a process that is gone.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for c in [self.keepalived.as_mut(), self.bird.as_mut()]
            .into_iter()
            .flatten()
        {
            c.signal(libc::SIGKILL);
        }
        if let Some(a) = self.agent.take() {
            a.kill9();
        }
    }

    /// Whether the inside virtual address is on this gateway.
    pub fn has_vip(&self) -> bool {
        self.ns
            .ip(&["-4", "addr", "show", "dev", "in0"])
            .contains(&format!("inet {VIP}/"))
    }

    /// `xnat ARGS` in this gateway's namespace.
    pub fn xnat(&self, args: &[&str]) -> String {
        let mut cmd = self.ns.cmd(xnat_bin());
        cmd.args(args);
        let out = run_cmd(&mut cmd, CMD_TIMEOUT);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `xnat flows -i EXT --json`.
    pub fn flows(&self) -> serde_json::Value {
        serde_json::from_str(&self.xnat(&["flows", "-i", &self.ext, "--json"]))
            .unwrap_or(serde_json::Value::Null)
    }
}

/// The whole pair with its LAN, router and server.
pub struct HaTopo {
    pub cli: Netns,
    pub rtr: Netns,
    pub srv: Netns,
    pub gw: [Gateway; 2],
    pub dir: PathBuf,
    rtr_bird: Option<BgChild>,
    rtr_ctl: PathBuf,
    _lan: Netns,
}

fn spec(ext1: &str, ext2: &str) -> String {
    format!(
        "
    hosts cli lan gw1 gw2 rtr srv
    link cli:eth0 lan:p0
    link gw1:in0 lan:p1
    link gw2:in0 lan:p2
    bridge lan:br0 p0 p1 p2
    link gw1:{ext1} rtr:gw1
    link gw2:{ext2} rtr:gw2
    link rtr:srv0 srv:eth0
    addr cli:eth0 {CLIENT}/24
    addr gw1:in0 {}/24
    addr gw2:in0 {}/24
    addr gw1:{ext1} {}/31
    addr gw2:{ext2} {}/31
    addr rtr:gw1 {}/31
    addr rtr:gw2 {}/31
    addr rtr:srv0 198.18.0.1/24
    addr srv:eth0 {SERVER}/24
    route cli default via {VIP}
    route gw1 default via {}
    route gw2 default via {}
    route gw1 blackhole {POOL}
    route gw2 blackhole {POOL}
    route srv default via 198.18.0.1
    sysctl net.ipv4.ip_forward=1 gw1 gw2 rtr
    sysctl net.ipv4.conf.all.rp_filter=0 gw1 gw2 rtr
    sysctl net.ipv4.conf.default.rp_filter=0 gw1 gw2 rtr
",
        GW_INSIDE[0],
        GW_INSIDE[1],
        GW_OUTSIDE[0].0,
        GW_OUTSIDE[1].0,
        GW_OUTSIDE[0].1,
        GW_OUTSIDE[1].1,
        GW_OUTSIDE[0].1,
        GW_OUTSIDE[1].1,
    )
}

/// BIRD on the router: BGP with BFD to each gateway, the pool accepted
/// from them into the kernel table.
fn router_bird() -> String {
    format!(
        r#"log stderr all;
router id 198.51.100.1;
protocol device {{ scan time 10; }}
protocol kernel {{ ipv4 {{ export all; import none; }}; }}
protocol bfd {{
  interface "gw*" {{ min rx interval 50 ms; min tx interval 50 ms; idle tx interval 300 ms; multiplier 3; }};
}}
template bgp gwpeer {{
  local as 65000;
  direct;
  hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 5;
  check link yes;
  bfd on;
  ipv4 {{ import where net ~ [ {POOL} ]; export none; }};
}}
protocol bgp gw1 from gwpeer {{ neighbor {} as 65001; source address {}; }}
protocol bgp gw2 from gwpeer {{ neighbor {} as 65001; source address {}; }}
"#,
        GW_OUTSIDE[0].0, GW_OUTSIDE[0].1, GW_OUTSIDE[1].0, GW_OUTSIDE[1].1
    )
}

/// BIRD on gateway `i`: the pool as a static blackhole route, disabled
/// until keepalived's notify script enables it (MASTER), exported to the
/// router over BGP with BFD; the second gateway prepends its AS thrice.
fn gateway_bird(i: usize, ext: &str) -> String {
    let (me, peer) = GW_OUTSIDE[i];
    let export = if i == 0 {
        r#"export where proto = "pool";"#.to_string()
    } else {
        r#"export filter { if proto = "pool" then { bgp_path.prepend(65001); bgp_path.prepend(65001); bgp_path.prepend(65001); accept; } reject; };"#.to_string()
    };
    format!(
        r#"log stderr all;
router id {me};
protocol device {{ scan time 10; }}
protocol static pool {{ disabled; ipv4; route {POOL} blackhole; }}
protocol bfd {{
  interface "{ext}" {{ min rx interval 50 ms; min tx interval 50 ms; idle tx interval 300 ms; multiplier 3; }};
}}
protocol bgp rtr {{
  local {me} as 65001; neighbor {peer} as 65000;
  direct;
  hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 5;
  check link yes;
  bfd on;
  ipv4 {{ import none; {export} }};
}}
"#
    )
}

/// keepalived on gateway `i`: VRRPv3 for the inside virtual address,
/// tracking `xnat status --check`, announcing through the notify script.
fn keepalived(i: usize, dir: &Path, advert: f32) -> String {
    let n = i + 1;
    let priority = if i == 0 { 150 } else { 100 };
    format!(
        r#"global_defs {{
  router_id xnat-gw{n}
  script_user root
  enable_script_security
  vrrp_garp_master_delay 0
  vrrp_garp_master_repeat 3
  vrrp_garp_master_refresh 0
}}
vrrp_script xnat_healthy {{
  script "{check}"
  interval 1
  timeout 2
  fall 2
  rise 1
}}
vrrp_instance nat {{
  state BACKUP
  interface in0
  virtual_router_id 77
  version 3
  priority {priority}
  advert_int {advert}
  virtual_ipaddress {{ {VIP}/24 dev in0 }}
  track_script {{ xnat_healthy }}
  notify "{notify}"
}}
"#,
        check = dir.join(format!("gw{n}.check.sh")).display(),
        notify = dir.join(format!("gw{n}.notify.sh")).display(),
    )
}

fn write(path: &Path, text: &str, exec: bool) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    if exec {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    }
}

/// Whether BIRD behind control socket `ctl` has protocol `proto` up.
fn established(ctl: &Path, proto: &str) -> bool {
    let out = run_cmd(
        std::process::Command::new("birdc")
            .arg("-s")
            .arg(ctl)
            .args(["show", "protocols", proto]),
        CMD_TIMEOUT,
    );
    String::from_utf8_lossy(&out.stdout).contains("Established")
}

impl HaTopo {
    /// Builds the pair for test `tag` (≤ 4 alphanumerics) and starts
    /// everything: both agents, the BIRDs, keepalived on gw1 (master) then
    /// gw2; returns once the router routes the pool via gw1 and gw2 is
    /// backup.
    pub fn start(tag: &str, opts: HaOptions) -> HaTopo {
        let ext1 = format!("ha{}{tag}t", pid36());
        let ext2 = format!("hb{}{tag}t", pid36());
        assert!(ext2.len() <= 15, "interface name {ext2} too long");
        remove_stale_pins(&ext2);
        let mut net = Net::build("xt", "ha", tag, Ingress::Tc, &spec(&ext1, &ext2));
        assert_eq!(net.ext, ext1, "the builder names EXT as expected");
        let dir = std::env::temp_dir().join(format!("xnat-ha-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the test's directory");
        use std::os::unix::fs::PermissionsExt;
        // keepalived's script security: root's scripts in a directory
        // only root writes.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();

        let exts = [ext1, ext2];
        let gw = [0, 1].map(|i| {
            let ns = net.take(&format!("gw{}", i + 1));
            Gateway {
                ns,
                ext: exts[i].clone(),
                agent: None,
                bird: None,
                keepalived: None,
                vrrp_pid: dir.join(format!("gw{}.vrrp.pid", i + 1)),
                bird_ctl: dir.join(format!("gw{}.bird.ctl", i + 1)),
            }
        });
        // The client's ports lie outside its deterministic range
        // (41344-45375 on 203.0.113.0), so its mappings take ports of the
        // fixed sequence, not its own.
        net.ns("cli")
            .sysctl("net.ipv4.ip_local_port_range", "50000 50999");
        let mut t = HaTopo {
            cli: net.take("cli"),
            rtr: net.take("rtr"),
            srv: net.take("srv"),
            _lan: net.take("lan"),
            gw,
            rtr_ctl: dir.join("rtr.bird.ctl"),
            dir,
            rtr_bird: None,
        };
        t.start_daemons(opts);
        t
    }

    fn start_daemons(&mut self, opts: HaOptions) {
        let dir = self.dir.clone();
        let rtr_conf = dir.join("rtr.bird.conf");
        write(&rtr_conf, &router_bird(), false);
        self.rtr_bird = Some(self.rtr.spawn(&[
            "bird",
            "-f",
            "-c",
            rtr_conf.to_str().unwrap(),
            "-s",
            self.rtr_ctl.to_str().unwrap(),
        ]));

        // Both agents, the same deterministic configuration.
        for i in 0..2 {
            let mut args: Vec<String> = [
                "--inside",
                "in0",
                "--allocation",
                "deterministic",
                "--internal",
                "10.77.0.0/24",
                "--pool",
                "203.0.113.0-203.0.113.15",
                "--ports",
                "1024-65535",
            ]
            .map(String::from)
            .to_vec();
            if opts.sync {
                args.extend([
                    "--sync-listen".to_string(),
                    format!("{}:{SYNC_PORT}", GW_INSIDE[i]),
                    "--sync-peer".to_string(),
                    format!("{}:{SYNC_PORT}", GW_INSIDE[1 - i]),
                ]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let g = &mut self.gw[i];
            g.agent = Some(Agent::attach(&g.ns, &g.ext, Ingress::Tc, &args));
        }
        let xnat = xnat_bin();
        for (i, g) in self.gw.iter_mut().enumerate() {
            let n = i + 1;
            let conf = dir.join(format!("gw{n}.bird.conf"));
            write(&conf, &gateway_bird(i, &g.ext), false);
            write(
                &dir.join(format!("gw{n}.check.sh")),
                &format!(
                    "#!/bin/sh\nexec {} status --check {} -q\n",
                    xnat.display(),
                    g.ext
                ),
                true,
            );
            write(
                &dir.join(format!("gw{n}.notify.sh")),
                &format!(
                    "#!/bin/sh\n# keepalived: $1 type, $2 name, $3 state\necho \"$(date +%s.%N) $3\" >> {log}\ncase \"$3\" in\n  MASTER) exec birdc -s {ctl} enable pool ;;\n  *) exec birdc -s {ctl} disable pool ;;\nesac\n",
                    log = dir.join(format!("gw{n}.notify.log")).display(),
                    ctl = g.bird_ctl.display()
                ),
                true,
            );
            g.bird = Some(g.ns.spawn(&[
                "bird",
                "-f",
                "-c",
                conf.to_str().unwrap(),
                "-s",
                g.bird_ctl.to_str().unwrap(),
            ]));
        }
        for p in ["gw1", "gw2"] {
            self.wait(&format!("BGP session router <-> {p} established"), || {
                established(&self.rtr_ctl, p)
            });
        }
        // keepalived: gw1 first (it becomes master without a preemption
        // flap), then gw2 (backup).
        for i in 0..2 {
            let n = i + 1;
            let conf = dir.join(format!("gw{n}.keepalived.conf"));
            write(&conf, &keepalived(i, &dir, opts.advert), false);
            let main_pid = dir.join(format!("gw{n}.keepalived.pid"));
            let g = &mut self.gw[i];
            g.keepalived = Some(g.ns.spawn(&[
                "keepalived",
                "--dont-fork",
                "--log-console",
                "--log-detail",
                "--no-syslog",
                "--vrrp",
                "--use-file",
                conf.to_str().unwrap(),
                "--pid",
                main_pid.to_str().unwrap(),
                "--vrrp_pid",
                g.vrrp_pid.to_str().unwrap(),
            ]));
            if i == 0 {
                self.wait("gw1 to own the VIP", || self.gw[0].has_vip());
            }
        }
        self.wait("gw2 to be VRRP backup", || {
            self.notified(1).iter().any(|(_, s)| s == "BACKUP")
        });
        self.wait("the router to route the pool via gw1", || {
            self.pool_route()
                .contains(&format!("via {}", GW_OUTSIDE[0].0))
        });
    }

    /// Polls `cond` (bounded); a timeout panics with the daemons' logs.
    fn wait(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond() {
            if Instant::now() >= deadline {
                panic!("timed out waiting for {what}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The router's kernel route for the pool.
    pub fn pool_route(&self) -> String {
        self.rtr.ip(&["route", "show", POOL])
    }

    /// The notify script's log of gateway `i`: (unix time, state).
    pub fn notified(&self, i: usize) -> Vec<(f64, String)> {
        let p = self.dir.join(format!("gw{}.notify.log", i + 1));
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (t, s) = l.split_once(' ')?;
                Some((t.parse().ok()?, s.trim().to_string()))
            })
            .collect()
    }

    /// Gateway `i` dies as a machine does, in two steps: its links go
    /// down (returns the moment they were down: no packet passes it from
    /// then on)...
    pub fn cut_links(&mut self, i: usize) -> Instant {
        let g = &mut self.gw[i];
        let ext = g.ext.clone();
        g.ns.ip(&["link", "set", "in0", "down"]);
        g.ns.ip(&["link", "set", &ext, "down"]);
        Instant::now()
    }

    /// ... and its agent, BIRD and keepalived are SIGKILLed (nothing runs
    /// its shutdown; the programs stay attached to the dead links).
    pub fn kill(&mut self, i: usize) {
        self.gw[i].kill_all();
    }

    /// Whether gateway `i` is healthy by `xnat status --check`.
    pub fn healthy(&self, i: usize) -> bool {
        let g = &self.gw[i];
        let mut cmd = g.ns.cmd(xnat_bin());
        cmd.args(["status", "--check", &g.ext, "-q"]);
        run_cmd(&mut cmd, CMD_TIMEOUT).status.success()
    }

    /// What the daemons wrote, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for c in [self.rtr_bird.as_ref()].into_iter().flatten() {
            s += &format!("--- {}\n{}\n", c.what(), c.stderr());
        }
        for g in &self.gw {
            for c in [g.bird.as_ref(), g.keepalived.as_ref()]
                .into_iter()
                .flatten()
            {
                s += &format!("--- {}\n{}{}\n", c.what(), c.stdout(), c.stderr());
            }
        }
        s
    }
}

impl Drop for HaTopo {
    fn drop(&mut self) {
        // Daemons first (keepalived's VRRP child by its pid file), then the
        // agents (SIGTERM: they detach), the pins a killed agent left, and
        // (field drops) the namespaces.
        for g in &mut self.gw {
            if let Some(pid) = g.vrrp_child() {
                // SAFETY: plain kill(2) of keepalived's child.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            g.keepalived = None;
            g.bird = None;
            g.agent = None;
            let mut cmd = g.ns.cmd(xnat_bin());
            cmd.args(["detach", &g.ext]);
            let _ = run_cmd(&mut cmd, CMD_TIMEOUT);
            remove_stale_pins(&g.ext);
        }
        self.rtr_bird = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
