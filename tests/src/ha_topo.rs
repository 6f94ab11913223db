//! Several xnat gateways (tests/e2e_failover.rs, the failover benchmark
//! and `cargo xtask demo --ha`): keepalived (VRRPv3) owns each slice's
//! inside virtual gateway address, BIRD announces each slice's pool
//! addresses to the outside router over BGP (with BFD) from the gateway
//! keepalived made master of that slice only, and every gateway runs
//! `xnat attach` with the same deterministic configuration, syncing its
//! bindings to the others.
//!
//! Two plans: the active/standby **pair** (one slice: the whole pool,
//! master gw1, backup gw2) and **N+1** (two slices, each with its own
//! pool addresses and virtual address, masters gw1 and gw2, gw3 the
//! backup of both). A slice is a range of inside hosts and the pool
//! addresses the deterministic layout gives them: the inside hosts of a
//! slice use its virtual address as their gateway (policy routing by
//! source address, here each client's own default route).
//!
//! ```text
//!   cli 10.77.0.10  ──┐          gw1 in0 10.77.0.2   EXT 198.51.100.0/31 ── rtr gw1 .1
//!   (cli2 10.77.0.200)├─ lan ────gw2 in0 10.77.0.3   EXT 198.51.100.2/31 ── rtr gw2 .3
//!                     │ (br0)   (gw3 in0 10.77.0.4   EXT 198.51.100.4/31 ── rtr gw3 .5)
//!                                                          rtr srv0 198.18.0.1 ── srv 198.18.0.10
//! ```
//!
//! The pool 203.0.113.0/28 is no gateway's address: each has a blackhole
//! route for it (what xnat does not translate dies there), BIRD exports a
//! slice's part of it as the announcement, and the router routes it to
//! whichever gateway announces it. keepalived's `track_script` is `xnat
//! status --check`; its notify script enables the slice's BIRD protocol on
//! MASTER and disables it otherwise (the backup's announcement also
//! carries a longer AS path, a tie-breaker).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::agent::Agent;
use crate::net::Net;
use crate::netns::{BgChild, CMD_TIMEOUT, Netns, run_cmd, xnat_bin};
use crate::topology::{Ingress, pid36, remove_stale_pins};

pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 10);
/// The second client of the N+1 plan (host 200: the second slice).
pub const CLIENT2: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 200);
pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
/// Every gateway's whole pool (its blackhole route).
pub const POOL: &str = "203.0.113.0/28";
const SYNC_PORT: u16 = 4790;

/// Gateway `i`'s address on the inside LAN (also its sync endpoint).
fn gw_inside(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 2 + i as u8)
}

/// Gateway `i`'s outside address and the router's end of the link.
fn gw_outside(i: usize) -> (Ipv4Addr, Ipv4Addr) {
    let a = 2 * i as u8;
    (
        Ipv4Addr::new(198, 51, 100, a),
        Ipv4Addr::new(198, 51, 100, a + 1),
    )
}

/// A slice of the deterministic layout: its BIRD protocol and VRRP
/// instance name, inside virtual address, VRRP id, pool prefix, master.
#[derive(Clone, Copy, Debug)]
pub struct Slice {
    pub name: &'static str,
    pub vip: Ipv4Addr,
    pub vrid: u8,
    pub pool: &'static str,
    pub master: usize,
}

/// Who runs what: the gateways (the last is every slice's backup), the
/// slices, and the clients with their slice.
#[derive(Clone, Debug)]
pub struct Plan {
    pub gateways: usize,
    pub slices: Vec<Slice>,
    pub clients: Vec<(Ipv4Addr, usize)>,
}

impl Plan {
    /// The active/standby pair: one slice, the whole pool.
    pub fn pair() -> Plan {
        Plan {
            gateways: 2,
            slices: vec![Slice {
                name: "pool",
                vip: Ipv4Addr::new(10, 77, 0, 1),
                vrid: 77,
                pool: POOL,
                master: 0,
            }],
            clients: vec![(CLIENT, 0)],
        }
    }

    /// N+1 with N = 2: hosts 0-127 (pool 203.0.113.0-7) on gw1, hosts
    /// 128-255 (pool 203.0.113.8-15) on gw2, gw3 the backup of both.
    pub fn n_plus_1() -> Plan {
        Plan {
            gateways: 3,
            slices: vec![
                Slice {
                    name: "pool1",
                    vip: Ipv4Addr::new(10, 77, 0, 1),
                    vrid: 71,
                    pool: "203.0.113.0/29",
                    master: 0,
                },
                Slice {
                    name: "pool2",
                    vip: Ipv4Addr::new(10, 77, 0, 254),
                    vrid: 72,
                    pool: "203.0.113.8/29",
                    master: 1,
                },
            ],
            clients: vec![(CLIENT, 0), (CLIENT2, 1)],
        }
    }

