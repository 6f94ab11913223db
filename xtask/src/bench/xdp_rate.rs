//! The UDP rate through a gateway with the kernel's XDP traffic generator
//! as the sender (`net::XdpGenerator`), counted by the XDP sink on the
//! server's eth0: the end-to-end benchmark's headline UDP figure, and the
//! NAT64 benchmark's.

use std::{
    os::fd::OwnedFd,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::{
    cpu::{busy_pct, cpu_times, gw_cpu, process_cpu_secs, steal_times},
    net::{self, GeneratorProg, XdpGenerator},
    netdev::{GatewayNapi, ethtool_stats},
};

/// The namespaces of a client — gateway — server topology whose client
/// sends out of `eth0` into the gateway's `int0`, and whose server
/// receives on `eth0`.
pub(super) struct Path<'a> {
    pub client: &'a str,
    pub gw: &'a str,
    pub server: &'a str,
}

/// Packets the XDP sink on `server`'s eth0 dropped so far (all the test's
/// packets that arrived; the veth counts them).
pub(super) fn sink_count(server: &str) -> Result<u64> {
    Ok(ethtool_stats(server, "eth0", ["rx_queue_0_xdp_drops"])?[0])
}

/// Frames the client's veth handed to the gateway's `int0` with
/// `ndo_xdp_xmit` so far: (taken into its ring, refused as the ring was
/// full).
fn xdp_xmit_counts(client: &str) -> Result<(u64, u64)> {
    let [ok, err] = ethtool_stats(
        client,
        "eth0",
        ["tx_queue_0_xdp_xmit", "tx_queue_0_xdp_xmit_errors"],
    )?;
    Ok((ok, err))
}

/// The UDP rate with the kernel's XDP traffic generator as the sender (see
/// [`XdpGenerator`] and [`GatewayNapi`]): the generator alone on CPU 0,
/// the whole gateway path on the other. It offers more than twice what
/// the fastest gateway mode forwards, so the gateway is saturated whatever
/// its speed. `sink_prog` drops the packets on the server's eth0 while
/// the test runs. Only then: on a veth, an XDP program also changes how
/// TCP is received (no GRO of large segments), which would skew TCP tests.
/// `watch`: a process of the gateway's whose CPU use to report too
/// (`watched_cpu_pct`: a user-space translator's).
pub(super) fn measure(
    p: &Path,
    secs: f64,
    sink_prog: &OwnedFd,
    gen_prog: &GeneratorProg,
    watch: Option<i32>,
) -> Result<Value> {
    let _sink = net::attach_xdp(p.server, "eth0", sink_prog)?;
    let gw = gw_cpu();
    let _napi = GatewayNapi::setup(p.gw, "int0", gw)?;
    // Declared after the NAPI set-up: stops before it is undone.
    let mut generator = XdpGenerator::start(p.client, "eth0", gen_prog, gw.map(|_| 0))?;
    thread::sleep(Duration::from_millis(500));
    let watched = || watch.and_then(process_cpu_secs).unwrap_or(f64::NAN);
    let (rx0, xmit0, cpu0, steal0, watched0, t0) = (
        sink_count(p.server)?,
        xdp_xmit_counts(p.client)?,
        cpu_times(),
        steal_times(),
        watched(),
        Instant::now(),
    );
    thread::sleep(Duration::from_secs_f64(secs));
    let (rx1, xmit1, cpu1, steal1, watched1, secs) = (
        sink_count(p.server)?,
        xdp_xmit_counts(p.client)?,
        cpu_times(),
        steal_times(),
        watched(),
        t0.elapsed().as_secs_f64(),
    );
    generator.stop();
    if rx1 == rx0 {
        bail!("no UDP packet reached the server");
    }
    let accepted = xmit1.0 - xmit0.0;
    let refused = xmit1.1 - xmit0.1;
    Ok(json!({
        "pps": (rx1 - rx0) as f64 / secs,
        "offered_pps": (accepted + refused) as f64 / secs,
        "accepted_pps": accepted as f64 / secs,
        "gw_cpu_busy_pct": busy_pct(&cpu0, &cpu1, gw.unwrap_or(0)),
        "gw_cpu_steal_pct": busy_pct(&steal0, &steal1, gw.unwrap_or(0)),
        "sender_cpu_busy_pct": busy_pct(&cpu0, &cpu1, 0),
        "watched_cpu_pct": 100.0 * (watched1 - watched0) / secs,
    }))
}
