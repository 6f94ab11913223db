//! Background processes (the agent, tcpdump, socat servers) that are always stopped, and Ctrl-C
//! handling that lets the demo clean up instead of dying with namespaces left behind.

use std::{
    io::{BufRead, BufReader, Read},
    os::unix::process::CommandExt,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError, Sender},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::util::describe;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns SIGINT/SIGTERM into a flag that the waits below check, so a Ctrl-C unwinds through the
/// cleanup guards instead of killing us with namespaces and an attached agent left behind.
pub fn install_interrupt_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps in small steps until `cond` holds, failing at the deadline or on Ctrl-C.
pub fn poll_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return Ok(());
        }
        check_interrupted()?;
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A child process with its output collected line by line. Dropping it stops the process.
pub struct Background {
    name: String,
    child: Child,
    exited: Option<ExitStatus>,
    stop_signal: libc::c_int,
    lines: Receiver<(Stream, String)>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Background {
    /// Starts `cmd` with stdout and stderr captured. `stop_signal` is what [`Self::stop`] sends
    /// first (SIGINT lets the agent detach; tcpdump flushes on it too).
    pub fn spawn(name: &str, mut cmd: Command, stop_signal: libc::c_int) -> Result<Self> {
        // Own process group: a Ctrl-C reaches only us, and we stop children in a known order.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("could not start {name}: `{}`", describe(&cmd)))?;
        let (tx, rx) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            reader(
                child.stdout.take(),
                Stream::Stdout,
                tx.clone(),
                stdout.clone(),
            ),
            reader(child.stderr.take(), Stream::Stderr, tx, stderr.clone()),
        ];
        Ok(Self {
            name: name.to_owned(),
            child,
            exited: None,
            stop_signal,
            lines: rx,
            stdout,
            stderr,
            readers,
        })
    }

    /// Waits for an output line matching `pred` and returns it. Fails at the deadline, on
    /// Ctrl-C, or when the process exits first (showing what it printed on stderr).
    pub fn wait_for_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(Stream, &str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            check_interrupted()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let err = self.stderr_suffix();
                bail!("{} did not print {what} within {timeout:?}{err}", self.name);
            }
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok((stream, line)) if pred(stream, &line) => return Ok(line),
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                // Both pipes closed: the process is gone or going.
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait(Duration::from_secs(2))?;
                    let status = status.map_or("still running".into(), |s| s.to_string());
                    let err = self.stderr_suffix();
                    bail!(
                        "{} exited ({status}) before printing {what}{err}",
                        self.name
                    );
                }
            }
        }
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self
                .child
                .try_wait()
                .with_context(|| format!("could not wait for {}", self.name))?;
        }
        Ok(self.exited)
    }

    /// Sends the stop signal, waits up to `grace`, then kills. Returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        self.signal(self.stop_signal);
        if let Some(status) = self.wait(grace)? {
            return Ok(status);
        }
        eprintln!(
            "xtask: {} did not stop within {grace:?}; killing it",
            self.name
        );
        self.signal(libc::SIGKILL);
        let status = self
            .child
            .wait()
            .with_context(|| format!("could not wait for {}", self.name))?;
        self.exited = Some(status);
        Ok(status)
    }

    fn signal(&self, sig: libc::c_int) {
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: plain syscall; the child is not reaped yet (exited is None), so the pid is
        // still ours even if the process has already exited.
        unsafe { libc::kill(pid, sig) };
    }

    /// The process's id (for pinning it to a CPU, say).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed on stdout so far (all of it once it has exited).
    pub fn stdout_lines(&mut self) -> Vec<String> {
        self.join_readers_if_exited();
        self.stdout.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Everything the process printed on stderr so far (all of it once it has exited).
    pub fn stderr_lines(&mut self) -> Vec<String> {
        self.join_readers_if_exited();
        self.stderr.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn join_readers_if_exited(&mut self) {
        // After exit the pipes reach EOF (unless a grandchild still holds them, e.g. a forked
        // socat child, so do not block forever on that).
        if self.exited.is_some() {
            let deadline = Instant::now() + Duration::from_secs(1);
            while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            for r in std::mem::take(&mut self.readers) {
                if r.is_finished() {
                    let _ = r.join();
                }
            }
        }
    }

    fn stderr_suffix(&mut self) -> String {
        let err = self.stderr_lines();
        if err.is_empty() {
            String::new()
        } else {
            format!("; its stderr:\n    {}", err.join("\n    "))
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Err(err) = self.stop(Duration::from_secs(5)) {
            eprintln!("xtask: could not stop {}: {err:#}", self.name);
        }
    }
}

fn reader(
    pipe: Option<impl Read + Send + 'static>,
    stream: Stream,
    tx: Sender<(Stream, String)>,
    store: Arc<Mutex<Vec<String>>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let Some(pipe) = pipe else { return };
        let mut pipe = BufReader::new(pipe);
        let mut buf = Vec::new();
        // Byte-wise with a lossy conversion: a non-UTF-8 line must not stop the reader, or the
        // child would block on a full pipe.
        while matches!(pipe.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\n', '\r'])
                .to_owned();
            buf.clear();
            if let Ok(mut v) = store.lock() {
                v.push(line.clone());
            }
            // The receiver may be gone during teardown; the line is stored anyway.
            let _ = tx.send((stream, line));
        }
    })
}
