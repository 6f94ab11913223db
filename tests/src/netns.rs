//! Network namespaces for the end-to-end tests: creating and deleting them,
//! running tools inside them, background children that are always reaped,
//! and sockets owned by the test process that live inside a namespace.
//!
//! Tools run under `nsenter --net=/run/netns/NAME`, never `ip netns exec`:
//! the latter gives its command a fresh /sys, which hides the bpffs pins
//! xnat keeps under /sys/fs/bpf (DESIGN §5). `nsenter` changes only the
//! network namespace.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default bound for a foreground command (ip, ethtool, xnat's short verbs).
pub const CMD_TIMEOUT: Duration = Duration::from_secs(20);

/// Panics unless the test runs as root: namespace tests must never pass by
/// silently doing nothing.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("e2e tests need root (cargo xtask test)");
    }
}

/// The `xnat` binary under test: `$XNAT_BIN`, else `xnat` next to the
/// directory of the running test executable (target/<profile>/xnat).
pub fn xnat_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("XNAT_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "XNAT_BIN={} does not exist", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let p = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("xnat"))
        .expect("test executable has no grandparent directory");
    if !p.is_file() {
        panic!(
            "build xnat first (cargo xtask test does this): {} is missing",
            p.display()
        );
    }
    p
}

/// Renders a command line for messages.
fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Collects everything a pipe yields into a shared string, on its own thread.
fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&buf);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n])),
            }
        }
    });
    buf
}

/// Spawns `cmd` with piped output; the child gets SIGTERM if the spawning
/// thread dies (backstop for a test process killed outright).
fn spawn_piped(cmd: &mut Command) -> (Child, Arc<Mutex<String>>, Arc<Mutex<String>>) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe and touches no parent state.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", show(cmd)));
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    (child, out, err)
}

/// Runs `cmd` to completion within `timeout` (killing it and panicking
/// otherwise) and returns its output, whatever its exit status.
pub fn run_cmd(cmd: &mut Command, timeout: Duration) -> Output {
    let what = show(cmd);
    let mut bg = BgChild::spawn(what.clone(), cmd);
    let status = bg.wait_exit(timeout);
    Output {
        status,
        stdout: bg.stdout().into_bytes(),
        stderr: bg.stderr().into_bytes(),
    }
}

/// Like [`run_cmd`] but panics (with the output) unless the command succeeds;
/// returns stdout.
pub fn run_cmd_ok(cmd: &mut Command, timeout: Duration) -> String {
    let what = show(cmd);
    let out = run_cmd(cmd, timeout);
    if !out.status.success() {
        panic!(
            "`{what}` failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command in the host's namespaces and panics unless it succeeds.
pub fn host(args: &[&str]) -> String {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..]);
    run_cmd_ok(&mut cmd, CMD_TIMEOUT)
}

/// A child process running in the background. Dropping it terminates it
/// (SIGTERM, then SIGKILL after a bounded wait) and reaps it.
pub struct BgChild {
    what: String,
    child: Child,
    status: Option<ExitStatus>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl BgChild {
    /// Spawns `cmd`; `what` names it in messages.
    pub fn spawn(what: impl Into<String>, cmd: &mut Command) -> BgChild {
        let (child, stdout, stderr) = spawn_piped(cmd);
        BgChild {
            what: what.into(),
            child,
            status: None,
            stdout,
            stderr,
        }
    }

    /// What this child is, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child has written to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything the child has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The exit status if the child has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("waitpid");
        }
        self.status
    }

    /// After the exit: waits (bounded: a grandchild could keep a pipe open)
    /// until the pipe readers hit EOF, so stdout/stderr are complete.
    fn drain(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline
            && (Arc::strong_count(&self.stdout) > 1 || Arc::strong_count(&self.stderr) > 1)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits up to `timeout` for the child to exit on its own; `None` if it
    /// is still running then (it is left running). After an exit, the
    /// captured output is complete.
    pub fn wait_exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_exit() {
                self.drain();
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the child to exit on its own; after `timeout` kills it and
    /// panics with its output.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.wait_exit_within(timeout) {
            return s;
        }
        self.kill_hard();
        panic!(
            "timed out after {timeout:?} waiting for `{}` to exit\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout(),
            self.stderr()
        );
    }

    /// Sends `sig` to the child if it is still running.
    pub fn signal(&mut self, sig: libc::c_int) {
        if self.try_exit().is_none() {
            // SAFETY: kill on our own, not yet reaped child's pid.
            unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        }
    }

    /// SIGTERM, then waits up to `grace` for the exit (SIGKILL after that).
    /// Returns the exit status and whether SIGKILL was needed.
    pub fn terminate(&mut self, grace: Duration) -> (ExitStatus, bool) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(s) = self.try_exit() {
                self.drain();
                return (s, false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (self.kill_hard(), true)
    }

    fn kill_hard(&mut self) -> ExitStatus {
        if let Some(s) = self.try_exit() {
            return s;
        }
        let _ = self.child.kill();
        let s = self.child.wait().expect("waitpid");
        self.status = Some(s);
        self.drain();
        s
    }
}

impl Drop for BgChild {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let (_, killed) = self.terminate(Duration::from_secs(3));
            if killed {
                eprintln!("note: `{}` ignored SIGTERM; killed it", self.what);
            }
        }
    }
}

