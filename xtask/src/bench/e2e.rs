//! End-to-end figures through a client — gateway — server topology in
//! network namespaces, one copy of the topology per gateway mode so the
//! modes can be measured round-robin in the same run:
//!
//! ```text
//!  xb-<m>-c                    xb-<m>-g                               xb-<m>-s
//!  eth0 10.0.0.2-9/24 ---- int0 10.0.0.1/24   ext0 192.0.2.1/24 ---- eth0 192.0.2.2/24
//!  default via 10.0.0.1       the gateway: plain forwarding,           XDP sink for UDP to port 9;
//!                             nftables masquerade, xnat, or the        iperf3 -s; a TCP accept
//!                             bare XDP redirect (no NAT)               loop
//! ```
//!
//! With 2 CPUs the gateway gets one to itself and the sender the other.
//! The headline UDP sender is the kernel's XDP traffic generator
//! (`net::XdpGenerator`) pinned to CPU 0, with `int0`'s NAPI threaded and
//! its thread pinned to CPU 1 (`GatewayNapi`); the AF_PACKET sender, also
//! on CPU 0, has RPS steer the gateway's receive processing on `int0` to
//! CPU 1. During UDP runs the server drops the test packets in XDP (a tiny
//! program of our own, see `net::load_udp_sink`), which runs in the veth's
//! NAPI on the transmitting CPU, the gateway's. So the UDP rate is what
//! one core forwards, the sender having the other.

use std::{
    fmt::Write as _,
    fs,
    net::{Ipv4Addr, SocketAddrV4},
    os::fd::OwnedFd,
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::{
    agent::Agent,
    cpu::{busy_pct, call_ipis, cpu_times, gw_cpu},
    iperf,
    net::{self, AcceptServer, Blaster, GeneratorProg},
    netdev::{set_gro, set_rps},
    rounds::{self, ModeSamples},
    xdp_rate,
};
use crate::{
    netns::{self, Namespaces},
    proc::{self, Background, Stream},
    util,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Nft,
    Xnat,
    /// The fast path with XDP on the inside interface (the UDP targets).
    XnatFast,
    /// The fast path in TC on the inside interface, what `--inside-hook
    /// auto` picks on a veth (the TCP comparison: see `build`).
    XnatFastTc,
    /// No NAT: a bare XDP program on the inside interface that only
    /// forwards (TTL, MACs, redirect to a fixed next hop; `xnat-bench
    /// --attach-redirect`), the ceiling of `XnatFast`'s path (issue 16).
    XdpRedirect,
}

impl Mode {
    pub fn key(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Nft => "nft",
            Mode::Xnat => "xnat",
            Mode::XnatFast => "xnat_fast",
            Mode::XnatFastTc => "xnat_fast_tc",
            Mode::XdpRedirect => "xdp_redirect",
        }
    }

    /// Every mode, in the report's column order.
    pub const ALL: [Mode; 6] = [
        Mode::Plain,
        Mode::Nft,
        Mode::Xnat,
        Mode::XnatFast,
        Mode::XnatFastTc,
        Mode::XdpRedirect,
    ];

    /// The mode whose [`Mode::key`] is `key`.
    pub fn from_key(key: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.key() == key)
    }

    fn short(self) -> &'static str {
        match self {
            Mode::Plain => "pl",
            Mode::Nft => "nf",
            Mode::Xnat => "xn",
            Mode::XnatFast => "xf",
            Mode::XnatFastTc => "xt",
            Mode::XdpRedirect => "xr",
        }
    }

    fn is_xnat(self) -> bool {
        matches!(self, Mode::Xnat | Mode::XnatFast | Mode::XnatFastTc)
    }

    /// Whether the gateway translates (else the server routes back to the
    /// inside, and inside sources reach it as they are).
    fn is_nat(self) -> bool {
        !matches!(self, Mode::Plain | Mode::XdpRedirect)
    }

    /// Whether an XDP program on int0 sees the client's frames (see
    /// `build`).
    fn xdp_inside(self) -> bool {
        matches!(self, Mode::XnatFast | Mode::XdpRedirect)
    }

    pub fn label(self) -> &'static str {
        match self {
            Mode::Plain => "plain forwarding (no NAT)",
            Mode::Nft => "nftables masquerade",
            Mode::Xnat => "xnat (TC ingress)",
            Mode::XnatFast => "xnat --fast-path, XDP inside",
            Mode::XnatFastTc => "xnat --fast-path, TC inside",
            Mode::XdpRedirect => "bare XDP redirect (no NAT)",
        }
    }
}

