//! Test support for xnat: a frame builder and checker ([`frame`]) and
//! helpers that load the compiled BPF object and run its programs through
//! `BPF_PROG_TEST_RUN` ([`bpf`]).

pub mod bpf;
pub mod frame;
// Dynamic NAPT packet tests (tests/packet_napt.rs): typed access to the NAPT maps.
pub mod napt_maps;
// End-to-end tests in network namespaces (tests/e2e_*.rs).
pub mod napt_topo;
pub mod netns;
pub mod topology;
pub mod traffic;
pub mod wait;