/// Describes an exit status for messages ("exit 1", "signal 9").
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => format!("{status}"),
    }
}

/// A named network namespace, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace (`ip netns add`) and brings its `lo` up.
    pub fn create(name: impl Into<String>) -> Netns {
        let name = name.into();
        // A leftover from a crashed earlier run with the same pid: reuse
        // would be wrong, so delete it first (ignoring "does not exist").
        if PathBuf::from("/run/netns").join(&name).exists() {
            let _ = run_cmd(
                Command::new("ip").args(["netns", "del", &name]),
                CMD_TIMEOUT,
            );
        }
        host(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name (as in `ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// /run/netns/NAME.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// A command that runs `program` inside this namespace via `nsenter`.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        cmd
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.cmd(args[0]);
        cmd.args(&args[1..]);
        cmd
    }

    /// Runs `args` in the namespace within `timeout`, whatever the result.
    pub fn run(&self, timeout: Duration, args: &[&str]) -> Output {
        run_cmd(&mut self.command(args), timeout)
    }

    /// Runs `args` in the namespace; panics unless it succeeds; returns stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        run_cmd_ok(&mut self.command(args), CMD_TIMEOUT)
    }

    /// `ip ARGS` in the namespace, must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut v = vec!["ip"];
        v.extend_from_slice(args);
        self.run_ok(&v)
    }

    /// Sets a sysctl in the namespace, e.g. `("net.ipv4.ip_forward", "1")`.
    pub fn sysctl(&self, key: &str, value: &str) {
        self.run_ok(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
    }

    /// Starts `args` in the background inside the namespace.
    pub fn spawn(&self, args: &[&str]) -> BgChild {
        let mut cmd = self.command(args);
        BgChild::spawn(format!("[{}] {}", self.name, args.join(" ")), &mut cmd)
    }

    /// Runs `f` on a thread that has joined this namespace (`setns`, which
    /// affects only the calling thread). Sockets created by `f` stay in this
    /// namespace for their whole life, so they can be returned and used from
    /// any thread afterwards.
    pub fn in_ns<R: Send, F: FnOnce() -> R + Send>(&self, f: F) -> R {
        let path = self.path();
        std::thread::scope(|s| {
            let h = s.spawn(move || {
                let file =
                    File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
                // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(
                    rc,
                    0,
                    "setns({}): {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
                f()
            });
            h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = run_cmd(
            Command::new("ip").args(["netns", "del", &self.name]),
            CMD_TIMEOUT,
        );
        if !out.status.success() {
            eprintln!(
                "warning: ip netns del {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}
