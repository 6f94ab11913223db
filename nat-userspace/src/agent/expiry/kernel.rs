//! The sweep's walk over the mappings, in the kernel: `xnat_expire`
//! (nat-ebpf expire.rs, pinned at attach as `prog_expire`) applies the
//! sweep's rules to every mapping where it lies and deletes the expired
//! ones there, instead of the sweep copying every mapping to user space
//! and deleting by key. At a million bindings: about half the CPU of the
//! copying walk with everything live, three quarters with everything
//! expired (BENCHMARKS.md, "Expiry").
//!
//! The walk is one BPF_PROG_TEST_RUN of a syscall program (loaded by
//! `loader::syscall_prog`): it runs in the agent's process context with
//! bottom halves on, so the CPU it runs on goes on translating packets
//! meanwhile. It reports only counts, not the mappings, so the sweep walks
//! here only when it needs nothing else of them (see `Sweeper::sweep`).
use std::{
    os::fd::{AsFd as _, OwnedFd},
    path::Path,
};

use anyhow::Context as _;
use nat_common::{EXPIRE_KEEP_MAX, EndpointKey, ExpireWalk, NatConfig};

use crate::{
    loader::syscall_prog,
    tables::{Table, Tables, batch, pins},
};

pub(super) struct KernelWalk {
    prog: OwnedFd,
    io: Table<u32, ExpireWalk>,
    keep: Table<EndpointKey, u8>,
}

impl KernelWalk {
    /// The walk pinned in `dir`; `None` where there is none (tables made
    /// without the programs, as some tests make them).
    pub fn open(dir: &Path) -> anyhow::Result<Option<Self>> {
        let path = dir.join(pins::PROG_EXPIRE);
        if !path.exists() {
            return Ok(None);
        }
        let tables = Tables::at(dir);
        Ok(Some(KernelWalk {
            prog: crate::loader::link::obj_get(&path)
                .with_context(|| format!("opening {}", path.display()))?,
            io: tables.expire()?,
            keep: tables.expire_keep()?,
        }))
    }

    /// Whether a walk can keep `n` inside endpoints' mappings.
    pub fn can_keep(n: usize) -> bool {
        n <= EXPIRE_KEEP_MAX as usize
    }

    /// One walk at `now` with `cfg`'s timeouts, keeping the mappings of
    /// the inside endpoints in `keep` (at most `EXPIRE_KEEP_MAX`).
    pub fn run(
        &self,
        cfg: &NatConfig,
        now: u64,
        keep: &[EndpointKey],
    ) -> anyhow::Result<ExpireWalk> {
        batch::update_all(self.keep.fd(), keep, &vec![1u8; keep.len()])
            .context("filling EXPIRE_KEEP")?;
        let result = self.walk(cfg, now, keep.len() as u32);
        // Emptied whatever the walk did: the next sweep fills it afresh.
        batch::delete(self.keep.fd(), keep).context("emptying EXPIRE_KEEP")?;
        result
    }

    fn walk(&self, cfg: &NatConfig, now: u64, keep: u32) -> anyhow::Result<ExpireWalk> {
        let input = ExpireWalk {
            cfg: *cfg,
            keep,
            now,
            ..Default::default()
        };
        batch::update(self.io.fd(), &0u32, &input).context("writing EXPIRE")?;
        syscall_prog::run(self.prog.as_fd()).context("running xnat_expire")?;
        batch::lookup(self.io.fd(), &0u32)
            .context("reading EXPIRE")?
            .context("EXPIRE is empty")
    }
}
