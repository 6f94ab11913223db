//! Abuse: who may read and change xnat's state (issue 6), in network
//! namespaces (root). Pinned maps give whoever opens them the NAT's tables
//! (and writing them, its policy); the pid/state files and the translation
//! log name the agent and the inside hosts. All of it must be root's only,
//! whatever the umask xnat runs with; a config file anyone else may write
//! is refused.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use xnat_tests::agent::{Agent, Xnat, run_xnat};
use xnat_tests::fault_topo::{FaultTopo, run_files};
use xnat_tests::napt_topo::{HOST_A, SRV1, sa, udp_bind, udp_deliver};
use xnat_tests::netns::{CMD_TIMEOUT, describe, run_cmd, xnat_bin};
use xnat_tests::topology::{Ingress, PIN_ROOT, pins_for};
use xnat_tests::wait::{SOON, wait_until};

/// (path, mode bits, owner uid) of `p`.
fn mode_of(p: &Path) -> (u32, u32) {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.mode() & 0o7777, m.uid())
}

/// Panics unless `p` is owned by root and has no group or other bits.
fn assert_root_only(p: &Path) {
    let (mode, uid) = mode_of(p);
    assert!(
        uid == 0 && mode & 0o077 == 0,
        "{} is mode {mode:04o}, uid {uid}: not root-only",
        p.display()
    );
}

/// Runs `args` as user nobody (uid/gid 65534, no groups, no capabilities)
/// in the gateway's network namespace.
fn as_nobody(f: &FaultTopo, args: &[&str]) -> std::process::Output {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", f.t.nat.path().display()))
        .args([
            "--",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ])
        .args(args);
    run_cmd(&mut c, CMD_TIMEOUT)
}

mod state_is_root_only {
    #[test]
    fn tc() {
        super::state_is_root_only("perm", xnat_tests::topology::Ingress::Tc);
    }
}

/// Promise: with the agent started under umask 000, the pin root, the pin
/// directory, every pin, /run/xnat and the agent's pid and state files, and
/// the translation log are root's alone (no group or other bits), and user
/// nobody can neither read a pin or a state file nor run a verb on them.
/// A config file writable by other users is refused by `check` and
/// `attach`, and nothing is attached.
fn state_is_root_only(tag: &str, mode: Ingress) {
    let f = FaultTopo::new(tag, mode);
    let dir = std::env::temp_dir().join(format!("xnat-perm-{}-{}", std::process::id(), f.t.ext));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = RemoveDir(dir.clone());
    let log = dir.join("bindings.jsonl");

    // A world-writable config is refused.
    let config = dir.join("xnat.toml");
    std::fs::write(
        &config,
        format!(
            "interface = \"{}\"\ningress = \"tc\"\n[napt]\ninternal = [\"10.0.0.0/8\"]\npool = [\"198.51.100.1\"]\n",
            f.t.ext
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o666)).unwrap();
    let cfg = config.to_str().unwrap();
    for verb in ["check", "attach"] {
        let (code, out, err) = run_xnat(&f.t.nat, &[verb, "--config", cfg]);
        assert!(
            code == 1 && err.contains("writable by every user"),
            "`xnat {verb}` of a 0666 config: exit {code}\n{out}{err}"
        );
    }
    assert!(pins_for(&f.t.ext).is_empty(), "a refused config attached");

    // The agent under umask 000.
    let bin = xnat_bin();
    let script = format!(
        "umask 000; exec {} attach {} --ingress {} --pool 198.51.100.1 --internal 10.0.0.0/8 --log-bindings {}",
        bin.display(),
        f.t.ext,
        mode.as_str(),
        log.display()
    );
    let mut sh = f.t.nat.cmd("sh");
    sh.args(["-c", &script]);
    let mut agent = Agent::spawn_cmd(
        "xnat attach under umask 000",
        &mut sh,
        Xnat::new(&f.t.nat, &f.t.ext),
    );
    agent.wait_ready();
    let srv = udp_bind(&f.t.srv, sa(SRV1, 7000));
    let inside = udp_bind(&f.t.a, sa(HOST_A, 40000));
    udp_deliver(&inside, sa(SRV1, 7000), &srv, b"log me");
    // Generous: the agent writes the log from the event ring, and CI may
    // share the machine's two CPUs with other work.
    wait_until(SOON, "the translation log's first line", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("created"))
    });

    let mut checked: Vec<PathBuf> = vec![PathBuf::from(PIN_ROOT), log.clone()];
    checked.extend(pins_for(&f.t.ext));
    checked.push(PathBuf::from("/run/xnat"));
    checked.extend(run_files(&f.t.ext));
    assert!(checked.len() > 10, "too few files found: {checked:?}");
    for p in &checked {
        assert_root_only(p);
    }
    let pins = pins_for(&f.t.ext);
    let pin_dir = &pins[0];
    assert_eq!(mode_of(pin_dir).0, 0o700, "{}", pin_dir.display());
    for p in &pins[1..] {
        assert_eq!(mode_of(p).0, 0o600, "{}", p.display());
    }

    // User nobody gets nowhere.
    let state = run_files(&f.t.ext)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "state"))
        .expect("no state file");
    let map = pin_dir.join("STATS");
    for p in [&map, &state, &log] {
        let out = as_nobody(&f, &["cat", p.to_str().unwrap()]);
        assert!(
            !out.status.success(),
            "user nobody read {}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let b = bin.to_str().unwrap();
    for args in [
        vec![b, "stats", "-i", &f.t.ext],
        vec![b, "flows", "-i", &f.t.ext],
        vec![b, "map", "add", "10.0.0.9", "198.51.100.9", "-i", &f.t.ext],
        vec![b, "detach", &f.t.ext],
    ] {
        let out = as_nobody(&f, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && !err.contains("panicked"),
            "user nobody ran `{}` ({}): {}{err}",
            args[1..].join(" "),
            describe(out.status),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(
        agent.try_exit().is_none(),
        "the agent exited: {}",
        agent.stdout()
    );
    agent.stop();
    f.assert_clean("after SIGTERM");
}

struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