/// What the run measures and for how long.
#[derive(Clone, Debug)]
pub struct Plan {
    pub rounds: usize,
    pub udp_secs: f64,
    pub tcp_secs: u32,
    pub flow_secs: f64,
}

const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x01, 0x02];
const GW_INT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x01, 0x01];
/// The server's eth0: fixed, so the bare XDP redirect is told its next hop
/// (`start_redirect`) without asking the namespace.
const SERVER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x02, 0x02];
/// The client's addresses: the first sends the UDP test, each has a
/// thread in the new-flows test.
const CLIENTS: [Ipv4Addr; 8] = [
    Ipv4Addr::new(10, 0, 0, 2),
    Ipv4Addr::new(10, 0, 0, 3),
    Ipv4Addr::new(10, 0, 0, 4),
    Ipv4Addr::new(10, 0, 0, 5),
    Ipv4Addr::new(10, 0, 0, 6),
    Ipv4Addr::new(10, 0, 0, 7),
    Ipv4Addr::new(10, 0, 0, 8),
    Ipv4Addr::new(10, 0, 0, 9),
];
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const UDP_PORT: u16 = 9;
const UDP_FLOWS: u16 = 8;
const IPERF_PORT: u16 = 5201;
const FLOW_PORT: u16 = 8080;

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

struct Topo {
    mode: Mode,
    client: String,
    gw: String,
    server: String,
    /// Next source port of each client address in the new-flows test.
    ports: std::cell::RefCell<Vec<u16>>,
}

impl Topo {
    fn new(mode: Mode) -> Self {
        let p = format!("xb-{}", mode.short());
        Topo {
            mode,
            client: format!("{p}-c"),
            gw: format!("{p}-g"),
            server: format!("{p}-s"),
            ports: std::cell::RefCell::new(vec![net::FLOW_PORT_MIN; CLIENTS.len()]),
        }
    }
}

/// Everything the run creates. Fields drop in order: traffic endpoints,
/// agents and redirect loaders first, then the namespaces.
struct Lab {
    accept: Vec<AcceptServer>,
    iperf: Vec<Background>,
    agents: Vec<Agent>,
    redirects: Vec<Background>,
    _namespaces: Namespaces,
}

