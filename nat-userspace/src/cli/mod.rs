//! Command line: one module per verb, clap's derive API.
//!
//! Exit codes: 0 success, 1 the command failed, 2 the command line is wrong.
mod addr;
mod attach;
mod detach;
mod flows;
mod forward;
mod map;
mod stats;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "xnat",
    version,
    about = "eBPF NAT44 (static 1:1 NAT and NAPT) in XDP/TC, driven like ip(8)",
    propagate_version = true
)]
pub struct Cli {
    /// Interface whose attachment a verb works on (default: the only one
    /// attached in this network namespace).
    #[arg(short = 'i', long = "iface", global = true, value_name = "IFACE")]
    pub iface: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load xnat onto IFACE and run the agent in the foreground.
    Attach(attach::Args),
    /// Detach xnat from IFACE and remove its pinned state.
    Detach(detach::Args),
    /// Static 1:1 mappings: add, del, list.
    #[command(subcommand)]
    Map(map::MapCommand),
    /// Port forwards: add, del, list.
    #[command(subcommand)]
    Forward(forward::ForwardCommand),
    /// Live NAPT sessions, like `conntrack -L`.
    Flows(flows::Args),
    /// Packet counters, drops by reason and NAPT table use.
    Stats(stats::Args),
    /// Interfaces xnat is attached to in this network namespace.
    Status(status::Args),
}

/// Parses argv; on a usage error prints one line naming the problem and
/// returns exit code 2 (help and version go to stdout with code 0).
pub fn parse() -> Result<Cli, ExitCode> {
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || matches!(
                    e.kind(),
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                )
            {
                let _ = e.print();
                return Err(ExitCode::from(if e.exit_code() == 0 { 0 } else { 2 }));
            }
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid command line");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("xnat: {first} (see `xnat --help`)");
            Err(ExitCode::from(2))
        }
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let iface = cli.iface.as_deref();
    match cli.command {
        Command::Attach(a) => attach::run(a),
        Command::Detach(a) => detach::run(a, iface),
        Command::Map(m) => map::run(m, iface),
        Command::Forward(f) => forward::run(f, iface),
        Command::Flows(a) => flows::run(a, iface),
        Command::Stats(a) => stats::run(a, iface),
        Command::Status(a) => status::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("xnat").chain(args.iter().copied()))
    }

    #[test]
    fn attach_with_maps_parses() {
        let cli = parse_args(&[
            "attach",
            "eth0",
            "--map",
            "10.0.0.2=203.0.113.1",
            "--map",
            "10.0.0.3=203.0.113.2",
            "--ingress",
            "tc",
        ])
        .unwrap();
        let Command::Attach(a) = cli.command else {
            panic!("not attach")
        };
        assert_eq!(a.iface, "eth0");
        assert_eq!(a.maps.len(), 2);
        assert_eq!(a.maps[1].private.to_string(), "10.0.0.3");
    }

    #[test]
    fn bad_map_names_the_bad_address() {
        let e = parse_args(&["attach", "eth0", "--map", "10.0.0.300=1.2.3.4"]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("'10.0.0.300' is not an IPv4 address"),
            "{text}"
        );
        let e = parse_args(&["attach", "eth0", "--map", "10.0.0.3"]).unwrap_err();
        assert!(e.to_string().contains("expected PRIVATE=PUBLIC"), "{e}");
    }

    #[test]
    fn bad_ingress_mode_is_rejected() {
        assert!(parse_args(&["attach", "eth0", "--ingress", "fast"]).is_err());
    }

    #[test]
    fn iface_is_global() {
        let cli = parse_args(&["map", "list", "-i", "ext0", "--json"]).unwrap();
        assert_eq!(cli.iface.as_deref(), Some("ext0"));
        let cli = parse_args(&["-i", "ext0", "map", "add", "10.0.0.4", "203.0.113.3"]).unwrap();
        assert_eq!(cli.iface.as_deref(), Some("ext0"));
    }

    #[test]
    fn map_add_rejects_bad_address() {
        let e = parse_args(&["map", "add", "10.0.0.4", "203.0.113"]).unwrap_err();
        assert!(e.to_string().contains("203.0.113"), "{e}");
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
