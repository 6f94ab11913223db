//! The pieces the BPF crate needs beyond stable Rust: a nightly toolchain with `rust-src`
//! (aya-build runs `cargo +nightly build -Z build-std=core --target bpfel-unknown-none`) and
//! `bpf-linker`, which has no usable prebuilt here and is built against nightly's own LLVM.

use std::{fs, path::Path, process::Command};

use anyhow::{Context, Result, bail};

use crate::util::{self, cargo_home, describe, find_in_path};

/// Installs whatever is missing of: nightly, rust-src for nightly, bpf-linker.
pub fn ensure_toolchain() -> Result<()> {
    if find_in_path("rustup").is_none() {
        bail!(
            "rustup not found on PATH: xnat needs rustup with the stable and nightly toolchains \
             (see https://rustup.rs)"
        );
    }
    ensure_nightly()?;
    ensure_rust_src()?;
    ensure_bpf_linker()
}

fn ensure_nightly() -> Result<()> {
    let list = util::stdout(Command::new("rustup").args(["toolchain", "list"]))?;
    if has_nightly(&list) {
        return Ok(());
    }
    println!("xtask: installing the nightly toolchain (needed to build the BPF programs)");
    util::run(Command::new("rustup").args([
        "toolchain",
        "install",
        "nightly",
        "--profile",
        "minimal",
    ]))
    .context("could not install the nightly toolchain")
}

