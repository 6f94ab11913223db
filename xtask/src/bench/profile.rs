//! Where the nanoseconds go: `xnat-bench --established-only` (each
//! program, and the minimal NAT, on its established cycle flow) under
//! `perf record -g`, every sample attributed to the BPF program it ran in
//! and to what the program was doing — its own instructions, a hash-table
//! lookup, a checksum helper — so the report can split each program's
//! per-packet time the way the kernel spent it.

use std::{collections::BTreeMap, fs, path::Path, process::Command};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::util;

/// What a sample inside a program was doing, by the kernel function (or
/// BPF subprogram) the program had called, if any.
const KINDS: &[(&str, &str)] = &[
    ("body", "the program's own instructions"),
    (
        "hash",
        "hash-table lookups (hash, bucket walk, key compare)",
    ),
    ("lpm", "LPM-trie lookups"),
    ("csum", "checksum helpers (bpf_l4_csum_replace, …)"),
    ("subprog", "calls to BPF subprograms (memset, memcpy, …)"),
    ("other", "other kernel helpers"),
];

/// The kind of work of a sample whose program frame called `callee`.
fn kind(callee: &str) -> &'static str {
    match callee {
        c if c.contains("htab") || c.contains("lookup_nulls_elem") || c.contains("jhash") => "hash",
        c if c.contains("trie_lookup") => "lpm",
        c if c.contains("csum") || c.contains("skb_ensure_writable") => "csum",
        c if c.starts_with("bpf_prog_") => "subprog",
        _ => "other",
    }
}

/// The program name in a JITed program's symbol
/// (`bpf_prog_<tag>_<name>`), for xnat's own programs.
fn program(sym: &str) -> Option<&str> {
    let rest = sym.strip_prefix("bpf_prog_")?;
    let (_tag, name) = rest.split_once('_')?;
    name.starts_with("xnat_").then_some(name)
}

/// The symbol of one `perf script` call-chain line
/// (`\tffffffff81f5f423 bpf_test_run+0x193 ([kernel.kallsyms])`).
fn symbol(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    words.next()?;
    let sym = words.next()?;
    Some(sym.split_once('+').map_or(sym, |(s, _)| s))
}

/// Per program: samples by kind, from `perf script`'s output.
pub fn attribute(script: &str) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
    let mut by_prog: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for sample in script.split("\n\n") {
        // The first line is the sample's header; the call chain follows,
        // innermost frame first.
        let frames: Vec<&str> = sample.lines().skip(1).filter_map(symbol).collect();
        // The innermost frame of an xnat program: a JITed program shows
        // twice (its entry calls the body, a BPF-to-BPF call), and the
        // first hit is the one doing the work.
        let Some((at, name)) = frames
            .iter()
            .enumerate()
            .find_map(|(i, f)| program(f).map(|n| (i, n)))
        else {
            continue;
        };
        let k = if at == 0 {
            "body"
        } else {
            kind(frames[at - 1])
        };
        *by_prog
            .entry(name.to_owned())
            .or_default()
            .entry(k)
            .or_default() += 1;
    }
    by_prog
}

