//! `cargo xtask demo`: xnat between a private and a public network namespace, with real ping,
//! TCP and UDP traffic through a static 1:1 mapping and through NAPT, what each side saw, and
//! the flows xnat tracks. `cargo xtask demo --ha`: an active/standby pair of gateways whose
//! active one dies while streams run through it (`xnat-ha demo`, tests/src/bin/xnat-ha.rs).

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::{
    netns::{self, Namespaces},
    proc::{self, Background, Stream},
    toolchain, tools, util,
};

/// One demo step; gets the path of the xnat binary.
type Step = fn(&Path) -> Result<()>;

const PRIV: &str = "xnat-demo-priv";
const GW: &str = "xnat-demo-gw";
const PUB: &str = "xnat-demo-pub";
/// An IPv6-only host on a second inside interface: it reaches IPv4 through NAT64.
const V6: &str = "xnat-demo-v6";
const V6_HOST: &str = "2001:db8:64::2";
/// The public host as the IPv6-only host addresses it: the well-known NAT64 prefix
/// 64:ff9b::/96 with 192.0.2.2 in its last 32 bits (RFC 6052).
const PUBLIC_HOST_V6: &str = "64:ff9b::192.0.2.2";

const PRIVATE_HOST: &str = "10.0.0.2";
const PUBLIC_ADDR: &str = "203.0.113.1";
const PUBLIC_HOST: &str = "192.0.2.2";
/// The private host's second address: no 1:1 mapping, so NAPT translates it.
const NAPT_HOST: &str = "10.0.0.3";
/// The NAPT pool: the gateway's own outside address, shared by every NAPT flow.
const POOL_ADDR: &str = "192.0.2.1";
/// NAPT's ports: below the gateway's own ephemeral ones (`xnat attach`
/// warns of an overlap on one of its own addresses).
const NAPT_PORTS: &str = "1024-32767";

const TOPOLOGY: &str = "
      xnat-demo-priv           xnat-demo-gw                               xnat-demo-pub
    +------------------+     +------------------------------------+     +------------------------+
    | eth0 10.0.0.2    |-----| int0 10.0.0.1   ext0 192.0.2.1     |-----| eth0 192.0.2.2         |
    |      10.0.0.3    |     |                  + 203.0.113.1/32  |     | route 203.0.113.0/24   |
    | default via      |     | 1:1:  10.0.0.2 <-> 203.0.113.1     |     |   via 192.0.2.1        |
    |   10.0.0.1       |     | NAPT: 10.0.0.3  -> 192.0.2.1:port  |     |                        |
    +------------------+     +------------------------------------+     +------------------------+
      private host             gateway: xnat on ext0                      public host: no route
                                                                          to 10.0.0.0/8
    +------------------+     |                                    |
    | eth0             |-----| int6 2001:db8:64::1                |
    |  2001:db8:64::2  |     | NAT64: 64:ff9b::/96 -> NAPT        |
    +------------------+     +------------------------------------+
      xnat-demo-v6: an IPv6-only host";

/// What every demo needs first: root, the toolchain, the tools (bird2 and keepalived among
/// them), bpffs, and Ctrl-C handled.
fn prepare(what: &str) -> Result<()> {
    util::require_root(what, "it loads BPF programs and creates network namespaces")?;
    toolchain::ensure_toolchain()?;
    tools::ensure_tools()?;
    tools::ensure_bpffs()?;
    proc::install_interrupt_handler();
    Ok(())
}