fn ensure_rust_src() -> Result<()> {
    let list = util::stdout(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if has_rust_src(&list) {
        return Ok(());
    }
    println!("xtask: installing rust-src for nightly");
    util::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
    .context("could not install rust-src for the nightly toolchain")
}

/// `bpf-linker` is usable if it is on PATH (which includes `$CARGO_HOME/bin`) and runs the way
/// the BPF build runs it: under rustup's nightly environment, whose LD_LIBRARY_PATH holds
/// nightly's libLLVM. A copy built against an LLVM that is gone fails to start and is rebuilt.
fn ensure_bpf_linker() -> Result<()> {
    let existing = find_in_path("bpf-linker");
    if let Some(path) = &existing {
        let works = Command::new("rustup")
            .args(["run", "nightly"])
            .arg(path)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if works {
            return Ok(());
        }
        println!("xtask: {} does not run; rebuilding it", path.display());
    }
    install_bpf_linker(existing.is_some())
}

/// Builds bpf-linker against the nightly toolchain's libLLVM, so its LLVM matches the one rustc
/// emits bitcode with. The binary keeps an rpath to `$CARGO_HOME/xnat-llvm/lib`, so that
/// directory is permanent.
fn install_bpf_linker(force: bool) -> Result<()> {
    let sysroot = util::stdout(
        Command::new("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]),
    )?;
    let sysroot_lib = Path::new(sysroot.trim()).join("lib");
    let version = util::stdout(Command::new("rustup").args(["run", "nightly", "rustc", "-vV"]))?;
    let major = llvm_major(&version)
        .context("could not find the `LLVM version:` line in `rustc +nightly -vV`")?;

    let names: Vec<String> = fs::read_dir(&sysroot_lib)
        .with_context(|| format!("could not read {}", sysroot_lib.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let lib = pick_libllvm(&names).with_context(|| {
        format!(
            "no libLLVM.so.* in {}: the nightly toolchain does not ship a shared LLVM",
            sysroot_lib.display()
        )
    })?;

    let prefix = cargo_home().join("xnat-llvm");
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("could not create {}", prefix_lib.display()))?;
    // `libLLVM.so` is what bpf-linker's build links against; the library's own file name is
    // what the binary asks for at run time (its soname), found through the rpath to
    // `prefix_lib`, so bpf-linker also runs outside rustup's environment.
    for name in ["libLLVM.so", lib] {
        let link = prefix_lib.join(name);
        // Replace a stale link left by an older nightly.
        if link.symlink_metadata().is_ok() {
            fs::remove_file(&link)
                .with_context(|| format!("could not remove {}", link.display()))?;
        }
        std::os::unix::fs::symlink(sysroot_lib.join(lib), &link)
            .with_context(|| format!("could not create {}", link.display()))?;
    }

    println!("xtask: building bpf-linker against nightly's LLVM {major} (about a minute)");
    let mut cmd = util::cargo();
    cmd.env("LLVM_PREFIX", &prefix).args([
        "install",
        "bpf-linker",
        "--no-default-features",
        "--features",
        &format!("llvm-{major}"),
    ]);
    if force {
        cmd.arg("--force");
    }
    util::run(&mut cmd).with_context(|| {
        format!(
            "could not build bpf-linker (`LLVM_PREFIX={} {}`)",
            prefix.display(),
            describe(&cmd)
        )
    })?;
    if find_in_path("bpf-linker").is_none() {
        bail!(
            "bpf-linker was installed but is not on PATH; add {} to PATH",
            cargo_home().join("bin").display()
        );
    }
    Ok(())
}

/// True if `rustup toolchain list` shows a plain (undated) nightly, e.g.
/// `nightly-x86_64-unknown-linux-gnu`; `nightly-2024-01-01-...` is a different toolchain.
fn has_nightly(list: &str) -> bool {
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .any(|name| {
            name == "nightly"
                || name
                    .strip_prefix("nightly-")
                    .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
        })
}

fn has_rust_src(list: &str) -> bool {
    list.lines()
        .any(|l| l.split_whitespace().next() == Some("rust-src"))
}

/// The LLVM major version from `rustc -vV` (`LLVM version: 22.1.4` -> 22).
fn llvm_major(version: &str) -> Option<u32> {
    version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version:"))
        .and_then(|v| v.trim().split('.').next())
        .and_then(|m| m.parse().ok())
}

/// The shared libLLVM in a sysroot's lib directory: `libLLVM.so.22.1-rust-...`, or on older
/// toolchains `libLLVM-17-rust-...so`.
fn pick_libllvm(names: &[String]) -> Option<&str> {
    let mut candidates: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with("libLLVM.so."))
        .collect();
    if candidates.is_empty() {
        candidates = names
            .iter()
            .map(String::as_str)
            .filter(|n| n.starts_with("libLLVM-") && n.ends_with(".so"))
            .collect();
    }
    candidates.sort_unstable();
    candidates.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nightly_detection() {
        let list = "stable-x86_64-unknown-linux-gnu (active, default)\n\
                    nightly-x86_64-unknown-linux-gnu\n\
                    1.95.0-x86_64-unknown-linux-gnu\n";
        assert!(has_nightly(list));
        assert!(has_nightly("nightly (default)\n"));
        assert!(!has_nightly("stable-x86_64-unknown-linux-gnu (default)\n"));
        assert!(!has_nightly(
            "nightly-2024-01-01-x86_64-unknown-linux-gnu\n"
        ));
        assert!(!has_nightly("no installed toolchains\n"));
    }

    #[test]
    fn rust_src_detection() {
        assert!(has_rust_src(
            "cargo-x86_64-unknown-linux-gnu\nrust-src\nrustc-x86_64\n"
        ));
        assert!(!has_rust_src(
            "cargo-x86_64-unknown-linux-gnu\nrust-std-x86_64\n"
        ));
    }

    #[test]
    fn llvm_version() {
        let v = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nbinary: rustc\n\
                 host: x86_64-unknown-linux-gnu\nLLVM version: 22.1.4\n";
        assert_eq!(llvm_major(v), Some(22));
        assert_eq!(llvm_major("rustc 1.0\n"), None);
    }

    #[test]
    fn libllvm_choice() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let both = names(&[
            "libLLVM-22-rust-1.97.0-nightly.so",
            "libLLVM.so.22.1-rust-1.97.0-nightly",
            "librustc_driver-b5a965480ee51f9a.so",
        ]);
        assert_eq!(
            pick_libllvm(&both),
            Some("libLLVM.so.22.1-rust-1.97.0-nightly")
        );
        let old = names(&["libLLVM-17-rust-1.75.0-nightly.so", "rustlib"]);
        assert_eq!(
            pick_libllvm(&old),
            Some("libLLVM-17-rust-1.75.0-nightly.so")
        );
        assert_eq!(pick_libllvm(&names(&["rustlib"])), None);
    }
}
