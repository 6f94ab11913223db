//! End-to-end tests of `xnat status --check IFACE`, the health check for
//! routing daemons (root): healthy while attached with a running agent;
//! unhealthy, with one line naming why, before the attach, when the agent
//! was SIGKILLed (programs still attached), when a program answers the
//! self-test frame with a drop, when a pinned link no longer runs on its
//! device, and after `xnat detach`; a bogus interface and a malformed
//! command line.
//!
//! Topology: `xnat_tests::topology` (cli — nat — rtr — srv) with a config
//! from `xnat_tests::daemon_topo` plus the inside interface int0, so the
//! inside program is self-tested too.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};
use std::path::Path;
use std::process::Output;

use nat_userspace::loader::{link, selftest};
use nat_userspace::tables::pins;
use xnat_tests::daemon_topo::DaemonTopo;
use xnat_tests::topology::{Ingress, error_lines};

/// `xnat status --check IFACE ARGS` in the gateway: (exit code, stdout,
/// stderr lines).
fn check(d: &DaemonTopo, iface: &str, args: &[&str]) -> (i32, String, Vec<String>) {
    let mut all = vec!["status", "--check", iface];
    all.extend_from_slice(args);
    let out: Output = d.xnat(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        error_lines(&out.stderr),
    )
}

/// Panics unless the check of EXT says healthy: exit 0, the one line.
fn assert_healthy(d: &DaemonTopo, when: &str) {
    let ext = d.ext();
    let (code, out, err) = check(d, ext, &[]);
    assert!(
        code == 0 && out == format!("{ext}: healthy\n") && err.is_empty(),
        "{when}: exit {code}, stdout {out:?}, stderr {err:?}"
    );
}

/// Panics unless the check of `iface` fails with exit 1 and exactly the
/// line `xnat: IFACE: WHY` (on stderr, nothing on stdout).
fn assert_unhealthy(d: &DaemonTopo, iface: &str, why: &str, when: &str) {
    let (code, out, err) = check(d, iface, &[]);
    let line = format!("xnat: {iface}: {why}");
    assert!(
        code == 1 && out.is_empty() && err == [line.clone()],
        "{when}: expected exit 1 and {line:?}; got exit {code}, stdout {out:?}, stderr {err:?}"
    );
}

/// A program of `prog_type` (and `expected_attach_type`) that returns
/// `verdict` for every packet: `r0 = verdict; exit`.
fn verdict_program(prog_type: u32, expected_attach_type: u32, verdict: i32) -> OwnedFd {
    let insns: [u64; 2] = [
        0xb7 | ((verdict as u32 as u64) << 32), // BPF_ALU64 | BPF_MOV | BPF_K, r0
        0x95,                                   // BPF_JMP | BPF_EXIT
    ];
    let license = c"GPL";
    // union bpf_attr's prog-load member as u32 words: prog_type,
    // insn_cnt, insns (u64), license (u64), ..., prog_ifindex at word
    // 16, expected_attach_type at 17.
    let mut attr = [0u32; 32];
    attr[0] = prog_type;
    attr[1] = insns.len() as u32;
    let p = insns.as_ptr() as u64;
    (attr[2], attr[3]) = (p as u32, (p >> 32) as u32);
    let l = license.as_ptr() as u64;
    (attr[4], attr[5]) = (l as u32, (l >> 32) as u32);
    attr[17] = expected_attach_type;
    let fd = bpf(5, &mut attr).expect("BPF_PROG_LOAD of the verdict program");
    // SAFETY: BPF_PROG_LOAD returns a new fd that we now own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Makes the link pinned at `pin` run `prog` instead (BPF_LINK_UPDATE).
fn link_update(pin: &Path, prog: BorrowedFd<'_>) {
    let link = link::obj_get(pin).unwrap_or_else(|e| panic!("opening {}: {e}", pin.display()));
    let mut attr = [0u32; 32];
    attr[0] = link.as_raw_fd() as u32;
    attr[1] = prog.as_raw_fd() as u32;
    bpf(29, &mut attr).unwrap_or_else(|e| panic!("BPF_LINK_UPDATE of {}: {e}", pin.display()));
}

fn bpf(cmd: libc::c_long, attr: &mut [u32; 32]) -> io::Result<i32> {
    // SAFETY: a zero-padded bpf_attr of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as i32)
    }
}

const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_PROG_TYPE_XDP: u32 = 6;
/// The attach type aya loads XDP programs with (a link update must keep it).
const BPF_XDP: u32 = 37;

