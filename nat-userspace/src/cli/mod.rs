//! Command line: one module per verb, clap's derive API.
//!
//! Exit codes: 0 success, 1 the command failed, 2 the command line is
//! wrong, 3 the interface has no xnat attached.
mod addr;
mod attach;
mod check;
mod detach;
mod flows;
mod forward;
mod generate;
mod lookup;
mod map;
mod reload;
mod stats;
mod status;
mod trace;

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
    /// Which inside endpoint holds a public endpoint, now or at a past time.
    Lookup(lookup::Args),
    /// Packet counters, drops by reason and NAPT table use.
    Stats(stats::Args),
    /// Interfaces xnat is attached to in this network namespace; with
    /// --check IFACE, whether IFACE's attachment is healthy (exit 0 or 1).
    Status(status::Args),
    /// What the programs do with matching packets, live: translated to
    /// what, passed or dropped and why.
    Trace(trace::Args),
    /// Check a config file (and flags) as `attach` would, without attaching.
    Check(attach::Args),
    /// Make the running agent re-read its config file and apply the
    /// difference (like SIGHUP); waits for its answer.
    Reload(reload::Args),
    /// Print a shell completion script.
    Completions(generate::CompletionArgs),
    /// Write man pages into a directory.
    #[command(hide = true)]
    Man(generate::ManArgs),
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
        Command::Lookup(a) => lookup::run(a, iface),
        Command::Stats(a) => stats::run(a, iface),
        Command::Status(a) => status::run(a),
        Command::Trace(a) => trace::run(a, iface),
        Command::Check(a) => check::run(a),
        Command::Reload(a) => reload::run(a, iface),
        Command::Completions(a) => generate::completions(a),
        Command::Man(a) => generate::man(a),
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
        assert_eq!(a.iface.as_deref(), Some("eth0"));
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
    fn tcp_pickup_flag() {
        use nat_userspace::settings::napt::TcpPickup;
        let cli = parse_args(&["attach", "eth0", "--tcp-pickup", "off"]).unwrap();
        let Command::Attach(a) = cli.command else {
            panic!("not attach")
        };
        let t = a.layer().tcp_pickup.unwrap();
        assert_eq!(
            (t.value, t.origin.0.as_str()),
            (TcpPickup::Off, "--tcp-pickup")
        );
        let cli = parse_args(&["attach", "eth0"]).unwrap();
        let Command::Attach(a) = cli.command else {
            panic!("not attach")
        };
        assert!(a.layer().tcp_pickup.is_none());
        let e = parse_args(&["attach", "eth0", "--tcp-pickup", "loose"]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("invalid value 'loose' for '--tcp-pickup <TCP_PICKUP>'")
                && text.contains("[possible values: on, off]"),
            "{text}"
        );
    }

    /// `--nat64` alone is the well-known prefix; with a value, that prefix
    /// (checked as RFC 6052 asks); `--nat64-map` repeats; each value's
    /// origin is its flag.
    #[test]
    fn nat64_flags() {
        use nat_userspace::settings::nat64::Nat64Prefix;
        let layer = |args: &[&str]| {
            let Command::Attach(a) = parse_args(args).unwrap().command else {
                panic!("not attach")
            };
            a.layer()
        };
        let l = layer(&[
            "attach",
            "eth0",
            "--masquerade",
            "--inside",
            "eth1",
            "--nat64",
        ]);
        let p = l.nat64.unwrap();
        assert_eq!(
            (p.value, p.origin.0.as_str()),
            (Nat64Prefix::WELL_KNOWN, "--nat64")
        );
        assert!(l.nat64_maps.is_none());
        let l = layer(&[
            "attach",
            "eth0",
            "--nat64",
            "2001:db8:64::/64",
            "--nat64-map",
            "2001:db8::10=203.0.113.10",
            "--nat64-map",
            "2001:db8::11=203.0.113.11",
        ]);
        assert_eq!(l.nat64.unwrap().value.to_string(), "2001:db8:64::/64");
        let maps = l.nat64_maps.unwrap();
        assert_eq!(maps.len(), 2);
        assert_eq!(maps[1].origin.0, "--nat64-map 2001:db8::11=203.0.113.11");
        assert!(layer(&["attach", "eth0"]).nat64.is_none());
        let e = parse_args(&["attach", "eth0", "--nat64", "64:ff9b::/80"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("64:ff9b::/80: the prefix length must be 32, 40, 48, 56, 64 or 96"),
            "{e}"
        );
        let e = parse_args(&["attach", "eth0", "--nat64-map", "2001:db8::10"]).unwrap_err();
        assert!(e.to_string().contains("expected IPV6=IPV4"), "{e}");
        // The host prefix: a length (its range is the settings' check).
        let l = layer(&["attach", "eth0", "--nat64", "--nat64-host-prefix", "56"]);
        let h = l.nat64_host_prefix.unwrap();
        assert_eq!((h.value, h.origin.0.as_str()), (56, "--nat64-host-prefix"));
        assert!(
            layer(&["attach", "eth0", "--nat64"])
                .nat64_host_prefix
                .is_none()
        );
        let e = parse_args(&["attach", "eth0", "--nat64-host-prefix", "/64"]).unwrap_err();
        assert!(e.to_string().contains("--nat64-host-prefix"), "{e}");
        // The inside filters take an IPv6 host.
        let Command::Flows(a) = parse_args(&["flows", "--inside", "2001:db8::5"])
            .unwrap()
            .command
        else {
            panic!("not flows")
        };
        assert_eq!(a.inside.unwrap().to_string(), "2001:db8::5");
        let e = parse_args(&["flows", "--inside", "2001:db8::5::"]).unwrap_err();
        assert!(
            e.to_string().contains("is not an IPv4 or IPv6 address"),
            "{e}"
        );
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
    fn flows_flush_takes_filters_and_listing_keeps_them() {
        let cli = parse_args(&[
            "flows", "flush", "--proto", "tcp", "--inside", "10.0.0.2", "--json",
        ])
        .unwrap();
        let Command::Flows(a) = cli.command else {
            panic!("not flows")
        };
        match a.action {
            Some(flows::Action::Flush {
                json,
                proto,
                inside,
            }) => {
                assert!(json);
                assert!(matches!(proto, Some(flows::ProtoFilter::Tcp)));
                assert_eq!(inside.unwrap().to_string(), "10.0.0.2");
            }
            None => panic!("no flush"),
        }
        let cli = parse_args(&["flows", "--json", "--proto", "udp"]).unwrap();
        let Command::Flows(a) = cli.command else {
            panic!("not flows")
        };
        assert!(a.action.is_none() && a.json);
        assert!(parse_args(&["flows", "flush", "--proto", "sctp"]).is_err());
    }

    #[test]
    fn attach_takes_a_config_instead_of_an_interface() {
        let cli = parse_args(&[
            "attach",
            "--config",
            "/etc/xnat/xnat.toml",
            "--ports",
            "2000-3000",
        ])
        .unwrap();
        let Command::Attach(a) = cli.command else {
            panic!("not attach")
        };
        assert!(a.iface.is_none());
        let l = a.layer();
        assert_eq!(l.ports.unwrap().value.to_string(), "2000-3000");
        // Flags not given stay unset, so the file's values apply.
        assert!(l.filtering.is_none() && l.max_mappings.is_none() && l.keep.is_none());
        let e = parse_args(&["attach", "eth0", "--timeout", "udp=0"]).unwrap_err();
        assert!(e.to_string().contains("udp"), "{e}");
        let cli = parse_args(&["attach", "eth0", "--timeout", "udp=5,icmp=7"]).unwrap();
        let Command::Attach(a) = cli.command else {
            panic!("not attach")
        };
        let t = a.layer().timeouts;
        assert_eq!((t.udp.unwrap().value, t.icmp.unwrap().value), (5, 7));
        assert!(t.tcp_established.is_none());
    }

    #[test]
    fn check_reload_and_completions_parse() {
        assert!(matches!(
            parse_args(&["check", "--config", "x.toml"])
                .unwrap()
                .command,
            Command::Check(_)
        ));
        assert!(matches!(
            parse_args(&["reload", "-i", "eth0", "--wait", "3"])
                .unwrap()
                .command,
            Command::Reload(_)
        ));
        assert!(matches!(
            parse_args(&["completions", "zsh"]).unwrap().command,
            Command::Completions(_)
        ));
        assert!(parse_args(&["completions", "tcsh"]).is_err());
    }

    #[test]
    fn status_check_takes_an_interface() {
        let cli = parse_args(&["status", "--check", "eth0", "-q"]).unwrap();
        let Command::Status(a) = cli.command else {
            panic!("not status")
        };
        assert_eq!(a.check.as_deref(), Some("eth0"));
        assert!(a.quiet && !a.json);
        // No interface, -q alone, or --json with it: usage errors (exit 2).
        assert!(parse_args(&["status", "--check"]).is_err());
        assert!(parse_args(&["status", "-q"]).is_err());
        assert!(parse_args(&["status", "--check", "eth0", "--json"]).is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
