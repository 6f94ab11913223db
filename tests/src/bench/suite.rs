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
    /// The id of the case this one is also judged against, in the same
    /// rounds (the minimal NAT of the same hook and flow).
    pub against: Option<String>,
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
            against: None,
            run,
            samples: Vec::new(),
        }
    }

    /// Also reports this case's cost as × case `id`'s, round by round.
    pub fn against(mut self, id: impl Into<String>) -> Self {
        self.against = Some(id.into());
        self
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
    // ns per packet, round by round, of every case.
    let all_rounds: Vec<Vec<f64>> = cases
        .iter()
        .map(|c| {
            c.samples
                .iter()
                .enumerate()
                .map(|(r, s)| match c.method {
                    Method::Repeat => s.ns,
                    // Remove the per-call timer cost measured with the no-op
                    // in the same round, add back the no-op's own cost.
                    Method::Loop => s.ns - noop_loop[r].ns + noop[r].ns,
                })
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let per_round = &all_rounds[i];
        let against = match &c.against {
            None => Value::Null,
            Some(id) => {
                let j = cases.iter().position(|b| &b.id == id).with_context(|| {
                    format!("{name}: {} is judged against {id}, not in the suite", c.id)
                })?;
                let ratios: Vec<f64> = per_round
                    .iter()
                    .zip(&all_rounds[j])
                    .map(|(ns, b)| ns / b)
                    .collect();
                json!({ "id": id, "ratio": median(&ratios) })
            }
        };
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
            "ns": median(per_round),
            "ratio": median(&ratios),
            "raw_ns": median(&raw),
            "kernel_ns": median(&kernel),
            "samples_ns": per_round,
            "against": against,
        }));
    }
    Ok(out)
}