pub fn run(ingress: &str) -> Result<()> {
    prepare("demo")?;

    // XNAT_BIN (as for the tests) runs a given binary instead of building one.
    let xnat = match std::env::var_os("XNAT_BIN") {
        Some(bin) if !bin.is_empty() => PathBuf::from(bin),
        _ => {
            header(
                "Building xnat",
                &["cargo build --bin xnat (the BPF programs are compiled into the binary)"],
            );
            util::run(util::cargo().args(["build", "--bin", "xnat"]))?;
            util::target_dir().join("debug").join("xnat")
        }
    };

    header(
        "Creating three network namespaces",
        &["A private host, a NAT gateway and a public host, joined by veth pairs:"],
    );
    println!("{TOPOLOGY}");
    // Declared before the agent, so it is dropped after it: the agent detaches while its
    // interface still exists, then the namespaces go.
    let lab = Namespaces::create(&[PRIV, GW, PUB, V6])?;
    build_topology(ingress)?;

    header(
        "Starting the xnat agent on the gateway's outside interface",
        &[
            &format!(
                "xnat attach ext0 --map {PRIVATE_HOST}={PUBLIC_ADDR} --pool {POOL_ADDR} \
                 --ports {NAPT_PORTS} --inside int6 --nat64 --ingress {ingress}"
            ),
            "(a static 1:1 mapping for 10.0.0.2; every other inside address (10/8, 172.16/12,",
            "192.168/16 by default) shares the pool address 192.0.2.1 through NAPT, on ports",
            "1024-32767: 192.0.2.1 is the gateway's own address, and its own connections pick",
            "ports from 32768-60999, net.ipv4.ip_local_port_range); --nat64: IPv6 hosts behind",
            "the inside interface int6 reach IPv4 hosts at 64:ff9b::a.b.c.d, through the same NAPT",
        ],
    );
    let mut attach = netns::exec(GW, &xnat);
    attach.args([
        "attach",
        "ext0",
        "--map",
        &format!("{PRIVATE_HOST}={PUBLIC_ADDR}"),
        "--pool",
        POOL_ADDR,
        "--ports",
        NAPT_PORTS,
        "--inside",
        "int6",
        "--nat64",
        "--ingress",
        ingress,
    ]);
    let mut agent = Agent {
        bg: Background::spawn("the xnat agent", attach, libc::SIGINT)?,
        xnat: xnat.clone(),
        cleaned: false,
    };
    let ready = agent.bg.wait_for_line(
        "`xnat: attached to ext0`",
        Duration::from_secs(20),
        |stream, line| stream == Stream::Stdout && line.starts_with("xnat: attached to ext0"),
    )?;
    show("agent", &[ready]);

    let mut failures: Vec<String> = Vec::new();
    let steps: [(&str, Step); 8] = [
        ("ICMP out", |_| icmp_out()),
        ("TCP out", |_| tcp_out()),
        ("UDP out", |_| udp_out()),
        ("ICMP in", |_| icmp_in()),
        ("NAPT out", |_| napt_out()),
        ("NAT64 out", |_| nat64_out()),
        ("flows", show_flows),
        ("map list and stats", show_state),
    ];
    for (name, step) in steps {
        if let Err(err) = step(&xnat) {
            // An interrupt ends the demo; anything else is reported and the demo goes on, so one
            // broken protocol does not hide what works.
            proc::check_interrupted()?;
            println!("    !! {name} failed: {err:#}");
            failures.push(name.to_owned());
        }
    }

    header(
        "Stopping the agent (SIGINT: it detaches its programs and exits)",
        &[],
    );
    let status = agent.stop()?;
    let mut log = agent.bg.stdout_lines();
    log.retain(|l| !l.starts_with("xnat: attached to ext0"));
    log.extend(agent.bg.stderr_lines());
    if !log.is_empty() {
        show("agent log", &log);
    }
    println!("    agent exited: {status}");
    if !status.success() {
        failures.push("agent exit".to_owned());
    }
    drop(agent);

    header("Deleting the namespaces", &[]);
    drop(lab);

    if !failures.is_empty() {
        bail!(
            "the demo ran, but these steps failed: {}",
            failures.join(", ")
        );
    }
    println!(
        "\nDemo complete: the private host reached the public one as {PUBLIC_ADDR} (1:1) and \
         as {POOL_ADDR} (NAPT), and the IPv6-only host reached it at {PUBLIC_HOST_V6} as \
         {POOL_ADDR} (NAT64)."
    );
    Ok(())
}

