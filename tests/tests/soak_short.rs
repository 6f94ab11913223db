//! A short soak (issue 6) for CI: about a minute of flows opening and
//! closing through xnat with short timeouts (see `xnat_tests::soak`; the
//! long one is `cargo xtask soak --minutes M`).

use std::time::Duration;

use xnat_tests::soak::{Options, run};
use xnat_tests::topology::Ingress;

/// Promise: under a minute of churn (about 100 UDP flows and 20 TCP
/// connections a second, far more than are live at once), flows work (at
/// most 1 in 1000 fails), every binding expires once the churn stops, and
/// the agent's RSS ends within 10 % of its level after the warm-up.
#[test]
fn soak_one_minute() {
    let report = run(&Options {
        duration: Duration::from_secs(60),
        mode: Ingress::Tc,
        tag: "soak".into(),
    });
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&report.to_json()).unwrap()
    );
    assert!(report.problems.is_empty(), "soak: {:#?}", report.problems);
}
