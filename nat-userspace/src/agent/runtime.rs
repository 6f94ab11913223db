//! The running agent's footprint in `/run/xnat`: a pid file it keeps
//! locked for as long as it lives, and a small state file that tells `xnat
//! reload` how the last reload went.
//!
//! The lock is an open-file-description lock (`F_OFD_SETLK`): the kernel
//! drops it when the agent dies, however it dies (SIGKILL included), so a
//! pid file left behind is recognisably stale, and other commands can test
//! it (`F_OFD_GETLK`) without taking it. Files are named after the pin
//! directory (`eth0`, `eth0@ns4026532`), so agents of different interfaces
//! and namespaces never share one.
use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read as _, Seek as _, Write as _},
    os::{
        fd::AsRawFd as _,
        unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _},
    },
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Where pid and state files live; `XNAT_RUN_DIR` overrides it.
pub fn run_dir() -> PathBuf {
    std::env::var_os("XNAT_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/xnat"))
}

/// The name the files of the attachment in pin directory `dir` get.
pub fn name_of(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "xnat".to_string())
}

pub fn pid_path(name: &str) -> PathBuf {
    run_dir().join(format!("{name}.pid"))
}

pub fn state_path(name: &str) -> PathBuf {
    run_dir().join(format!("{name}.state"))
}

fn ofd_lock(file: &File, cmd: libc::c_int) -> io::Result<libc::flock> {
    // SAFETY: zeroed flock is valid; we fill the fields fcntl reads.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // l_start = l_len = 0: the whole file.
    // SAFETY: valid fd and flock struct.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fl)
    }
}

/// The lock a live agent holds; dropping it removes the files.
pub struct AgentLock {
    file: File,
    name: String,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("an xnat agent (pid {pid}) is already running for this attachment")]
    Held { pid: String },
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

impl AgentLock {
    /// Takes the lock for the attachment `name` and writes our pid.
    pub fn acquire(name: &str) -> Result<AgentLock, LockError> {
        let dir = run_dir();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // Root-only whatever the umask (and if an older xnat made it 0755).
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod {}", dir.display()))?;
        let path = pid_path(name);
        // A dying agent unlinks its file; if we locked the unlinked inode
        // we would not exclude the next agent. So lock, then check that the
        // path still names the inode we locked (bounded retries).
        for _ in 0..5 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            // A file left by an older xnat may be wider.
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .with_context(|| format!("chmod {}", path.display()))?;
            if let Err(e) = ofd_lock(&file, libc::F_OFD_SETLK) {
                if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) {
                    return Err(LockError::Held {
                        pid: read_pid(&path).unwrap_or_else(|| "?".into()),
                    });
                }
                return Err(anyhow::Error::from(e)
                    .context(format!("locking {}", path.display()))
                    .into());
            }
            let same = match (file.metadata(), fs::metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if !same {
                continue;
            }
            let mut lock = AgentLock {
                file,
                name: name.to_string(),
            };
            lock.write_pid()
                .with_context(|| format!("writing {}", path.display()))?;
            return Ok(lock);
        }
        Err(anyhow::anyhow!("{} keeps changing under us", path.display()).into())
    }

    fn write_pid(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(self.file, "{}", std::process::id())?;
        self.file.flush()
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for AgentLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock; closing the file releases it.
        let _ = fs::remove_file(state_path(&self.name));
        let _ = fs::remove_file(pid_path(&self.name));
    }
}

fn read_pid(path: &Path) -> Option<String> {
    let mut s = String::new();
    File::open(path).ok()?.read_to_string(&mut s).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The pid of the live agent of attachment `name`, if one holds the lock.
/// A pid file without a lock holder is stale and yields `None`.
pub fn live_agent(name: &str) -> Option<u32> {
    let path = pid_path(name);
    let file = File::open(&path).ok()?;
    let fl = ofd_lock(&file, libc::F_OFD_GETLK).ok()?;
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return None;
    }
    read_pid(&path)?.parse().ok()
}

/// What the agent tells other commands about itself.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentState {
    pub pid: u32,
    /// The config file it was started with, if any.
    pub config: Option<PathBuf>,
    /// Reload attempts so far (successful or not).
    pub generation: u64,
    /// Whether the last reload (or the start) succeeded, and what it did.
    pub ok: bool,
    pub message: String,
    /// The translation log's file, while there is one (`xnat lookup`
    /// searches it for past bindings).
    #[serde(default)]
    pub translog: Option<PathBuf>,
}

/// Writes the state atomically (temporary file, then rename).
pub fn write_state(name: &str, state: &AgentState) -> anyhow::Result<()> {
    let path = state_path(name);
    let tmp = run_dir().join(format!(".{name}.state.tmp"));
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // Root-only even if a stale temporary file was wider.
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(&serde_json::to_vec(state)?)
    };
    write().with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))
}

pub fn read_state(name: &str) -> Option<AgentState> {
    let bytes = fs::read(state_path(name)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock excludes a second holder, is visible to `live_agent`, and
    /// is gone (with its files) once dropped. Uses a private run dir.
    #[test]
    fn lock_excludes_and_is_detectable() {
        let dir = std::env::temp_dir().join(format!("xnat-runtime-test-{}", std::process::id()));
        // SAFETY: single-threaded use of the variable within this test
        // binary (no other test reads XNAT_RUN_DIR).
        unsafe { std::env::set_var("XNAT_RUN_DIR", &dir) };
        let lock = AgentLock::acquire("eth9").unwrap();
        assert_eq!(live_agent("eth9"), Some(std::process::id()));
        // OFD locks conflict between open file descriptions, even in one
        // process: a second agent is refused.
        match AgentLock::acquire("eth9") {
            Err(LockError::Held { pid }) => assert_eq!(pid, std::process::id().to_string()),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("second lock granted"),
        }
        write_state(
            "eth9",
            &AgentState {
                pid: 1,
                generation: 3,
                ok: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(read_state("eth9").unwrap().generation, 3);
        drop(lock);
        assert_eq!(live_agent("eth9"), None);
        assert!(!pid_path("eth9").exists());
        // A stale pid file (no lock holder) is not a live agent.
        fs::write(pid_path("eth9"), "12345\n").unwrap();
        assert_eq!(live_agent("eth9"), None);
        let again = AgentLock::acquire("eth9").unwrap();
        drop(again);
        let _ = fs::remove_dir_all(&dir);
    }
}