/// `cargo xtask demo --ha`: builds xnat and `xnat-ha` and runs `xnat-ha demo`, the narrated
/// failover of an active/standby pair (keepalived, BIRD; tests/src/ha_topo.rs), with the built
/// xnat as XNAT_BIN (or the one XNAT_BIN names, as for the tests).
pub fn run_ha(no_sync: bool) -> Result<()> {
    prepare("demo --ha")?;

    let given = std::env::var_os("XNAT_BIN").filter(|b| !b.is_empty());
    let mut build = util::cargo();
    build.args(["build", "--bin", "xnat-ha"]);
    if given.is_none() {
        build.args(["--bin", "xnat"]);
    }
    header(
        "Building xnat and xnat-ha",
        &["cargo build --bin xnat --bin xnat-ha (xnat-ha: tests/src/bin/xnat-ha.rs)"],
    );
    util::run(&mut build)?;
    let debug = util::target_dir().join("debug");
    let xnat = given.map_or_else(|| debug.join("xnat"), PathBuf::from);
    let mut demo = Command::new(debug.join("xnat-ha"));
    demo.env("XNAT_BIN", &xnat).arg("demo");
    if no_sync {
        demo.arg("--no-sync");
    }
    // xnat-ha narrates on stdout and exits non-zero if the failover was not clean.
    util::run(&mut demo).map_err(|e| anyhow::anyhow!("the failover demo failed: {e:#}"))
}

/// The running agent. Stopping it (also on drop, i.e. on any error) sends SIGINT so it detaches;
/// if it had to be killed instead, `xnat detach` removes the pins it would have removed.
struct Agent {
    bg: Background,
    xnat: PathBuf,
    cleaned: bool,
}

impl Agent {
    fn stop(&mut self) -> Result<ExitStatus> {
        use std::os::unix::process::ExitStatusExt;
        let status = self.bg.stop(Duration::from_secs(10))?;
        if !self.cleaned && status.signal() == Some(libc::SIGKILL) {
            self.cleaned = true;
            eprintln!("xtask: running `xnat detach ext0` after killing the agent");
            if let Err(err) = util::output(netns::exec(GW, &self.xnat).args(["detach", "ext0"])) {
                eprintln!("xtask: {err:#}");
            }
        }
        Ok(status)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("xtask: could not stop the agent: {err:#}");
        }
    }
}

