//! Cases measured in interleaved rounds: every round runs every case once
//! (in an order rotating from round to round),
//! so slow phases of a noisy machine hit all cases alike, and each case's
//! ratio to the no-op is taken within the round.

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use super::{
    instance::Prog,
    measure::{Sample, median},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// One syscall, `repeat` iterations.
    Repeat,
    /// One syscall per packet (overhead-corrected against the no-op loop).
    Loop,
}

pub type Runner<'a> = Box<dyn FnMut() -> Result<Sample> + 'a>;

pub struct Case<'a> {
    pub id: String,
    pub label: String,
    pub prog: Prog,
    pub method: Method,
    pub bindings: u32,
    run: Runner<'a>,
    samples: Vec<Sample>,
}

impl<'a> Case<'a> {
    pub fn new(
        id: impl Into<String>,
        label: impl Into<String>,
        prog: Prog,
        method: Method,
        bindings: u32,
        run: Runner<'a>,
    ) -> Self {
        Case {
            id: id.into(),
            label: label.into(),
            prog,
            method,
            bindings,
            run,
            samples: Vec::new(),
        }
    }
}

/// The ids of the two baselines every suite must contain.
pub const NOOP: &str = "noop";
pub const NOOP_LOOP: &str = "noop_loop";

/// Runs `rounds` rounds over `cases` and returns one JSON object per case
/// (the baselines included).
pub fn run(name: &str, rounds: usize, cases: &mut [Case<'_>]) -> Result<Vec<Value>> {
    let n = cases.len();
    for r in 0..rounds {
        eprint!("xnat-bench: {name}: round {}/{rounds}", r + 1);
        // A rotating order, so no case always runs first in a round (right
        // after another case's table fill, say) or last.
        for k in 0..n {
            let c = &mut cases[(k + r) % n];
            let s = (c.run)().with_context(|| format!("{name}: {}", c.id))?;
            c.samples.push(s);
        }
        eprintln!();
    }
    let find = |id: &str| -> Vec<Sample> {
        cases
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.samples.clone())
            .unwrap_or_default()
    };
    let noop = find(NOOP);
    let noop_loop = find(NOOP_LOOP);
    anyhow::ensure!(
        noop.len() == rounds && noop_loop.len() == rounds,
        "{name}: the suite lacks its no-op baselines"
    );
    let mut out = Vec::new();
    for c in cases.iter() {
        let per_round: Vec<f64> = c
            .samples
            .iter()
            .enumerate()
            .map(|(r, s)| match c.method {
                Method::Repeat => s.ns,
                // Remove the per-call timer cost measured with the no-op in
                // the same round, add back the no-op's own cost.
                Method::Loop => s.ns - noop_loop[r].ns + noop[r].ns,
            })
            .collect();
        let ratios: Vec<f64> = per_round
            .iter()
            .zip(&noop)
            .map(|(ns, n)| ns / n.ns)
            .collect();
        let raw: Vec<f64> = c.samples.iter().map(|s| s.ns).collect();
        let kernel: Vec<f64> = c.samples.iter().map(|s| s.kernel_ns).collect();
        out.push(json!({
            "id": c.id,
            "label": c.label,
            "prog": c.prog.name(),
            "method": match c.method { Method::Repeat => "repeat", Method::Loop => "loop" },
            "bindings": c.bindings,
            "ns": median(&per_round),
            "ratio": median(&ratios),
            "raw_ns": median(&raw),
            "kernel_ns": median(&kernel),
            "samples_ns": per_round,
        }));
    }
    Ok(out)
}
