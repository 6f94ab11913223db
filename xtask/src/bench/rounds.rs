//! Figures measured round by round, several gateway modes per round: each
//! mode's median, and the ratios between modes taken round by round (a
//! round's modes ran minutes apart at most, so the host's drifting
//! background load cancels out of their ratio) and then their median.

use serde_json::{Map, Value, json};

/// The median of the finite values of `v` (NaN if there are none).
pub(super) fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// One mode's figures: `samples[j]` holds figure `keys[j]` of every round.
pub(super) struct ModeSamples<'a> {
    pub key: &'a str,
    pub label: &'a str,
    pub samples: &'a [Vec<f64>],
}

/// Per mode `{label, KEY: median, KEY_samples: [...]}`, and per ordered pair
/// of modes `"a/b"` `{KEY: median of the rounds' ratios, KEY_rounds: [...]}`.
pub(super) fn summarise(
    keys: &[&str],
    modes: &[ModeSamples],
) -> (Map<String, Value>, Map<String, Value>) {
    let mut per_mode = Map::new();
    for m in modes {
        let mut o = Map::new();
        o.insert("label".into(), json!(m.label));
        for (j, k) in keys.iter().enumerate() {
            o.insert((*k).into(), json!(median(&m.samples[j])));
            o.insert(format!("{k}_samples"), json!(m.samples[j]));
        }
        per_mode.insert(m.key.into(), Value::Object(o));
    }
    let mut ratios = Map::new();
    for (a, ma) in modes.iter().enumerate() {
        for (b, mb) in modes.iter().enumerate() {
            if a == b {
                continue;
            }
            let mut r = Map::new();
            for (j, k) in keys.iter().enumerate() {
                let per_round: Vec<f64> = ma.samples[j]
                    .iter()
                    .zip(&mb.samples[j])
                    .map(|(x, y)| x / y)
                    .collect();
                r.insert((*k).into(), json!(median(&per_round)));
                r.insert(format!("{k}_rounds"), json!(per_round));
            }
            ratios.insert(format!("{}/{}", ma.key, mb.key), Value::Object(r));
        }
    }
    (per_mode, ratios)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_skip_what_was_not_measured() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, f64::NAN, 2.0, 3.0]), 2.5);
        assert!(median(&[f64::NAN]).is_nan());
    }

    #[test]
    fn ratios_are_taken_round_by_round() {
        let a = [vec![2.0, 4.0, 9.0]];
        let b = [vec![1.0, 8.0, 3.0]];
        let modes = [
            ModeSamples {
                key: "a",
                label: "A",
                samples: &a,
            },
            ModeSamples {
                key: "b",
                label: "B",
                samples: &b,
            },
        ];
        let (per_mode, ratios) = summarise(&["pps"], &modes);
        assert_eq!(per_mode["a"]["pps"], json!(4.0));
        assert_eq!(per_mode["b"]["label"], json!("B"));
        // Rounds: 2, 0.5, 3 -> median 2 (the ratio of the medians is 1).
        assert_eq!(ratios["a/b"]["pps"], json!(2.0));
        assert_eq!(ratios["a/b"]["pps_rounds"], json!([2.0, 0.5, 3.0]));
    }
}