fn build_topology(ingress: &str) -> Result<()> {
    // Create each veth end directly in its namespace, so nothing ever appears in (or clashes
    // with) the host's namespace.
    util::output(Command::new("ip").args([
        "link", "add", "eth0", "netns", PRIV, "type", "veth", "peer", "name", "int0", "netns", GW,
    ]))?;
    util::output(Command::new("ip").args([
        "link", "add", "ext0", "netns", GW, "type", "veth", "peer", "name", "eth0", "netns", PUB,
    ]))?;

    netns::ip(PRIV, &["addr", "add", "10.0.0.2/24", "dev", "eth0"])?;
    netns::ip(PRIV, &["addr", "add", "10.0.0.3/24", "dev", "eth0"])?;
    netns::ip(PRIV, &["link", "set", "eth0", "up"])?;
    netns::ip(PRIV, &["route", "add", "default", "via", "10.0.0.1"])?;

    netns::ip(GW, &["addr", "add", "10.0.0.1/24", "dev", "int0"])?;
    netns::ip(GW, &["addr", "add", "192.0.2.1/24", "dev", "ext0"])?;
    netns::ip(GW, &["addr", "add", "203.0.113.1/32", "dev", "ext0"])?;
    netns::ip(GW, &["link", "set", "int0", "up"])?;
    netns::ip(GW, &["link", "set", "ext0", "up"])?;
    // Forward between inside and outside; and never answer pings to 203.0.113.1 itself, so a
    // reply can only come from the private host through the mapping.
    netns::sh(
        GW,
        "echo 1 > /proc/sys/net/ipv4/ip_forward && \
         echo 1 > /proc/sys/net/ipv4/icmp_echo_ignore_all",
    )?;

    netns::ip(PUB, &["addr", "add", "192.0.2.2/24", "dev", "eth0"])?;
    netns::ip(PUB, &["link", "set", "eth0", "up"])?;
    // Only the public address is reachable from here; 10.0.0.0/8 is not.
    netns::ip(PUB, &["route", "add", "203.0.113.0/24", "via", "192.0.2.1"])?;

    // The IPv6-only host, on the gateway's second inside interface. The gateway forwards
    // IPv6 and has a route covering the NAT64 prefix: its own Time Exceeded and Packet Too
    // Big need one (README, "NAT64").
    util::output(Command::new("ip").args([
        "link", "add", "eth0", "netns", V6, "type", "veth", "peer", "name", "int6", "netns", GW,
    ]))?;
    netns::ip(
        V6,
        &[
            "addr",
            "add",
            &format!("{V6_HOST}/64"),
            "dev",
            "eth0",
            "nodad",
        ],
    )?;
    netns::ip(V6, &["link", "set", "eth0", "up"])?;
    netns::ip(V6, &["route", "add", "default", "via", "2001:db8:64::1"])?;
    netns::ip(
        GW,
        &["addr", "add", "2001:db8:64::1/64", "dev", "int6", "nodad"],
    )?;
    netns::ip(GW, &["link", "set", "int6", "up"])?;
    netns::ip(GW, &["-6", "route", "add", "64:ff9b::/96", "dev", "ext0"])?;
    netns::sh(GW, "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding")?;

    if ingress == "xdp" {
        // XDP cannot fix up a partial checksum; a real wire never delivers one, so make the
        // public host's veth behave like a wire (README, "Ingress modes and checksum offload").
        println!("    (xdp ingress: turning tx checksum offload off on the public host's eth0)");
        util::output(netns::exec(PUB, "ethtool").args(["-K", "eth0", "tx", "off"]))?;
    }
    Ok(())
}

fn icmp_out() -> Result<()> {
    header(
        "ICMP out: the private host pings the public host",
        &[
            "tcpdump runs on the public host. It should see requests from 203.0.113.1 and send",
            "its replies there; it never sees 10.0.0.2, an address it could not answer.",
        ],
    );
    let mut dump = start_tcpdump(PUB, 6)?;
    let ping = capture(
        "ping",
        netns::exec(PRIV, "ping").args(["-c", "3", "-i", "0.2", "-W", "1", PUBLIC_HOST]),
    )?;
    show(&format!("private host: ping {PUBLIC_HOST}"), &ping.lines());
    let seen = finish_tcpdump(&mut dump)?;
    show("public host: tcpdump -n -i eth0 icmp", &seen);

    check(ping.status.success(), "ping got no replies")?;
    check(
        seen.iter()
            .any(|l| l.contains(&format!("{PUBLIC_ADDR} > {PUBLIC_HOST}"))),
        "the public host saw no packet from 203.0.113.1",
    )?;
    check(
        !seen.iter().any(|l| l.contains(PRIVATE_HOST)),
        "the private address leaked to the public side",
    )
}

fn tcp_out() -> Result<()> {
    header(
        "TCP out: the private host connects to a server on the public host",
        &["The server (socat) answers with the address and port the connection came from."],
    );
    let _server = tcp_server()?;
    tcp_exchange(None, PUBLIC_ADDR)
}

fn udp_out() -> Result<()> {
    header(
        "UDP out: the private host sends a datagram to the public host",
        &["The server (socat) replies with the address and port the datagram came from."],
    );
    let _server = udp_server()?;
    udp_exchange(None, PUBLIC_ADDR)
}