/// Whether `xnat attach` has `--fast-path`.
pub fn has_fast_path(xnat: &Path) -> bool {
    Command::new(xnat)
        .args(["attach", "--help"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--fast-path"))
}

fn build(t: &Topo, tmp: &Path) -> Result<()> {
    let (c, g, s) = (t.client.as_str(), t.gw.as_str(), t.server.as_str());
    util::output(Command::new("ip").args([
        "link",
        "add",
        "eth0",
        "netns",
        c,
        "address",
        &mac(CLIENT_MAC),
        "type",
        "veth",
        "peer",
        "name",
        "int0",
        "netns",
        g,
        "address",
        &mac(GW_INT_MAC),
    ]))?;
    util::output(Command::new("ip").args([
        "link",
        "add",
        "ext0",
        "netns",
        g,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        s,
        "address",
        &mac(SERVER_MAC),
    ]))?;
    for ns in [c, g, s] {
        // No IPv6 chatter (router solicitations, DAD) on the links.
        netns::sh(ns, "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6")?;
    }
    for a in CLIENTS {
        netns::ip(c, &["addr", "add", &format!("{a}/24"), "dev", "eth0"])?;
    }
    netns::ip(c, &["link", "set", "eth0", "up"])?;
    if t.mode.xdp_inside() {
        // The XDP fast path on int0 sees frames, not skbs: the client's
        // packets must carry complete checksums, as off a wire (a partial
        // TCP checksum left for offload would go out as it is, and the
        // server drops the segment). The veth itself turns off the
        // client's TSO once int0 has an XDP program, so this mode's TCP
        // moves MSS-sized packets where the others move 64 KiB GSO
        // packets: Mode::XnatFastTc is the fast path's TCP comparison.
        // The bare redirect (Mode::XdpRedirect) sits where the fast path
        // does and gets the same.
        util::output(netns::exec(c, "ethtool").args(["-K", "eth0", "tx", "off"]))?;
    }
    netns::ip(c, &["route", "add", "default", "via", "10.0.0.1"])?;

    netns::ip(g, &["addr", "add", "10.0.0.1/24", "dev", "int0"])?;
    netns::ip(g, &["addr", "add", "192.0.2.1/24", "dev", "ext0"])?;
    netns::ip(g, &["link", "set", "int0", "up"])?;
    netns::ip(g, &["link", "set", "ext0", "up"])?;
    netns::sh(g, "echo 1 > /proc/sys/net/ipv4/ip_forward")?;

    netns::ip(s, &["addr", "add", &format!("{SERVER}/24"), "dev", "eth0"])?;
    netns::ip(s, &["link", "set", "eth0", "up"])?;
    // NAPI on the server's veth, as a NIC has: it then takes XDP frames
    // whether or not the UDP sink is attached, so the XDP fast path's
    // redirects into ext0 deliver in every test. In every topology alike.
    set_gro(s, "eth0", true)?;
    if !t.mode.is_nat() {
        // Without NAT the server must route back to the inside.
        netns::ip(s, &["route", "add", "10.0.0.0/24", "via", "192.0.2.1"])?;
    }
    // Counters for the check before the runs (`verify_udp_path`): the UDP
    // test traffic arrives, and `untranslated` catches inside sources that
    // leaked through a NAT.
    let server_nft = tmp.join(format!("{s}.nft"));
    fs::write(
        &server_nft,
        format!(
            "table netdev xb {{\n\
             \tcounter rx {{ }}\n\
             \tcounter untranslated {{ }}\n\
             \tchain in {{\n\
             \t\ttype filter hook ingress device \"eth0\" priority -500; policy accept;\n\
             \t\tudp dport {UDP_PORT} ip saddr 10.0.0.0/8 counter name \"untranslated\"\n\
             \t\tudp dport {UDP_PORT} counter name \"rx\" drop\n\
             \t}}\n\
             }}\n"
        ),
    )?;
    util::output(netns::exec(s, "nft").arg("-f").arg(&server_nft))
        .context("loading the server's nftables counters")?;

    if t.mode == Mode::Nft {
        let gw_nft = tmp.join(format!("{g}.nft"));
        fs::write(
            &gw_nft,
            "table ip nat {\n\
             \tchain postrouting {\n\
             \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
             \t\toifname \"ext0\" masquerade\n\
             \t}\n\
             }\n",
        )?;
        util::output(netns::exec(g, "nft").arg("-f").arg(&gw_nft))
            .context("loading nftables masquerade")?;
    }

    if let Some(cpu) = gw_cpu() {
        set_rps(g, "int0", Some(cpu))?;
        set_rps(s, "eth0", Some(0))?;
    }
    Ok(())
}

fn start_agent(t: &Topo, xnat: &Path) -> Result<Agent> {
    let mut cmd = netns::exec(&t.gw, xnat);
    cmd.args([
        "attach",
        "ext0",
        "--ingress",
        "tc",
        "--internal",
        "10.0.0.0/24",
        "--pool",
        "192.0.2.1",
        // Reset connections of the new-flows test leave their mappings
        // sooner (conntrack keeps a reset flow 10 s).
        "--timeout",
        "tcp-transitory=30",
    ]);
    match t.mode {
        // ext0 takes XDP redirects: its peer, the server's eth0, has NAPI
        // all along (GRO on, see `build`), not only while the UDP sink is
        // attached.
        Mode::XnatFast => {
            cmd.args([
                "--inside",
                "int0",
                "--fast-path",
                "--inside-hook",
                "xdp",
                "--xdp-redirect",
                "ext0",
            ]);
        }
        Mode::XnatFastTc => {
            cmd.args(["--inside", "int0", "--fast-path", "--inside-hook", "tc"]);
        }
        _ => {}
    }
    Agent::start(&t.gw, xnat, "ext0", cmd)
}

/// The bare XDP redirect of `Mode::XdpRedirect` attached to the gateway's
/// int0 by `xnat-bench --attach-redirect` for as long as the returned
/// process runs, its fixed next hop the server's eth0 (`SERVER_MAC`) out of
/// ext0 (the loader reads ext0's ifindex and MAC itself); stopping it (SIGINT, as dropping it does) detaches. Its
/// attachment is an unpinned BPF link, so even a killed loader leaves
/// nothing attached, and the namespace goes with the topology anyway.
fn start_redirect(t: &Topo, bench: &Path) -> Result<Background> {
    let mut cmd = netns::exec(&t.gw, bench);
    cmd.args([
        "--attach-redirect",
        "int0",
        "--to",
        "ext0",
        "--dst-mac",
        &mac(SERVER_MAC),
    ]);
    let mut bg = Background::spawn(
        &format!("the bare XDP redirect in {}", t.gw),
        cmd,
        libc::SIGINT,
    )?;
    bg.wait_for_line(
        "`xnat-bench: redirect attached to int0`",
        Duration::from_secs(30),
        |stream, line| {
            stream == Stream::Stdout && line.starts_with("xnat-bench: redirect attached to int0")
        },
    )?;
    Ok(bg)
}

fn nft_counter(ns: &str, name: &str) -> Result<u64> {
    let out =
        util::stdout(netns::exec(ns, "nft").args(["-j", "list", "counter", "netdev", "xb", name]))?;
    let v: Value = serde_json::from_str(&out).context("parsing `nft -j list counter`")?;
    v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|o| o["counter"]["packets"].as_u64()))
        .with_context(|| format!("no packet count for counter {name} in {ns}"))
}

