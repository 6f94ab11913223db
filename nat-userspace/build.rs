//! Builds the BPF programs (`nat-ebpf`) with the nightly toolchain for
//! bpfel-unknown-none, so a plain `cargo build` on stable yields a binary
//! that embeds them.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = std::path::Path::new(&manifest_dir)
        .parent()
        .ok_or_else(|| anyhow!("nat-userspace has no parent directory"))?
        .join("nat-ebpf");
    let ebpf_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    println!("cargo:rerun-if-changed={ebpf_dir}/src");
    println!("cargo:rerun-if-changed=../nat-common/src");
    let features: &[&str] = if std::env::var_os("CARGO_FEATURE_DEBUG_LOG").is_some() {
        &["debug-log"]
    } else {
        &[]
    };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "nat-ebpf",
            root_dir: ebpf_dir,
            features,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context(
        "building the BPF programs failed; they need the nightly toolchain with rust-src \
         and bpf-linker on PATH (`cargo xtask build` installs both)",
    )
}