/// A TCP server on the public host (port 8080) that answers with the address and port each
/// connection came from; stopped when dropped.
fn tcp_server() -> Result<Background> {
    let mut server = netns::exec(PUB, "socat");
    // No ':' in the command: socat would take it as an address separator.
    server.args([
        "TCP-LISTEN:8080,reuseaddr,fork",
        "SYSTEM:echo public host saw TCP from $SOCAT_PEERADDR port $SOCAT_PEERPORT",
    ]);
    let server = Background::spawn("the TCP server", server, libc::SIGTERM)?;
    netns::wait_listening(PUB, "tcp", 8080, Duration::from_secs(5))?;
    Ok(server)
}

/// The same for UDP (port 9000): it replies to each datagram with where it came from.
fn udp_server() -> Result<Background> {
    let mut server = netns::exec(PUB, "socat");
    server.args([
        "UDP-RECVFROM:9000,fork",
        "SYSTEM:echo public host saw UDP from $SOCAT_PEERADDR port $SOCAT_PEERPORT",
    ]);
    let server = Background::spawn("the UDP server", server, libc::SIGTERM)?;
    netns::wait_listening(PUB, "udp", 9000, Duration::from_secs(5))?;
    Ok(server)
}

/// socat's address option binding the private host's side to `bind`, if given.
fn bound(bind: Option<&str>) -> String {
    bind.map(|a| format!(",bind={a}")).unwrap_or_default()
}

/// One connection from the private host (from `bind`, if given) to the TCP server; the server
/// must have seen it come from `public`.
fn tcp_exchange(bind: Option<&str>, public: &str) -> Result<()> {
    let to = format!("TCP:{PUBLIC_HOST}:8080{}", bound(bind));
    let client = capture(
        "the TCP client",
        netns::exec(PRIV, "socat").args(["-T2", "-", &format!("{to},connect-timeout=3")]),
    )?;
    show(&format!("private host: socat - {to}"), &client.lines());
    check(client.status.success(), "the TCP client failed")?;
    check(
        client.stdout.contains(&format!("from {public} port ")),
        &format!("the answer does not show {public}"),
    )
}

/// One datagram from the private host (from `bind`, if given) to the UDP server, whose reply
/// must say it came from `public`.
fn udp_exchange(bind: Option<&str>, public: &str) -> Result<()> {
    let to = format!("UDP:{PUBLIC_HOST}:9000{}", bound(bind));
    // -t4: after sending, wait up to four seconds for the reply (the
    // server forks a shell per datagram: on a loaded machine one second
    // was not always enough).
    let script = format!("echo hi | socat -t4 -T5 - {to}");
    let client = capture(
        "the UDP client",
        netns::exec(PRIV, "sh").args(["-c", &script]),
    )?;
    show(
        &format!("private host: echo hi | socat - {to}"),
        &client.lines(),
    );
    check(client.status.success(), "the UDP client failed")?;
    check(
        client.stdout.contains(&format!("from {public} port ")),
        &format!("no reply showing {public}"),
    )
}

fn icmp_in() -> Result<()> {
    header(
        "ICMP in: the public host pings the public address 203.0.113.1",
        &[
            "The gateway ignores pings itself, so replies can only come from the private host",
            "through the 1:1 mapping. tcpdump on the private host shows the requests arriving.",
        ],
    );
    let mut dump = start_tcpdump(PRIV, 6)?;
    let ping = capture(
        "ping",
        netns::exec(PUB, "ping").args(["-c", "3", "-i", "0.2", "-W", "1", PUBLIC_ADDR]),
    )?;
    show(&format!("public host: ping {PUBLIC_ADDR}"), &ping.lines());
    let seen = finish_tcpdump(&mut dump)?;
    show("private host: tcpdump -n -i eth0 icmp", &seen);

    check(ping.status.success(), "ping got no replies")?;
    check(
        seen.iter()
            .any(|l| l.contains(&format!("{PUBLIC_HOST} > {PRIVATE_HOST}"))),
        "the private host saw no request for 10.0.0.2",
    )
}