fn udp_frames() -> Vec<Vec<u8>> {
    (0..UDP_FLOWS)
        .map(|i| {
            net::udp_frame(
                GW_INT_MAC,
                CLIENT_MAC,
                SocketAddrV4::new(CLIENTS[0], 10_000 + i),
                SocketAddrV4::new(SERVER, UDP_PORT),
            )
        })
        .collect()
}

/// UDP packets the server's XDP sink dropped so far (all the test's
/// packets that arrived).
fn sink_count(t: &Topo) -> Result<u64> {
    xdp_rate::sink_count(&t.server)
}

/// Before the sink is attached: a short burst must reach the server (the
/// nftables counters see it), and through a NAT with no inside source.
fn verify_udp_path(t: &Topo) -> Result<()> {
    let (rx0, leaked0) = (
        nft_counter(&t.server, "rx")?,
        nft_counter(&t.server, "untranslated")?,
    );
    let mut blaster = Blaster::start(&t.client, "eth0", udp_frames(), None)?;
    thread::sleep(Duration::from_millis(300));
    blaster.stop();
    let rx = nft_counter(&t.server, "rx")? - rx0;
    let leaked = nft_counter(&t.server, "untranslated")? - leaked0;
    if rx == 0 {
        bail!("{}: no UDP packet reached the server", t.mode.label());
    }
    if t.mode.is_nat() && leaked != 0 {
        bail!(
            "{}: {leaked} of {rx} UDP packets reached the server with their inside source address",
            t.mode.label()
        );
    }
    Ok(())
}

/// The server's UDP sink, attached while a UDP test runs. Only then: on a
/// veth, an XDP program also changes how TCP is received (no GRO of
/// large segments), which would skew the TCP tests.
fn sink(t: &Topo, prog: &OwnedFd) -> Result<OwnedFd> {
    net::attach_xdp(&t.server, "eth0", prog)
}

fn udp(t: &Topo, plan: &Plan, prog: &OwnedFd) -> Result<Value> {
    let _sink = sink(t, prog)?;
    let mut blaster = Blaster::start(&t.client, "eth0", udp_frames(), gw_cpu().map(|_| 0))?;
    thread::sleep(Duration::from_millis(500));
    let (rx0, sent0, refused0, cpu0, ipi0, t0) = (
        sink_count(t)?,
        blaster.sent(),
        blaster.refused(),
        cpu_times(),
        call_ipis(),
        Instant::now(),
    );
    thread::sleep(Duration::from_secs_f64(plan.udp_secs));
    let (rx1, sent1, refused1, cpu1, ipi1, secs) = (
        sink_count(t)?,
        blaster.sent(),
        blaster.refused(),
        cpu_times(),
        call_ipis(),
        t0.elapsed().as_secs_f64(),
    );
    blaster.stop();
    if rx1 == rx0 {
        bail!("{}: no UDP packet reached the server", t.mode.label());
    }
    let gw = gw_cpu().unwrap_or(0);
    let gw_ipis = match (ipi0.get(gw), ipi1.get(gw)) {
        (Some(a), Some(b)) if b >= a => (b - a) as f64,
        _ => f64::NAN,
    };
    Ok(json!({
        "pps": (rx1 - rx0) as f64 / secs,
        "sent_pps": (sent1 - sent0 + refused1 - refused0) as f64 / secs,
        "refused_pps": (refused1 - refused0) as f64 / secs,
        "gw_cpu_busy_pct": busy_pct(&cpu0, &cpu1, gw),
        "sender_cpu_busy_pct": busy_pct(&cpu0, &cpu1, 0),
        "gw_ipis_per_kpkt": gw_ipis / ((rx1 - rx0) as f64 / 1000.0),
    }))
}

