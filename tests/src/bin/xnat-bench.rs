//! `xnat-bench`: measures xnat's BPF programs through BPF_PROG_TEST_RUN
//! (per-packet cost, scale to a million bindings, map memory, the expiry
//! sweep). Run it through `cargo xtask bench`, which also measures traffic
//! end to end and writes BENCHMARKS.md.

#[path = "../bench/mod.rs"]
mod bench;

fn main() {
    if let Err(err) = bench::run() {
        eprintln!("xnat-bench: error: {err:#}");
        std::process::exit(1);
    }
}
