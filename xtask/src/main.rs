//! `cargo xtask`: the project's build, test and demo driver.
//!
//! Everything that needs more than a plain `cargo` invocation lives here: installing the nightly
//! pieces and `bpf-linker` the BPF crate needs, the system tools the end-to-end tests use, mounting
//! bpffs, and the root-only test and demo runs.

mod bench;
mod build;
mod demo;
mod dist;
mod fuzz;
mod netns;
mod proc;
mod soak;
mod test;
mod toolchain;
mod tools;
mod util;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, test and demo xnat")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the whole workspace (installs nightly rust-src and bpf-linker if missing).
    Build {
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Run every test, including the root-only packet and network-namespace tests.
    ///
    /// Arguments after `--` are passed to `cargo test`, e.g.
    /// `cargo xtask test -- -p xnat-tests -- --nocapture`.
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cargo_args: Vec<String>,
    },
    /// Build a release tarball under target/dist: the xnat binary, man pages and shell
    /// completions generated from its command line, contrib/xnat.service and an example config.
    Dist,
    /// Measure xnat (needs root): BPF_PROG_TEST_RUN per-packet cost and scale, end to end
    /// against nftables masquerade and plain forwarding, an outside SYN flood while inside
    /// hosts open flows, and the failover of an active/standby pair. Prints a table and writes
    /// BENCHMARKS.md.
    Bench {
        /// Fewer, shorter runs and no 1M-binding scale (a smoke test of the suite).
        #[arg(long)]
        quick: bool,
        /// Run only one part of the suite (each updates only its own parts of BENCHMARKS.md).
        #[arg(long, default_value = "all", value_parser = ["all", "micro", "e2e", "flood", "failover", "nat64"])]
        only: String,
        /// Rounds of the end-to-end measurements (default 7, 2 with --quick) and of the NAT64
        /// ones (default 5, 2 with --quick).
        #[arg(long)]
        rounds: Option<usize>,
        /// End-to-end modes to run, comma-separated (plain, nft, xnat, xnat_fast,
        /// xnat_fast_tc, xdp_redirect); default all. Targets comparing with a mode left out
        /// are n/a.
        #[arg(long, value_delimiter = ',')]
        modes: Vec<String>,
        /// Write the report here instead of BENCHMARKS.md at the workspace root.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// Churn flows through xnat for M minutes (needs root): bindings must drain to zero after
    /// expiry and the agent's memory return to within 10% of its post-warm-up level.
    Soak {
        /// How long to churn, in minutes (fractions allowed).
        #[arg(long)]
        minutes: f64,
        /// Ingress mode passed to `xnat attach --ingress`.
        #[arg(long, default_value = "tc", value_parser = ["tc", "xdp"])]
        ingress: String,
        /// Build and run with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Differential fuzzing (needs root): seeded frames through the compiled programs by
    /// BPF_PROG_TEST_RUN, compared with the reference model byte for byte, map entry by map entry.
    Fuzz {
        /// Frames to generate and compare.
        #[arg(long, default_value_t = 1_000_000)]
        packets: u64,
        /// Seed of the frame generator (the same seed generates the same frames).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Stop after this many mismatches.
        #[arg(long, default_value_t = 10)]
        max_mismatches: usize,
        /// List which translation rules the frames exercised.
        #[arg(long)]
        paths: bool,
        /// Also run the agent's code (expiry sweep, flows flush, reload) on the same maps,
        /// between frames at points the seed picks; the maps it leaves must be the model's.
        #[arg(long, conflicts_with = "concurrent")]
        interleaved: bool,
        /// Also run the agent's code on the same maps in a thread of its own, alongside frames;
        /// each such frame must match "operation first" or "frame first", or the run names the
        /// race.
        #[arg(long)]
        concurrent: bool,
    },
    /// Build xnat, put it between a private and a public network namespace and show real traffic
    /// being translated.
    Demo {
        /// Ingress mode passed to `xnat attach --ingress`.
        #[arg(long, default_value = "auto", value_parser = ["auto", "xdp", "tc"])]
        ingress: String,
        /// Instead: an active/standby pair of gateways (keepalived VRRP, BIRD BGP with BFD) whose
        /// active one dies while TCP and UDP streams run through it.
        #[arg(long, conflicts_with = "ingress")]
        ha: bool,
        /// With --ha: no binding sync between the gateways (deterministic allocation alone
        /// recreates the mappings; no TCP download then).
        #[arg(long, requires = "ha")]
        no_sync: bool,
    },
}

fn main() {
    // Before any thread exists, so changing the process environment is sound.
    util::setup_path();

    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build { release } => build::run(release),
        Command::Test { cargo_args } => test::run(&cargo_args),
        Command::Demo {
            ingress, ha: false, ..
        } => demo::run(&ingress),
        Command::Demo { no_sync, .. } => demo::run_ha(no_sync),
        Command::Bench {
            quick,
            only,
            rounds,
            modes,
            output,
        } => bench::run(&bench::Options {
            quick,
            only,
            rounds,
            modes,
            output,
        }),
        Command::Dist => dist::run(),
        Command::Fuzz {
            packets,
            seed,
            max_mismatches,
            paths,
            interleaved,
            concurrent,
        } => fuzz::run(&fuzz::Options {
            packets,
            seed,
            max_mismatches,
            paths,
            interleaved,
            concurrent,
        }),
        Command::Soak {
            minutes,
            ingress,
            release,
        } => soak::run(&soak::Options {
            minutes,
            ingress,
            release,
        }),
    };
    if let Err(err) = result {
        eprintln!("xtask: error: {err:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_args(argv: &[&str]) -> Vec<String> {
        let cli = Cli::try_parse_from(argv).expect("parses");
        match cli.command {
            Command::Test { cargo_args } => cargo_args,
            _ => panic!("not the test command"),
        }
    }

    #[test]
    fn test_passes_arguments_to_cargo_test() {
        assert!(test_args(&["xtask", "test"]).is_empty());
        assert_eq!(
            test_args(&[
                "xtask",
                "test",
                "--",
                "-p",
                "xnat-tests",
                "--",
                "--nocapture"
            ]),
            ["-p", "xnat-tests", "--", "--nocapture"]
        );
        assert_eq!(
            test_args(&["xtask", "test", "-p", "xnat-tests", "--", "--nocapture"]),
            ["-p", "xnat-tests", "--", "--nocapture"]
        );
    }

    #[test]
    fn demo_ha_is_an_option_of_the_demo() {
        let ha = |argv: &[&str]| match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Demo { ha, no_sync, .. }) => Some((ha, no_sync)),
            _ => None,
        };
        assert_eq!(ha(&["xtask", "demo"]), Some((false, false)));
        assert_eq!(ha(&["xtask", "demo", "--ha"]), Some((true, false)));
        assert_eq!(
            ha(&["xtask", "demo", "--ha", "--no-sync"]),
            Some((true, true))
        );
        assert_eq!(ha(&["xtask", "demo", "--no-sync"]), None);
        assert_eq!(ha(&["xtask", "demo", "--ha", "--ingress", "xdp"]), None);
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
