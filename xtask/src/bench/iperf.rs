//! TCP throughput with iperf3 between two namespaces.

use std::{thread, time::Duration};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::rounds::median;
use crate::{netns, util};

/// Runs `iperf3 -c SERVER -p PORT -t SECS -O 1 -P STREAMS` (plus `extra`,
/// e.g. `-6` or `-R`) in namespace `ns` and returns the median of its
/// half-second intervals, bits/s, as the client counted them.
pub(super) fn throughput(
    ns: &str,
    server: &str,
    port: u16,
    secs: u32,
    streams: u32,
    extra: &[&str],
) -> Result<f64> {
    let run = || -> Result<f64> {
        let out = util::stdout(
            netns::exec(ns, "iperf3")
                .args([
                    "-c",
                    server,
                    "-p",
                    &port.to_string(),
                    "-t",
                    &secs.to_string(),
                    "-O",
                    "1",
                    "-P",
                    &streams.to_string(),
                    "-i",
                    "0.5",
                    "-J",
                ])
                .args(extra),
        )?;
        let v: Value = serde_json::from_str(&out).context("parsing iperf3 -J")?;
        // The median of the half-second intervals: a moment of load from
        // elsewhere on this shared machine (which only ever lowers a
        // throughput) then cannot decide a round, as it can the run's mean.
        let rates: Vec<f64> = v["intervals"]
            .as_array()
            .context("no intervals in iperf3's output")?
            .iter()
            .filter(|i| i["sum"]["omitted"] != Value::Bool(true))
            .filter_map(|i| i["sum"]["bits_per_second"].as_f64())
            .collect();
        if rates.is_empty() {
            bail!("iperf3 reported no interval");
        }
        Ok(median(&rates))
    };
    // The server takes one test at a time and may still be finishing the
    // previous one: retry once.
    run().or_else(|_| {
        thread::sleep(Duration::from_millis(500));
        run()
    })
}