    fn backup(&self) -> usize {
        self.gateways - 1
    }

    /// The slices gateway `i` takes part in (as master or backup).
    fn slices_of(&self, i: usize) -> Vec<Slice> {
        self.slices
            .iter()
            .filter(|s| s.master == i || i == self.backup())
            .copied()
            .collect()
    }
}

/// How the gateways are run.
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

    /// Whether inside address `vip` is on this gateway.
    pub fn has(&self, vip: Ipv4Addr) -> bool {
        self.ns
            .ip(&["-4", "addr", "show", "dev", "in0"])
            .contains(&format!("inet {vip}/"))
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

/// The gateways with their LAN, router, clients and server.
pub struct HaTopo {
    pub plan: Plan,
    /// The first client (the pair's only one).
    pub cli: Netns,
    /// The other clients of the plan, in order.
    pub more_clients: Vec<Netns>,
    pub rtr: Netns,
    pub srv: Netns,
    pub gw: Vec<Gateway>,
    pub dir: PathBuf,
    rtr_bird: Option<BgChild>,
    rtr_ctl: PathBuf,
    _lan: Netns,
}

fn spec(plan: &Plan, exts: &[String]) -> String {
    let mut s = String::new();
    let clients: Vec<String> = (0..plan.clients.len())
        .map(|c| {
            if c == 0 {
                "cli".to_string()
            } else {
                format!("cli{}", c + 1)
            }
        })
        .collect();
    let gws: Vec<String> = (0..plan.gateways).map(|i| format!("gw{}", i + 1)).collect();
    s += &format!(
        "hosts {} lan {} rtr srv\n",
        clients.join(" "),
        gws.join(" ")
    );
    let mut ports = Vec::new();
    for (c, name) in clients.iter().enumerate() {
        s += &format!("link {name}:eth0 lan:c{c}\n");
        ports.push(format!("c{c}"));
    }
    for (i, g) in gws.iter().enumerate() {
        s += &format!("link {g}:in0 lan:g{i}\n");
        ports.push(format!("g{i}"));
        s += &format!("link {g}:{} rtr:{g}\n", exts[i]);
    }
    s += &format!("bridge lan:br0 {}\n", ports.join(" "));
    s += "link rtr:srv0 srv:eth0\n";
    for (c, name) in clients.iter().enumerate() {
        let (addr, slice) = plan.clients[c];
        s += &format!("addr {name}:eth0 {addr}/24\n");
        s += &format!("route {name} default via {}\n", plan.slices[slice].vip);
    }
    for (i, g) in gws.iter().enumerate() {
        let (me, rtr) = gw_outside(i);
        s += &format!("addr {g}:in0 {}/24\n", gw_inside(i));
        s += &format!("addr {g}:{} {me}/31\n", exts[i]);
        s += &format!("addr rtr:{g} {rtr}/31\n");
        s += &format!("route {g} default via {rtr}\n");
        s += &format!("route {g} blackhole {POOL}\n");
    }
    s += &format!("addr rtr:srv0 198.18.0.1/24\naddr srv:eth0 {SERVER}/24\n");
    s += "route srv default via 198.18.0.1\n";
    let routers = format!("{} rtr", gws.join(" "));
    for k in [
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
    ] {
        s += &format!("sysctl {k} {routers}\n");
    }
    s
}

/// BIRD on the router: BGP with BFD to each gateway, the pool accepted
/// from them into the kernel table.
fn router_bird(plan: &Plan) -> String {
    let mut s = format!(
        r#"log stderr all;
router id 198.51.100.1;
protocol device {{ scan time 10; }}
protocol kernel {{ ipv4 {{ export all; import none; }}; }}
protocol bfd {{
  interface "gw*" {{ min rx interval 100 ms; min tx interval 100 ms; idle tx interval 300 ms; multiplier 3; }};
}}
template bgp gwpeer {{
  local as 65000;
  direct;
  hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 5;
  check link yes;
  bfd on;
  ipv4 {{ import where net ~ [ {POOL}+ ]; export none; }};
}}
"#
    );
    for i in 0..plan.gateways {
        let (gw, me) = gw_outside(i);
        s += &format!(
            "protocol bgp gw{} from gwpeer {{ neighbor {gw} as 65001; source address {me}; }}\n",
            i + 1
        );
    }
    s
}

/// BIRD on gateway `i`: each of its slices' pool as a static blackhole
/// route, disabled until keepalived's notify script enables it (MASTER),
/// exported to the router over BGP with BFD; the backup prepends its AS
/// thrice.
fn gateway_bird(plan: &Plan, i: usize, ext: &str) -> String {
    let (me, peer) = gw_outside(i);
    let mut statics = String::new();
    for sl in plan.slices_of(i) {
        statics += &format!(
            "protocol static {} {{ disabled; ipv4; route {} blackhole; }}\n",
            sl.name, sl.pool
        );
    }
    let export = if i == plan.backup() {
        r#"export filter { if proto ~ "pool*" then { bgp_path.prepend(65001); bgp_path.prepend(65001); bgp_path.prepend(65001); accept; } reject; };"#
    } else {
        r#"export where proto ~ "pool*";"#
    };
    format!(
        r#"log stderr all;
router id {me};
protocol device {{ scan time 10; }}
{statics}protocol bfd {{
  interface "{ext}" {{ min rx interval 100 ms; min tx interval 100 ms; idle tx interval 300 ms; multiplier 3; }};
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

/// keepalived on gateway `i`: one VRRPv3 instance per slice it takes part
/// in (named as the slice's BIRD protocol), tracking `xnat status --check`,
/// announcing through the notify script.
fn keepalived(plan: &Plan, i: usize, dir: &Path, advert: f32) -> String {
    let n = i + 1;
    let mut s = format!(
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
"#,
        check = dir.join(format!("gw{n}.check.sh")).display(),
    );
    for sl in plan.slices_of(i) {
        let priority = if sl.master == i { 150 } else { 100 };
        s += &format!(
            r#"vrrp_instance {name} {{
  state BACKUP
  interface in0
  virtual_router_id {vrid}
  version 3
  priority {priority}
  advert_int {advert}
  virtual_ipaddress {{ {vip}/24 dev in0 }}
  track_script {{ xnat_healthy }}
  notify "{notify}"
}}
"#,
            name = sl.name,
            vrid = sl.vrid,
            vip = sl.vip,
            notify = dir.join(format!("gw{n}.notify.sh")).display(),
        );
    }
    s
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
    /// The active/standby pair ([`Plan::pair`]) for test `tag` (≤ 4
    /// alphanumerics), everything started: see [`HaTopo::start_plan`].
    pub fn start(tag: &str, opts: HaOptions) -> HaTopo {
        HaTopo::start_plan(tag, Plan::pair(), opts)
    }

    /// Builds `plan` for test `tag` and starts everything: the agents,
    /// the BIRDs, keepalived on the masters, then on the backup; returns
    /// once every slice's virtual address is on its master, the backup
    /// reported BACKUP for each and the router routes each slice's pool
    /// via its master.
    pub fn start_plan(tag: &str, plan: Plan, opts: HaOptions) -> HaTopo {
        let exts: Vec<String> = (0..plan.gateways)
            .map(|i| format!("h{}{}{tag}t", (b'a' + i as u8) as char, pid36()))
            .collect();
        for e in &exts {
            assert!(e.len() <= 15, "interface name {e} too long");
            remove_stale_pins(e);
        }
        // The builder names EXT itself (the first gateway's, "ha..."); the
        // others' names are written out.
        let mut net = Net::build("xt", "ha", tag, Ingress::Tc, &spec(&plan, &exts));
        assert_eq!(net.ext, exts[0], "the builder names EXT as expected");
        let dir = std::env::temp_dir().join(format!("xnat-ha-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the test's directory");
        use std::os::unix::fs::PermissionsExt;
        // keepalived's script security: root's scripts in a directory
        // only root writes.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();

        let gw = (0..plan.gateways)
            .map(|i| Gateway {
                ns: net.take(&format!("gw{}", i + 1)),
                ext: exts[i].clone(),
                agent: None,
                bird: None,
                keepalived: None,
                vrrp_pid: dir.join(format!("gw{}.vrrp.pid", i + 1)),
                bird_ctl: dir.join(format!("gw{}.bird.ctl", i + 1)),
            })
            .collect();
        // The clients' ports lie outside their deterministic ranges
        // (host 10: 41344-45375 on 203.0.113.0), so their mappings take
        // ports of the fixed sequence, not their own.
        let clients: Vec<Netns> = (0..plan.clients.len())
            .map(|c| {
                let ns = net.take(&if c == 0 {
                    "cli".to_string()
                } else {
                    format!("cli{}", c + 1)
                });
                ns.sysctl("net.ipv4.ip_local_port_range", "50000 50999");
                ns
            })
            .collect();
        let mut clients = clients.into_iter();
        let mut t = HaTopo {
            plan,
            cli: clients.next().expect("a client"),
            more_clients: clients.collect(),
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
        let plan = self.plan.clone();
        let rtr_conf = dir.join("rtr.bird.conf");
        write(&rtr_conf, &router_bird(&plan), false);
        self.rtr_bird = Some(self.rtr.spawn(&[
            "bird",
            "-f",
            "-c",
            rtr_conf.to_str().unwrap(),
            "-s",
            self.rtr_ctl.to_str().unwrap(),
        ]));

        // Every agent with the same deterministic configuration, syncing
        // with all the others.
        for i in 0..plan.gateways {
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
                args.push("--sync-listen".to_string());
                args.push(format!("{}:{SYNC_PORT}", gw_inside(i)));
                for j in (0..plan.gateways).filter(|&j| j != i) {
                    args.push("--sync-peer".to_string());
                    args.push(format!("{}:{SYNC_PORT}", gw_inside(j)));
                }
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let g = &mut self.gw[i];
            g.agent = Some(Agent::attach(&g.ns, &g.ext, Ingress::Tc, &args));
        }
        let xnat = xnat_bin();
        for (i, g) in self.gw.iter_mut().enumerate() {
            let n = i + 1;
            let conf = dir.join(format!("gw{n}.bird.conf"));
            write(&conf, &gateway_bird(&plan, i, &g.ext), false);
            write(
                &dir.join(format!("gw{n}.check.sh")),
                &format!(
                    "#!/bin/sh\nexec {} status --check {} -q\n",
                    xnat.display(),
                    g.ext
                ),
                true,
            );
            // keepalived calls it with: type, instance name (= the
            // slice's BIRD protocol), state.
            write(
                &dir.join(format!("gw{n}.notify.sh")),
                &format!(
                    "#!/bin/sh\necho \"$(date +%s.%N) $2 $3\" >> {log}\ncase \"$3\" in\n  MASTER) exec birdc -s {ctl} enable \"$2\" ;;\n  *) exec birdc -s {ctl} disable \"$2\" ;;\nesac\n",
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
        for i in 0..plan.gateways {
            let p = format!("gw{}", i + 1);
            self.wait(&format!("BGP session router <-> {p} established"), || {
                established(&self.rtr_ctl, &p)
            });
        }
        // keepalived: the masters first (they take their slices without a
        // preemption flap), then the backup.
        let backup = plan.backup();
        let order = (0..plan.gateways).filter(|&i| i != backup).chain([backup]);
        for i in order {
            let n = i + 1;
            let conf = dir.join(format!("gw{n}.keepalived.conf"));
            write(&conf, &keepalived(&plan, i, &dir, opts.advert), false);
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
            for sl in plan.slices.iter().filter(|s| s.master == i) {
                self.wait(&format!("gw{n} to own {}", sl.vip), || {
                    self.gw[i].has(sl.vip)
                });
            }
        }
        for sl in &plan.slices {
            self.wait(
                &format!("the backup to be VRRP backup of {}", sl.name),
                || {
                    self.notified_slice(backup, sl.name)
                        .iter()
                        .any(|(_, s)| s == "BACKUP")
                },
            );
            let via = format!("via {}", gw_outside(sl.master).0);
            self.wait(&format!("the router to route {} {via}", sl.pool), || {
                self.route(sl.pool).contains(&via)
            });
        }
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

    /// The router's kernel route for `prefix`.
    pub fn route(&self, prefix: &str) -> String {
        self.rtr.ip(&["route", "show", prefix])
    }

    /// The first slice's inside virtual address (the pair's only one).
    pub fn vip(&self) -> Ipv4Addr {
        self.plan.slices[0].vip
    }

    /// The router's kernel route for the pair's pool.
    pub fn pool_route(&self) -> String {
        self.route(POOL)
    }

    /// The notify script's log of gateway `i`: (unix time, slice, state).
    fn notify_log(&self, i: usize) -> Vec<(f64, String, String)> {
        let p = self.dir.join(format!("gw{}.notify.log", i + 1));
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let t = w.next()?.parse().ok()?;
                Some((t, w.next()?.to_string(), w.next()?.to_string()))
            })
            .collect()
    }

    /// The states keepalived reported on gateway `i`: (unix time, state),
    /// every slice.
    pub fn notified(&self, i: usize) -> Vec<(f64, String)> {
        self.notify_log(i)
            .into_iter()
            .map(|(t, _, s)| (t, s))
            .collect()
    }

    /// The states keepalived reported on gateway `i` for slice `name`.
    pub fn notified_slice(&self, i: usize, name: &str) -> Vec<(f64, String)> {
        self.notify_log(i)
            .into_iter()
            .filter(|(_, n, _)| n == name)
            .map(|(t, _, s)| (t, s))
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
