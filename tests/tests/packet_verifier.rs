//! The verifier's budget. The kernel refuses a program whose verification
//! processes more than 1,000,000 instructions, and xnat's biggest program
//! (`xnat_egress_tc`, every stage inlined into one program per hook) uses
//! some 70 % of it:
//! a change that grows one past the limit makes `xnat attach` fail with a
//! verifier log and nothing else. This loads every XDP and TC program of
//! the object, prints the instructions the verifier processed for each
//! (`bpf_prog_info.verified_insns`) and fails once one passes 95 % of the
//! limit, naming it — while there is still room to split it.

use xnat_tests::bpf::require_root;

/// The kernel's BPF_COMPLEXITY_LIMIT_INSNS.
const LIMIT: u32 = 1_000_000;
/// Where this test calls time: 95 % of the limit.
const BUDGET: u32 = LIMIT / 100 * 95;

#[test]
fn every_program_verifies_within_budget() {
    require_root();
    let mut ebpf = aya::EbpfLoader::new()
        .load(nat_userspace::ebpf_object())
        .expect("loading xnat's object");
    let mut counts = Vec::new();
    for (name, prog) in ebpf.programs_mut() {
        let loaded = match prog {
            aya::programs::Program::Xdp(p) => p.load().map(|()| p.info()),
            aya::programs::Program::SchedClassifier(p) => p.load().map(|()| p.info()),
            // The expiry walk is a syscall program the agent loads itself.
            _ => continue,
        };
        let info = loaded
            .unwrap_or_else(|e| panic!("{name} does not load: {e}"))
            .unwrap_or_else(|e| panic!("{name}: reading its info: {e}"));
        let n = info
            .verified_instruction_count()
            .unwrap_or_else(|| panic!("{name}: the kernel reports no verified instruction count"));
        counts.push((name.to_string(), n));
    }
    counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    for (name, n) in &counts {
        println!(
            "{name:<28} {n:>9} instructions verified ({:.1} % of the limit)",
            f64::from(*n) * 100.0 / f64::from(LIMIT)
        );
    }
    assert!(
        counts.len() >= 5,
        "expected the external, inside and fast-path programs, got {counts:?}"
    );
    let over: Vec<_> = counts.iter().filter(|(_, n)| *n > BUDGET).collect();
    assert!(
        over.is_empty(),
        "over {BUDGET} of the verifier's {LIMIT} instructions: {over:?} — split the program \
         (tail call or a subprogram the verifier checks once) before it stops loading"
    );
}