/// The UDP rate with the kernel's XDP traffic generator as the sender
/// (`xdp_rate`).
fn udp_xdp(t: &Topo, plan: &Plan, sink_prog: &OwnedFd, gen_prog: &GeneratorProg) -> Result<Value> {
    let path = xdp_rate::Path {
        client: &t.client,
        gw: &t.gw,
        server: &t.server,
    };
    xdp_rate::measure(&path, plan.udp_secs, sink_prog, gen_prog, None)
        .with_context(|| t.mode.label().to_owned())
}

/// trafgen's configuration: the blaster's 8 flows.
fn trafgen_config() -> String {
    format!(
        "{{\n  eth(da={}, sa={}),\n  ipv4(saddr={}, daddr={SERVER}, ttl=64, df),\n  \
         udp(sp=dinc(10000, {}), dp={UDP_PORT}),\n  fill(0x5a, 22)\n}}\n",
        mac(GW_INT_MAC),
        mac(CLIENT_MAC),
        CLIENTS[0],
        10_000 + UDP_FLOWS - 1
    )
}

/// The UDP rate with trafgen as the sender, everything on one CPU: its
/// zero-copy TX ring gives up (EAGAIN) when another CPU holds its packets,
/// so RPS is off for this run.
fn udp_trafgen(t: &Topo, plan: &Plan, cfg: &Path, prog: &OwnedFd) -> Result<f64> {
    let _sink = sink(t, prog)?;
    let rps = gw_cpu();
    if rps.is_some() {
        set_rps(&t.gw, "int0", None)?;
    }
    let result = (|| -> Result<f64> {
        // `timeout` signals its whole process group, which reaches
        // trafgen's worker process too (a SIGINT to trafgen alone does
        // not stop it promptly).
        let secs = plan.udp_secs.min(2.0);
        let run_for = format!("{:.1}", secs + 1.5);
        let mut cmd = netns::exec(&t.client, "timeout");
        cmd.args([
            "-s", "INT", &run_for, "taskset", "-c", "0", "trafgen", "-o", "eth0", "-i",
        ])
        .arg(cfg)
        .args(["-P", "1", "--no-sock-mem", "-Q", "-C"]);
        let mut tg = Background::spawn(&format!("trafgen in {}", t.client), cmd, libc::SIGINT)?;
        thread::sleep(Duration::from_millis(500));
        let (rx0, t0) = (sink_count(t)?, Instant::now());
        thread::sleep(Duration::from_secs_f64(secs));
        let (rx1, secs) = (sink_count(t)?, t0.elapsed().as_secs_f64());
        if let Some(status) = tg.wait(Duration::ZERO)? {
            bail!(
                "trafgen stopped early ({status}): {}",
                tg.stderr_lines().join(" / ")
            );
        }
        tg.wait(Duration::from_secs(5))?;
        Ok((rx1 - rx0) as f64 / secs)
    })();
    if rps.is_some() {
        set_rps(&t.gw, "int0", rps)?;
    }
    result
}

fn tcp(t: &Topo, plan: &Plan, streams: u32) -> Result<f64> {
    iperf::throughput(
        &t.client,
        &SERVER.to_string(),
        IPERF_PORT,
        plan.tcp_secs,
        streams,
        &[],
    )
    .with_context(|| format!("{}: iperf3 -P {streams}", t.mode.label()))
}

fn flows(t: &Topo, plan: &Plan) -> Result<Value> {
    let r = net::connect_loop(
        &t.client,
        &CLIENTS,
        &mut t.ports.borrow_mut(),
        SocketAddrV4::new(SERVER, FLOW_PORT),
        Duration::from_secs_f64(plan.flow_secs),
    )?;
    if r.ok == 0 {
        bail!("{}: no TCP connection succeeded", t.mode.label());
    }
    if r.failed > 0 {
        eprintln!(
            "xtask: bench: {}: {} of {} connections failed: {:?}",
            t.mode.label(),
            r.failed,
            r.ok + r.failed,
            r.errors
        );
    }
    Ok(json!({
        "per_s": r.ok as f64 / r.elapsed.as_secs_f64(),
        "failed": r.failed,
    }))
}