/// The whole life of an attachment, seen by the check.
fn check_follows_the_attachment(tag: &str, mode: Ingress) {
    let mut d = DaemonTopo::new(tag, mode);
    let ext = d.ext().to_string();

    // Before anything is attached; and an interface that does not exist.
    assert_unhealthy(&d, &ext, "not attached", "before the attach");
    assert_unhealthy(&d, "nosuch0", "no such interface", "a bogus interface");

    let cfg = d.write("xnat.toml", &d.config("inside = [\"int0\"]", ""));
    d.start(&["attach", "--config", cfg.to_str().unwrap()]);
    assert_healthy(&d, "attached with its agent");
    let (code, out, err) = check(&d, &ext, &["-q"]);
    assert!(
        code == 0 && out.is_empty() && err.is_empty(),
        "-q: exit {code}, stdout {out:?}, stderr {err:?}"
    );

    // The self-test runs the attached programs on their own maps: each
    // check counts its frame once per external program (README).
    let before = d.t.counter("passed_not_ours");
    for _ in 0..3 {
        assert_healthy(&d, "repeated");
    }
    let counted = d.t.counter("passed_not_ours") - before;
    assert!(
        counted >= 6,
        "3 checks moved passed_not_ours by {counted}, not at least 6"
    );

    // A program that drops what is not the NAT's fails the self-test.
    let (pin, drop, pass_name, drop_name, program) = match mode {
        Ingress::Xdp => (
            pins::LINK_INGRESS_XDP,
            verdict_program(BPF_PROG_TYPE_XDP, BPF_XDP, 1),
            "XDP_PASS",
            "XDP_DROP",
            "xnat_ingress_xdp",
        ),
        Ingress::Tc => (
            pins::LINK_INGRESS_TC,
            verdict_program(BPF_PROG_TYPE_SCHED_CLS, 0, 2),
            "TC_ACT_OK",
            "TC_ACT_SHOT",
            "xnat_ingress_tc",
        ),
    };
    let pin = d.pin_dir().join(pin);
    let original = link::info_of_pinned(&pin)
        .expect("the ingress link")
        .prog_id;
    let original = selftest::program_by_id(original).expect("the ingress program");
    link_update(&pin, drop.as_fd());
    assert_unhealthy(
        &d,
        &ext,
        &format!("self-test of {program} on {ext} returned {drop_name} (expected {pass_name})"),
        "with a dropping ingress program",
    );
    link_update(&pin, original.as_fd());
    assert_healthy(&d, "with the ingress program back");

    // SIGKILL: the programs run on without an agent.
    d.kill9();
    assert!(!d.t.attached().is_empty(), "programs gone after SIGKILL");
    assert_unhealthy(&d, &ext, "no agent running", "after SIGKILL");

    // An agent adopts it again.
    d.start(&["attach", "--config", cfg.to_str().unwrap()]);
    assert_healthy(&d, "after the adoption");

    // A link still pinned but detached from its device runs nowhere.
    let inside = d
        .pin_dir()
        .join(format!("{}int0", pins::LINK_INSIDE_PREFIX));
    link::detach_pinned(&inside).expect("detaching the inside link");
    assert_unhealthy(
        &d,
        &ext,
        "not attached: xnat_inside_tc on int0 is pinned but no longer attached (device replaced \
         or link detached)",
        "with the inside link detached",
    );

    // `xnat detach`: the agent exits, nothing is left.
    d.xnat_ok(&["detach", &ext]);
    let status = d.t.take_agent().wait_exit(xnat_tests::agent::EXIT_TIMEOUT);
    assert!(status.success(), "agent after detach: {status:?}");
    assert_unhealthy(&d, &ext, "not attached", "after detach");
}

#[test]
fn check_follows_the_attachment_tc() {
    check_follows_the_attachment("hlt", Ingress::Tc);
}

#[test]
fn check_follows_the_attachment_xdp() {
    check_follows_the_attachment("hlx", Ingress::Xdp);
}

/// A malformed command line is exit 2, as for every verb; without
/// --check, `status` is the listing it always was.
#[test]
fn check_usage_errors() {
    let d = DaemonTopo::new("hlu", Ingress::Tc);
    for args in [
        &["status", "--check"][..],
        &["status", "-q"],
        &["status", "--check", "eth0", "--json"],
    ] {
        let out = d.xnat(args);
        let lines = error_lines(&out.stderr);
        assert!(
            out.status.code() == Some(2) && lines.len() == 1,
            "xnat {}: {:?} {lines:?}",
            args.join(" "),
            out.status.code()
        );
    }
    let out = d.xnat_ok(&["status"]);
    assert_eq!(
        out,
        "xnat is not attached to any interface in this network namespace\n"
    );
}
