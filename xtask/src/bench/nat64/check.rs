//! Before the runs: each topology carries what the runs measure. A ping
//! resolves the neighbours end to end; then a burst from the XDP generator
//! must reach the server's UDP stack with valid checksums (the rate runs
//! count packets in an XDP sink that checks nothing) and, through a NAT64,
//! from the gateway's address.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::super::{
    net::{GeneratorProg, XdpGenerator},
    netdev::GatewayNapi,
};
use super::topo::Topo;
use crate::{netns, proc, util};

/// Test datagrams the check waits for at the server.
const BURST: u64 = 1000;

fn nft_counter(ns: &str, name: &str) -> Result<u64> {
    let out = util::stdout(
        netns::exec(ns, "nft").args(["-j", "list", "counter", "netdev", "x64", name]),
    )?;
    let v: Value = serde_json::from_str(&out).context("parsing `nft -j list counter`")?;
    v["nftables"]
        .as_array()
        .and_then(|a| a.iter().find_map(|o| o["counter"]["packets"].as_u64()))
        .with_context(|| format!("no packet count for counter {name} in {ns}"))
}

/// The UDP datagrams `ns`'s stack dropped for a bad checksum (per
/// namespace: /proc/net is the reader's).
fn udp_csum_errors(ns: &str, v6: bool) -> Result<u64> {
    let file = if v6 {
        "/proc/net/snmp6"
    } else {
        "/proc/net/snmp"
    };
    let text = util::stdout(netns::exec(ns, "cat").arg(file))?;
    csum_errors_in(&text, v6).with_context(|| format!("no UDP checksum errors in {file} of {ns}"))
}

/// `Udp: ... InCsumErrors ...` (a line of names, then one of values) or
/// `Udp6InCsumErrors N`.
fn csum_errors_in(text: &str, v6: bool) -> Option<u64> {
    if v6 {
        return text.lines().find_map(|l| {
            l.strip_prefix("Udp6InCsumErrors")
                .and_then(|v| v.trim().parse().ok())
        });
    }
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let at = names.split_whitespace().position(|n| n == "InCsumErrors")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// Checks `t`'s path with its gateway running (see the module's comment);
/// `generator` sends the runs' frames.
pub fn path(t: &Topo, generator: &GeneratorProg) -> Result<()> {
    let target = t.mode.target().to_string();
    util::output(
        netns::exec(&t.client, "ping").args(["-6", "-c", "2", "-i", "0.2", "-W", "2", &target]),
    )
    .with_context(|| format!("the client cannot ping {target}"))?;

    let v6 = !t.mode.translates();
    let (rx0, foreign0, bad0) = (
        nft_counter(&t.server, "rx")?,
        nft_counter(&t.server, "foreign")?,
        udp_csum_errors(&t.server, v6)?,
    );
    let rx = {
        // int0 takes the generator's frames only with NAPI (as in the runs).
        let _napi = GatewayNapi::setup(&t.gw, "int0", None)?;
        let mut sender = XdpGenerator::start(&t.client, "eth0", generator, None)?;
        let arrived = proc::poll_until(
            &format!("{BURST} test datagrams at the server"),
            Duration::from_secs(10),
            || nft_counter(&t.server, "rx").is_ok_and(|n| n - rx0 >= BURST),
        );
        sender.stop();
        arrived?;
        nft_counter(&t.server, "rx")? - rx0
    };
    let foreign = nft_counter(&t.server, "foreign")? - foreign0;
    if foreign != 0 {
        bail!(
            "{foreign} of {rx} test datagrams reached the server from another address than the gateway's"
        );
    }
    // The stack checks a datagram's checksum before it finds no socket on
    // the port. Datagrams still in flight may be counted after this read,
    // but a generator or a translator that broke checksums would have
    // broken those of the BURST that arrived.
    let bad = udp_csum_errors(&t.server, v6)? - bad0;
    if bad != 0 {
        bail!("{bad} of {rx} test datagrams reached the server with a bad UDP checksum");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_errors_are_read_from_both_files() {
        let snmp = "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors \
                    InCsumErrors IgnoredMulti MemErrors\n\
                    Udp: 5 1200 3 0 0 0 3 0 0\n\
                    UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors \
                    SndbufErrors InCsumErrors IgnoredMulti MemErrors\n\
                    UdpLite: 0 0 0 0 0 0 0 0 0\n";
        assert_eq!(csum_errors_in(snmp, false), Some(3));
        let snmp6 = "Udp6InDatagrams                 \t7\nUdp6InCsumErrors                \t2\n";
        assert_eq!(csum_errors_in(snmp6, true), Some(2));
        assert_eq!(csum_errors_in("", false), None);
    }
}
