//! Small helpers shared by the subcommands: paths, PATH, running commands.

use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{Context, Result, bail};

/// The workspace root: xtask lives in `<root>/xtask`.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent directory")
        .to_path_buf()
}

/// The target directory cargo builds into, honouring `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        // A relative CARGO_TARGET_DIR is relative to where cargo runs; we run it from the root.
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// `$CARGO_HOME`, or `~/.cargo` like cargo and rustup use.
pub fn cargo_home() -> PathBuf {
    match env::var_os("CARGO_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo"),
    }
}

/// A `cargo` command run from the workspace root, using the cargo that runs us (cargo sets
/// `CARGO` for `cargo run`), so the same toolchain builds everything.
pub fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Makes `$CARGO_HOME/bin` (rustup, a freshly installed bpf-linker) and the sbin directories
/// (ip, tcpdump, nft... when run via `sudo` with a user's PATH) visible to us and every child.
///
/// Must be called before any thread is spawned.
pub fn setup_path() {
    let current = env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = env::split_paths(&current).collect();
    let cargo_bin = cargo_home().join("bin");
    if !dirs.contains(&cargo_bin) {
        dirs.insert(0, cargo_bin);
    }
    for sbin in ["/usr/local/sbin", "/usr/sbin", "/sbin"] {
        let sbin = PathBuf::from(sbin);
        if !dirs.contains(&sbin) {
            dirs.push(sbin);
        }
    }
    if let Ok(path) = env::join_paths(dirs) {
        // SAFETY: called first thing in main, while the process is single-threaded.
        unsafe { env::set_var("PATH", path) };
    }
}

/// Finds an executable by name on PATH.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|dir| dir.join(name)).find(|p| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// A command line for messages: `prog arg arg`.
pub fn describe(cmd: &Command) -> String {
    let mut parts: Vec<OsString> = vec![cmd.get_program().to_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_owned()));
    parts
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a command with inherited stdio and fails if it does not exit 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(cmd));
    }
    Ok(())
}

/// Runs a command, capturing its output, and fails (showing stderr) if it does not exit 0.
pub fn output(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start `{}`", describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Like [`output`] but returns stdout as a string.
pub fn stdout(cmd: &mut Command) -> Result<String> {
    Ok(String::from_utf8_lossy(&output(cmd)?.stdout).into_owned())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Fails with a message explaining why `what` needs root.
pub fn require_root(what: &str, why: &str) -> Result<()> {
    if !is_root() {
        bail!("cargo xtask {what} needs root: {why} (try: sudo -E cargo xtask {what})");
    }
    Ok(())
}
