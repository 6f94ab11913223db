//! Fault: bpffs not mounted while nothing is attached (issue 6), in network
//! namespaces (root).
//!
//! Unmounting the host's /sys/fs/bpf would pull the pins (and with them the
//! attachments) out from under every other xnat on the machine, so the test
//! unmounts it in a private mount namespace of its own (`unshare --mount`,
//! held by a `sleep` child) and runs every xnat command of the scenario in
//! that mount namespace and the gateway's network namespace. The mount
//! namespace, and the bpffs xnat mounts in it, go away with the holder.

use std::path::Path;
use std::process::{Command, Output};

use xnat_tests::agent::{Agent, Xnat};
use xnat_tests::fault_topo::FaultTopo;
use xnat_tests::napt_topo::{HOST_A, POOL, SRV1, sa, udp_bind, udp_deliver};
use xnat_tests::netns::{BgChild, CMD_TIMEOUT, describe, run_cmd, run_cmd_ok, xnat_bin};
use xnat_tests::topology::{Ingress, attached, pins_for};
use xnat_tests::wait::{SOON, wait_until};

/// A private mount namespace, alive as long as its holder process.
struct MountNs {
    holder: BgChild,
}

impl MountNs {
    fn new() -> MountNs {
        let mut holder = BgChild::spawn(
            "unshare --mount sleep",
            Command::new("unshare").args(["--mount", "--propagation", "private", "sleep", "600"]),
        );
        let ours = std::fs::read_link("/proc/self/ns/mnt").unwrap();
        let pid = holder.pid();
        wait_until(SOON, "unshare to enter its mount namespace", || {
            if let Some(s) = holder.try_exit() {
                panic!("unshare exited ({}): {}", describe(s), holder.stderr());
            }
            std::fs::read_link(format!("/proc/{pid}/ns/mnt")).is_ok_and(|m| m != ours)
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
        });
        MountNs { holder }
    }

    /// `nsenter` into this mount namespace and network namespace `net`.
    fn cmd(&self, net: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--mount=/proc/{}/ns/mnt", self.holder.pid()))
            .arg(format!("--net={}", net.display()))
            .arg("--")
            .args(args);
        c
    }

    /// The filesystem type at /sys/fs/bpf in this mount namespace.
    fn fs_type(&self, net: &Path) -> String {
        run_cmd_ok(
            &mut self.cmd(net, &["stat", "-f", "-c", "%T", "/sys/fs/bpf"]),
            CMD_TIMEOUT,
        )
        .trim()
        .to_string()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

mod bpffs_unmounted_while_detached {
    #[test]
    fn tc() {
        super::bpffs_unmounted_while_detached("bpfs", xnat_tests::topology::Ingress::Tc);
    }
}

/// Promise: with no bpffs at /sys/fs/bpf, the verbs that read pins say
/// cleanly that nothing is attached (exit 3; `status` lists nothing) and
/// mount nothing; `xnat
/// attach` mounts bpffs there itself (mode 0700, as bpftool does) and says
/// so, pins its state in it and translates; SIGTERM detaches and removes
/// the pins as usual.
fn bpffs_unmounted_while_detached(tag: &str, mode: Ingress) {
    let f = FaultTopo::new(tag, mode);
    let net = f.t.nat.path();
    let m = MountNs::new();
    if m.fs_type(&net) == "bpf_fs" {
        run_cmd_ok(&mut m.cmd(&net, &["umount", "/sys/fs/bpf"]), CMD_TIMEOUT);
    }
    assert_ne!(m.fs_type(&net), "bpf_fs", "bpffs still mounted");
    let bin = xnat_bin();
    let bin = bin.to_str().unwrap();
    let run = |args: &[&str]| -> Output {
        let mut v = vec![bin];
        v.extend_from_slice(args);
        run_cmd(&mut m.cmd(&net, &v), CMD_TIMEOUT)
    };

    // `status` lists nothing, as it does with bpffs mounted.
    let out = run(&["status"]);
    assert!(
        out.status.success() && text(&out.stdout).contains("not attached to any interface"),
        "`xnat status` without bpffs ({}): {}{}",
        describe(out.status),
        text(&out.stdout),
        text(&out.stderr)
    );
    for args in [
        vec!["stats", "-i", &f.t.ext],
        vec!["flows", "-i", &f.t.ext],
        vec!["detach", &f.t.ext],
    ] {
        let out = run(&args);
        assert_eq!(
            out.status.code(),
            Some(3),
            "`xnat {}` without bpffs ({}): {}{}",
            args.join(" "),
            describe(out.status),
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            !text(&out.stderr).contains("panicked"),
            "{}",
            text(&out.stderr)
        );
    }
    assert_ne!(m.fs_type(&net), "bpf_fs", "a read-only verb mounted bpffs");

    let ext = f.t.ext.clone();
    let mut agent = Agent::spawn_cmd(
        "xnat attach (private mount namespace)",
        &mut m.cmd(
            &net,
            &[
                bin,
                "attach",
                &ext,
                "--ingress",
                mode.as_str(),
                "--pool",
                "198.51.100.1",
                "--internal",
                "10.0.0.0/8",
            ],
        ),
        Xnat::new(&f.t.nat, &ext),
    );
    agent.wait_ready();
    assert!(
        agent.stderr().contains("mounted bpffs at /sys/fs/bpf"),
        "attach did not say it mounted bpffs:\n{}",
        agent.stderr()
    );
    assert_eq!(m.fs_type(&net), "bpf_fs");
    let mode_of = run_cmd_ok(
        &mut m.cmd(&net, &["stat", "-c", "%a", "/sys/fs/bpf"]),
        CMD_TIMEOUT,
    );
    // bpffs sets the sticky bit on its root itself; the rest is xnat's.
    let bits = u32::from_str_radix(mode_of.trim(), 8).expect("octal mode");
    assert_eq!(
        bits & 0o777,
        0o700,
        "mode of the bpffs xnat mounted: {mode_of}"
    );
    // The pins live in the private bpffs, not in the host's.
    assert!(
        pins_for(&ext).is_empty(),
        "pins appeared in the host's bpffs"
    );
    let listing = run_cmd_ok(&mut m.cmd(&net, &["ls", "/sys/fs/bpf/xnat"]), CMD_TIMEOUT);
    assert!(listing.contains(&ext), "no pin directory: {listing}");

    let srv = udp_bind(&f.t.srv, sa(SRV1, 7000));
    let inside = udp_bind(&f.t.a, sa(HOST_A, 40000));
    let public = udp_deliver(&inside, sa(SRV1, 7000), &srv, b"through a fresh bpffs");
    assert_eq!(public, sa(POOL[0], 40000));
    let out = run(&["stats", "-i", &ext, "--json"]);
    assert!(out.status.success(), "stats: {}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
    assert_eq!(v["napt"]["mappings"], 1, "{v}");

    agent.stop();
    let a = attached(&f.t.nat, &ext);
    assert!(a.is_empty(), "programs left:\n{}", a.raw);
    let listing = run_cmd_ok(
        &mut m.cmd(&net, &["ls", "-A", "/sys/fs/bpf/xnat"]),
        CMD_TIMEOUT,
    );
    assert!(!listing.contains(&ext), "pins left: {listing}");
}
