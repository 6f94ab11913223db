//! A fast seeded hash for the expiry sweep's sets of packed integer keys.
use std::{
    collections::{HashMap, HashSet},
    hash::{BuildHasher, Hasher},
};

pub(crate) type FastSet<T> = HashSet<T, Seeded>;
pub(crate) type FastMap<K, V> = HashMap<K, V, Seeded>;

/// The sweep's hash: one folded 64×64→128-bit multiply per word, keyed by
/// two per-sweep random seeds (so remote addresses chosen by an attacker
/// cannot be made to collide). SipHash, std's default, was a third of a
/// sweep's CPU time at a million bindings.
#[derive(Clone, Copy)]
pub(crate) struct Seeded {
    seed: u64,
    mul: u64,
}

impl Seeded {
    pub(crate) fn new() -> Self {
        // std's RandomState draws its keys from the OS once per thread and
        // then increments them: hashing two constants gives fresh seeds.
        let r = std::hash::RandomState::new();
        Seeded {
            seed: r.hash_one(0x5eed_u64),
            mul: r.hash_one(0x5eed_u64 + 1) | 1,
        }
    }
}

impl Default for Seeded {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildHasher for Seeded {
    type Hasher = Fold;
    fn build_hasher(&self) -> Fold {
        Fold {
            h: self.seed,
            mul: self.mul,
        }
    }
}

pub(crate) struct Fold {
    h: u64,
    mul: u64,
}

impl Hasher for Fold {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, x: u64) {
        let p = (self.h ^ x) as u128 * self.mul as u128;
        self.h = (p as u64) ^ ((p >> 64) as u64);
    }

    fn write_u128(&mut self, x: u128) {
        self.write_u64(x as u64);
        self.write_u64((x >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.h
    }
}