/// Turns on the kernel's run-time statistics of BPF programs
/// (BPF_ENABLE_STATS) for as long as the returned fd is open.
fn enable_bpf_stats() -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd as _;
    const BPF_ENABLE_STATS: libc::c_long = 32;
    // union bpf_attr { struct { __u32 type; } enable_stats; }, type 0 =
    // BPF_STATS_RUN_TIME; zero-padded.
    let attr = [0u32; 16];
    // SAFETY: a zeroed bpf_attr of the right size; the result is a new fd.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_ENABLE_STATS,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd < 0 {
        bail!("BPF_ENABLE_STATS: {}", std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Run time and run count of every loaded xnat program, by id.
fn xnat_prog_stats() -> Result<Vec<(u64, String, u64, u64)>> {
    let out = util::stdout(Command::new("bpftool").args(["prog", "show", "-j"]))?;
    let v: Value = serde_json::from_str(&out).context("parsing `bpftool prog show -j`")?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p["name"].as_str()?;
            name.starts_with("xnat_").then(|| {
                (
                    p["id"].as_u64().unwrap_or(0),
                    name.to_owned(),
                    p["run_time_ns"].as_u64().unwrap_or(0),
                    p["run_cnt"].as_u64().unwrap_or(0),
                )
            })
        })
        .collect())
}