fn napt_out() -> Result<()> {
    header(
        "NAPT out: the private host's second address, 10.0.0.3, shares 192.0.2.1",
        &[
            "10.0.0.3 has no 1:1 mapping: each of its flows gets a port on the pool address",
            "192.0.2.1, made in the kernel by the flow's first packet (the inside port is kept",
            "when it is free and in 1024-32767).",
            "Two TCP connections, one UDP exchange and a ping, each from 10.0.0.3.",
        ],
    );
    let _tcp_server = tcp_server()?;
    let _udp_server = udp_server()?;
    for _ in 0..2 {
        tcp_exchange(Some(NAPT_HOST), POOL_ADDR)?;
    }
    udp_exchange(Some(NAPT_HOST), POOL_ADDR)?;
    let ping = capture(
        "ping",
        netns::exec(PRIV, "ping").args([
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "1",
            "-I",
            NAPT_HOST,
            PUBLIC_HOST,
        ]),
    )?;
    show(
        &format!("private host: ping -I {NAPT_HOST} {PUBLIC_HOST}"),
        &ping.lines(),
    );
    check(ping.status.success(), "ping from 10.0.0.3 got no replies")
}

fn nat64_out() -> Result<()> {
    header(
        "NAT64 out: the IPv6-only host reaches the IPv4 public host",
        &[
            "It addresses 192.0.2.2 as 64:ff9b::192.0.2.2 (what a DNS64 resolver would hand out).",
            "xnat translates each packet to IPv4 (RFC 7915) and through NAPT: the public host sees",
            "192.0.2.1 and a port, as for 10.0.0.3, and never an IPv6 address.",
        ],
    );
    let _tcp_server = tcp_server()?;
    let _udp_server = udp_server()?;
    let ping = capture(
        "ping",
        netns::exec(V6, "ping").args(["-6", "-c", "3", "-i", "0.2", "-W", "1", PUBLIC_HOST_V6]),
    )?;
    show(&format!("IPv6 host: ping {PUBLIC_HOST_V6}"), &ping.lines());
    check(ping.status.success(), "ping through NAT64 got no replies")?;

    let to = format!("TCP6:[{PUBLIC_HOST_V6}]:8080");
    let client = capture(
        "the TCP client",
        netns::exec(V6, "socat").args(["-T2", "-", &format!("{to},connect-timeout=3")]),
    )?;
    show(&format!("IPv6 host: socat - {to}"), &client.lines());
    check(
        client.status.success() && client.stdout.contains(&format!("from {POOL_ADDR} port ")),
        &format!("the TCP answer does not show {POOL_ADDR}"),
    )?;

    let to = format!("UDP6:[{PUBLIC_HOST_V6}]:9000");
    let script = format!("echo hi | socat -t4 -T5 - {to}");
    let client = capture(
        "the UDP client",
        netns::exec(V6, "sh").args(["-c", &script]),
    )?;
    show(
        &format!("IPv6 host: echo hi | socat - {to}"),
        &client.lines(),
    );
    check(
        client.status.success() && client.stdout.contains(&format!("from {POOL_ADDR} port ")),
        &format!("the UDP reply does not show {POOL_ADDR}"),
    )
}

