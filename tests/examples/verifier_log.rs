//! Loads every program of the compiled BPF object with the verifier's full
//! log and prints the log of any program the verifier rejects (the end of
//! it: the failing instruction and the register state that led there).
//! `cargo run -p xnat-tests --example verifier_log` (as root).

use aya::programs::{SchedClassifier, Xdp};
use aya::{EbpfLoader, VerifierLogLevel};

fn main() {
    let mut ebpf = EbpfLoader::new()
        .verifier_log_level(VerifierLogLevel::VERBOSE | VerifierLogLevel::STATS)
        .load(nat_userspace::ebpf_object())
        .expect("parsing the BPF object");
    let names: Vec<String> = ebpf.programs().map(|(n, _)| n.to_string()).collect();
    for name in names {
        let prog = ebpf.program_mut(&name).unwrap();
        let result = if let Ok(p) = TryInto::<&mut Xdp>::try_into(&mut *prog) {
            p.load().map_err(|e| format!("{e:?}"))
        } else if let Ok(p) = TryInto::<&mut SchedClassifier>::try_into(&mut *prog) {
            p.load().map_err(|e| format!("{e:?}"))
        } else {
            Ok(())
        };
        match result {
            Ok(()) => println!("{name}: ok"),
            Err(e) => {
                let tail: Vec<&str> = e.lines().collect();
                let from = tail.len().saturating_sub(60);
                println!("{name}: REJECTED\n{}", tail[from..].join("\n"));
            }
        }
    }
}