/// One extra UDP run with the kernel's BPF statistics on: how long xnat's
/// programs (or the bare redirect) take per packet in the real forwarding
/// path. Separate from the
/// measured rounds, since the statistics cost time themselves. The sender
/// is the XDP generator where there is one (a saturated gateway), else the
/// AF_PACKET blaster.
fn profile(
    t: &Topo,
    plan: &Plan,
    prog: &OwnedFd,
    gen_prog: Option<&GeneratorProg>,
) -> Result<Value> {
    let stats = enable_bpf_stats()?;
    // The sink's counter is the device's: it survives detaching.
    let rx0 = sink_count(t)?;
    let before = xnat_prog_stats()?;
    let (sender, u) = match gen_prog {
        Some(g) => ("xdp", udp_xdp(t, plan, prog, g)?),
        None => ("af_packet", udp(t, plan, prog)?),
    };
    let after = xnat_prog_stats()?;
    let rx = sink_count(t)? - rx0;
    drop(stats);
    let mut progs = serde_json::Map::new();
    for (id, name, time, cnt) in &after {
        let Some((_, _, t0, c0)) = before.iter().find(|b| b.0 == *id) else {
            continue;
        };
        let runs = cnt.saturating_sub(*c0);
        // Only programs that ran in this window: the topology's own (other
        // xnat instances are idle meanwhile).
        if runs < 1000 {
            continue;
        }
        let e = progs
            .entry(name.clone())
            .or_insert_with(|| json!({"runs": 0u64, "time_ns": 0u64}));
        e["runs"] = json!(e["runs"].as_u64().unwrap_or(0) + runs);
        e["time_ns"] = json!(e["time_ns"].as_u64().unwrap_or(0) + time.saturating_sub(*t0));
    }
    for v in progs.values_mut() {
        let (runs, time) = (f(&v["runs"]), f(&v["time_ns"]));
        v["ns_per_run"] = json!(time / runs);
    }
    Ok(json!({ "sender": sender, "udp": u, "rx_packets": rx, "programs": progs }))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Runs the end-to-end measurements for `modes` and returns them as JSON:
/// per mode the median of each figure, plus per-round samples, plus the
/// ratios between modes taken round by round. `bench` is `xnat-bench`,
/// which attaches the bare XDP redirect of `Mode::XdpRedirect`.
pub fn run(xnat: &Path, bench: &Path, modes: &[Mode], plan: &Plan, tmp: &Path) -> Result<Value> {
    let topos: Vec<Topo> = modes.iter().map(|m| Topo::new(*m)).collect();
    let names: Vec<&str> = topos
        .iter()
        .flat_map(|t| [t.client.as_str(), t.gw.as_str(), t.server.as_str()])
        .collect();
    let sink_prog = net::load_udp_sink(UDP_PORT)?;
    // The headline UDP sender. Where the kernel cannot load or run it, its
    // figures are NaN and the report says why (`udp_xdp_errors`).
    let mut xdp_errors = serde_json::Map::new();
    let gen_prog = net::load_generator(&udp_frames()[0], UDP_FLOWS)
        .map_err(|e| format!("{e:#}"))
        .inspect_err(|e| {
            eprintln!("xtask: bench: no XDP generator: {e}");
            xdp_errors.insert("all".into(), json!(e));
        })
        .ok();
    let mut lab = Lab {
        accept: Vec::new(),
        iperf: Vec::new(),
        agents: Vec::new(),
        redirects: Vec::new(),
        _namespaces: Namespaces::create(&names)?,
    };
    for t in &topos {
        build(t, tmp).with_context(|| format!("building the {} topology", t.mode.label()))?;
        if t.mode.is_xnat() {
            lab.agents.push(start_agent(t, xnat)?);
        }
        if t.mode == Mode::XdpRedirect {
            lab.redirects.push(start_redirect(t, bench)?);
        }
        let mut iperf = netns::exec(&t.server, "iperf3");
        iperf.args(["-s", "-p", &IPERF_PORT.to_string()]);
        lab.iperf.push(Background::spawn(
            &format!("iperf3 -s in {}", t.server),
            iperf,
            libc::SIGTERM,
        )?);
        netns::wait_listening(&t.server, "tcp", IPERF_PORT, Duration::from_secs(10))?;
        lab.accept.push(AcceptServer::start(
            &t.server,
            SocketAddrV4::new(SERVER, FLOW_PORT),
        )?);
        // Resolve neighbours and check the path end to end.
        util::output(netns::exec(&t.client, "ping").args([
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "2",
            &SERVER.to_string(),
        ]))
        .with_context(|| format!("{}: the client cannot reach the server", t.mode.label()))?;
        verify_udp_path(t)?;
    }

    let trafgen_cfg = tmp.join("trafgen.cfg");
    fs::write(&trafgen_cfg, trafgen_config())?;
    let keys = [
        "udp_xdp_pps",
        "udp_xdp_offered_pps",
        "udp_xdp_accepted_pps",
        "udp_xdp_gw_cpu_busy_pct",
        "udp_xdp_gw_cpu_steal_pct",
        "udp_xdp_sender_cpu_busy_pct",
        "udp_pps",
        "udp_sent_pps",
        "udp_refused_pps",
        "gw_cpu_busy_pct",
        "sender_cpu_busy_pct",
        "gw_ipis_per_kpkt",
        "udp_trafgen_pps",
        "tcp1_bps",
        "tcp4_bps",
        "flows_per_s",
        "flows_failed",
    ];
    let mut samples: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); keys.len()]; topos.len()];
    let col = |key: &str| keys.iter().position(|k| *k == key).expect("a known key");
    for round in 0..plan.rounds {
        // Rotate the order so no mode always runs first or last.
        let order: Vec<usize> = (0..topos.len())
            .map(|k| (k + round) % topos.len())
            .collect();
        let progress = |what: &str, t: &Topo| {
            eprintln!(
                "xtask: bench: end to end, round {}/{}: {what}: {}",
                round + 1,
                plan.rounds,
                t.mode.label()
            );
        };
        // UDP, every sender, mode after mode.
        for &i in &order {
            proc::check_interrupted()?;
            let t = &topos[i];
            progress("UDP", t);
            let x = match &gen_prog {
                Some(g) => udp_xdp(t, plan, &sink_prog, g).unwrap_or_else(|e| {
                    eprintln!(
                        "xtask: bench: {}: XDP generator run failed: {e:#}",
                        t.mode.label()
                    );
                    xdp_errors
                        .entry(t.mode.key())
                        .or_insert_with(|| json!(format!("{e:#}")));
                    json!({})
                }),
                None => json!({}),
            };
            let u = udp(t, plan, &sink_prog)?;
            let tg = udp_trafgen(t, plan, &trafgen_cfg, &sink_prog).unwrap_or_else(|e| {
                eprintln!(
                    "xtask: bench: {}: trafgen run failed: {e:#}",
                    t.mode.label()
                );
                f64::NAN
            });
            let vals = [
                ("udp_xdp_pps", x["pps"].as_f64()),
                ("udp_xdp_offered_pps", x["offered_pps"].as_f64()),
                ("udp_xdp_accepted_pps", x["accepted_pps"].as_f64()),
                ("udp_xdp_gw_cpu_busy_pct", x["gw_cpu_busy_pct"].as_f64()),
                ("udp_xdp_gw_cpu_steal_pct", x["gw_cpu_steal_pct"].as_f64()),
                (
                    "udp_xdp_sender_cpu_busy_pct",
                    x["sender_cpu_busy_pct"].as_f64(),
                ),
                ("udp_pps", u["pps"].as_f64()),
                ("udp_sent_pps", u["sent_pps"].as_f64()),
                ("udp_refused_pps", u["refused_pps"].as_f64()),
                ("gw_cpu_busy_pct", u["gw_cpu_busy_pct"].as_f64()),
                ("sender_cpu_busy_pct", u["sender_cpu_busy_pct"].as_f64()),
                ("gw_ipis_per_kpkt", u["gw_ipis_per_kpkt"].as_f64()),
                ("udp_trafgen_pps", Some(tg)),
            ];
            for (k, v) in vals {
                samples[i][col(k)].push(v.unwrap_or(f64::NAN));
            }
        }
        // TCP: the modes one right after the other for each stream count.
        // The host's background load drifts over tens of seconds; with a
        // mode's TCP runs between its UDP and flow tests, the runs compared
        // in a round lay a minute apart and the drift, not the gateway,
        // decided their ratio. Before the flow tests, too, so no gateway
        // carries the last round's reset connections meanwhile (they are
        // gone by now: the transitory timeout is 30 s).
        for (key, streams) in [("tcp1_bps", 1), ("tcp4_bps", 4)] {
            for &i in &order {
                proc::check_interrupted()?;
                let t = &topos[i];
                progress(&format!("TCP, {streams} stream(s)"), t);
                samples[i][col(key)].push(tcp(t, plan, streams)?);
            }
        }
        // New flows.
        for &i in &order {
            proc::check_interrupted()?;
            let t = &topos[i];
            progress("new flows", t);
            let f = flows(t, plan)?;
            samples[i][col("flows_per_s")].push(f["per_s"].as_f64().unwrap_or(f64::NAN));
            samples[i][col("flows_failed")].push(f["failed"].as_f64().unwrap_or(f64::NAN));
        }
    }
    let mut profiles = serde_json::Map::new();
    // The bare redirect too: the same statistics give its cost per packet
    // beside xnat's (its program is named xnat_baseline_redirect_xdp).
    for t in topos
        .iter()
        .filter(|t| t.mode.is_xnat() || t.mode == Mode::XdpRedirect)
    {
        eprintln!("xtask: bench: BPF run-time statistics: {}", t.mode.label());
        match profile(t, plan, &sink_prog, gen_prog.as_ref()) {
            Ok(p) => {
                profiles.insert(t.mode.key().into(), p);
            }
            Err(e) => eprintln!("xtask: bench: {}: no BPF statistics: {e:#}", t.mode.label()),
        }
    }
    drop(lab);

    let modes: Vec<ModeSamples> = topos
        .iter()
        .zip(&samples)
        .map(|(t, s)| ModeSamples {
            key: t.mode.key(),
            label: t.mode.label(),
            samples: s,
        })
        .collect();
    let (per_mode, ratios) = rounds::summarise(&keys, &modes);
    let mut notes = String::new();
    if let Some(cpu) = gw_cpu() {
        let _ = write!(
            notes,
            "the UDP sender pinned to CPU 0; the gateway on CPU {cpu}, where the server's UDP sink runs too: with the XDP generator, int0's threaded NAPI pinned there, with the AF_PACKET sender, int0's receive processing steered there (RPS); the server's own stack on CPU 0 (RPS)"
        );
    } else {
        notes.push_str("one CPU: sender, gateway and server share it");
    }
    Ok(json!({
        "rounds": plan.rounds,
        "udp_secs": plan.udp_secs,
        "tcp_secs": plan.tcp_secs,
        "flow_secs": plan.flow_secs,
        "flow_threads": CLIENTS.len(),
        "udp_flows": UDP_FLOWS,
        "modes": per_mode,
        "ratios": ratios,
        "profiles": profiles,
        "udp_xdp_errors": xdp_errors,
        "cpu_layout": notes,
    }))
}