fn show_flows(xnat: &Path) -> Result<()> {
    header(
        "The flows xnat tracks (like conntrack -L)",
        &[
            "xnat flows -i ext0: one line per NAPT session: inside, public and remote endpoints,",
            "TCP state, age, time to expiry, packets and bytes each way (1:1 traffic has no",
            "per-flow state, so only 10.0.0.3's flows appear, and the IPv6 host's NAT64 flows,",
            "shown by its IPv6 address).",
        ],
    );
    let out = capture("xnat", netns::exec(GW, xnat).args(["flows", "-i", "ext0"]))?;
    show("xnat flows -i ext0", &out.lines());
    check(out.status.success(), "xnat flows failed")?;
    for (proto, what) in [("tcp", "TCP"), ("udp", "UDP"), ("icmp", "ICMP")] {
        check(
            out.stdout
                .lines()
                .any(|l| l.starts_with(proto) && l.contains(NAPT_HOST) && l.contains(POOL_ADDR)),
            &format!("no {what} flow of {NAPT_HOST} through {POOL_ADDR} listed"),
        )?;
    }
    check(
        out.stdout
            .lines()
            .any(|l| l.contains(&format!("[{V6_HOST}]")) && l.contains(POOL_ADDR)),
        &format!("no NAT64 flow of {V6_HOST} through {POOL_ADDR} listed"),
    )?;
    Ok(())
}

fn show_state(xnat: &Path) -> Result<()> {
    header(
        "The gateway's state, read from the pinned maps",
        &["xnat map list -i ext0 / xnat stats -i ext0 (they work with or without the agent)"],
    );
    let mut ok = true;
    for args in [&["map", "list", "-i", "ext0"][..], &["stats", "-i", "ext0"]] {
        let out = capture("xnat", netns::exec(GW, xnat).args(args))?;
        show(&format!("xnat {}", args.join(" ")), &out.lines());
        ok &= out.status.success();
    }
    check(ok, "an xnat command failed")
}

/// Starts `tcpdump` for `count` ICMP packets on `eth0` of `ns` and waits until it captures.
fn start_tcpdump(ns: &str, count: u32) -> Result<Background> {
    let mut cmd = netns::exec(ns, "tcpdump");
    cmd.args(["-n", "-l", "-i", "eth0", "-c", &count.to_string(), "icmp"]);
    let mut dump = Background::spawn("tcpdump", cmd, libc::SIGINT)?;
    dump.wait_for_line("`listening on`", Duration::from_secs(10), |_, line| {
        line.contains("listening on")
    })?;
    Ok(dump)
}

/// Gives tcpdump a moment to see the last packets, stops it and returns what it printed.
fn finish_tcpdump(dump: &mut Background) -> Result<Vec<String>> {
    if dump.wait(Duration::from_secs(2))?.is_none() {
        // Fewer packets than expected: something was dropped. Show what it did see.
        dump.stop(Duration::from_secs(2))?;
    }
    // tcpdump may end with an empty line when interrupted.
    let mut lines = dump.stdout_lines();
    lines.retain(|l| !l.trim().is_empty());
    Ok(lines)
}

struct Captured {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .map(str::to_owned)
            .collect()
    }
}

/// Runs a short command to completion with a deadline (and Ctrl-C aware), capturing output.
fn capture(name: &str, cmd: &mut Command) -> Result<Captured> {
    let cmd = std::mem::replace(cmd, Command::new("true"));
    let mut bg = Background::spawn(name, cmd, libc::SIGTERM)?;
    proc::poll_until(name, Duration::from_secs(15), || {
        bg.wait(Duration::ZERO).ok().flatten().is_some()
    })?;
    let status = bg
        .wait(Duration::ZERO)?
        .with_context(|| format!("{name} did not exit"))?;
    Ok(Captured {
        status,
        stdout: bg.stdout_lines().join("\n"),
        stderr: bg.stderr_lines().join("\n"),
    })
}

fn check(ok: bool, msg: &str) -> Result<()> {
    if !ok {
        bail!("{msg}");
    }
    Ok(())
}

fn header(title: &str, explain: &[&str]) {
    println!("\n==> {title}");
    for line in explain {
        println!("    {line}");
    }
}

fn show(who: &str, lines: &[String]) {
    println!("    [{who}]");
    if lines.is_empty() {
        println!("      (nothing)");
    }
    for line in lines {
        println!("      {line}");
    }
}