/// Runs `bench_bin --established-only` under `perf record` and returns,
/// per program, its samples and the share of each kind of work; `Ok(None)`
/// with the reason when perf is not there or cannot sample.
pub fn run(bench_bin: &Path, tmp: &Path) -> Result<std::result::Result<Value, String>> {
    if util::find_in_path("perf").is_none() {
        return Ok(Err("perf is not installed (Debian: linux-perf)".into()));
    }
    let data = tmp.join("perf.data");
    let out = tmp.join("profile.json");
    let status = Command::new("perf")
        .args(["record", "-q", "-g", "-F", "4999", "-o"])
        .arg(&data)
        .arg("--")
        .arg(bench_bin)
        .args([
            "--established-only",
            "--runs",
            "3",
            "--repeat",
            "2000000",
            "--out",
        ])
        .arg(&out)
        .status()
        .context("running perf record")?;
    if !status.success() {
        return Ok(Err(format!("perf record failed ({status})")));
    }
    let script = Command::new("perf")
        .args(["script", "-i"])
        .arg(&data)
        .output()
        .context("running perf script")?;
    if !script.status.success() {
        bail!(
            "perf script failed: {}",
            String::from_utf8_lossy(&script.stderr)
        );
    }
    let by_prog = attribute(&String::from_utf8_lossy(&script.stdout));
    let _ = fs::remove_file(&data);
    if by_prog.is_empty() {
        return Ok(Err(
            "perf saw no sample inside a BPF program (no JIT symbols: is \
             net.core.bpf_jit_kallsyms 0?)"
                .into(),
        ));
    }
    let programs: serde_json::Map<String, Value> = by_prog
        .into_iter()
        .map(|(name, kinds)| {
            let total: u64 = kinds.values().sum();
            let shares: serde_json::Map<String, Value> = KINDS
                .iter()
                .map(|(k, _)| {
                    let n = kinds.get(k).copied().unwrap_or(0);
                    (k.to_string(), json!(n as f64 / total as f64))
                })
                .collect();
            (name, json!({"samples": total, "shares": shares}))
        })
        .collect();
    Ok(Ok(json!({
        "kinds": KINDS.iter().map(|(k, what)| json!({"kind": k, "what": what})).collect::<Vec<_>>(),
        "programs": programs,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_go_to_the_innermost_program_and_what_it_called() {
        let script = "\
xnat-bench 1 1.0: 250000 cpu-clock:pppH:
\tffffffff81e97920 skb_ensure_writable+0x0 ([kernel.kallsyms])
\tffffffff81eeba3d bpf_l4_csum_replace+0x3d ([kernel.kallsyms])
\tffffffffc0038f96 bpf_prog_14ab59493c760c3b_xnat_egress_tc+0x47ca (bpf_prog_14ab59493c760c3b_xnat_egress_tc)
\tffffffffc003478e bpf_prog_6acaf5d0c1e5ef7f_xnat_egress_tc+0x3e (bpf_prog_6acaf5d0c1e5ef7f_xnat_egress_tc)
\tffffffff81f5f4c1 bpf_test_run+0x231 ([kernel.kallsyms])

xnat-bench 1 1.1: 250000 cpu-clock:pppH:
\tffffffffc0038f96 bpf_prog_14ab59493c760c3b_xnat_egress_tc+0x40 (bpf_prog_14ab59493c760c3b_xnat_egress_tc)
\tffffffff81f5f4c1 bpf_test_run+0x231 ([kernel.kallsyms])

xnat-bench 1 1.2: 250000 cpu-clock:pppH:
\tffffffff81000001 htab_map_hash+0x10 ([kernel.kallsyms])
\tffffffff81000002 __htab_map_lookup_elem+0x20 ([kernel.kallsyms])
\tffffffffc0000001 bpf_prog_61d5cd5ea3a0a088_xnat_baseline_xdp+0x40 (bpf_prog_61d5cd5ea3a0a088_xnat_baseline_xdp)

xnat-bench 1 1.3: 250000 cpu-clock:pppH:
\tffffffffc0000009 bpf_prog_4f9302ba65b90ccd_memset+0x8 (bpf_prog_4f9302ba65b90ccd_memset)
\tffffffffc0038f96 bpf_prog_14ab59493c760c3b_xnat_egress_tc+0x4 (bpf_prog_14ab59493c760c3b_xnat_egress_tc)

xnat-bench 1 1.4: 250000 cpu-clock:pppH:
\tffffffff81f5f423 bpf_test_run+0x193 ([kernel.kallsyms])
";
        let a = attribute(script);
        assert_eq!(a.len(), 2);
        let egress = &a["xnat_egress_tc"];
        assert_eq!(egress.get("csum"), Some(&1));
        assert_eq!(egress.get("body"), Some(&1));
        assert_eq!(egress.get("subprog"), Some(&1));
        assert_eq!(a["xnat_baseline_xdp"].get("hash"), Some(&1));
    }
}
