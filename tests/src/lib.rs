//! Test support for xnat: a frame builder and checker ([`frame`]) and
//! helpers that load the compiled BPF object and run its programs through
//! `BPF_PROG_TEST_RUN` ([`bpf`]).
//! ARCHITECTURE.md at the repository root maps the modules and says
//! where a new setting, counter, map or stage goes.

// The xnat agent of an end-to-end test (start, wait ready, stop, SIGKILL)
// and the verbs run against its interface.
pub mod agent;
// Pinned binding tables without programs (tests/sweep_rules.rs,
// tests/flush_rules.rs).
pub mod binding_tables;
pub mod bindings;
pub mod bpf;
// Raw-socket captures with ICMP-error and TCP parsers and checksums of
// their own (tests/e2e_edges.rs).
pub mod capture;
// Daemon features (tests/e2e_daemon.rs): config files, agent restarts, metrics.
pub mod daemon_topo;
// The fast path (tests/e2e_fastpath.rs): topology with --inside, no-op XDP
// on the inside host, bulk TCP and UDP exchange helpers.
pub mod fastpath_topo;
// Fault, abuse and soak tests (tests/fault_*.rs, abuse_*.rs, soak_short.rs):
// the NAPT topology with an agent the test kills and restarts, UDP load
// that records what both sides saw, nftables counters at a host, the soak.
pub mod fault_topo;
// Gateway failover (tests/e2e_failover.rs, the failover benchmark, `cargo
// xtask demo --ha`): an active/standby pair with keepalived and BIRD, and
// the TCP and UDP streams that must survive it.
pub mod failover;
// One failover in steps, narrated or measured (the `xnat-ha` binary).
pub mod ha_scene;
pub mod ha_topo;
// An outside SYN flood against a port forward while inside hosts open new
// flows (tests/e2e_edges.rs, the `xnat-flood` benchmark).
pub mod flood;
pub mod frame;
pub mod load;
pub mod modes;
pub mod nft;
pub mod soak;
// Differential fuzzing (tests/fuzz_packet.rs, `cargo xtask fuzz`): a
// reference model of the translation, a frame generator and the runner that
// compares the compiled programs with the model.
pub mod fuzz;
pub mod model;
// Hairpinning and IP fragments (tests/e2e_hairpin_frag.rs): topology, raw
// IPv4 senders, pinned-map usage.
pub mod hairpin_topo;
// Dynamic NAPT packet tests (tests/packet_napt.rs): typed access to the NAPT maps.
pub mod napt_maps;
// End-to-end tests in network namespaces (tests/e2e_*.rs).
pub mod napt_topo;
/// The NAT64 topology: an IPv6-only client, the gateway, an IPv4 router and server.
pub mod nat64_topo;
// One builder for the topologies' namespaces, links, addresses and routes.
pub mod net;
pub mod netns;
// TC programs on CHECKSUM_COMPLETE and CHECKSUM_PARTIAL skbs (the fuzzer's
// checksum lanes).
pub mod skb_csum;
pub mod topology;
pub mod traffic;
pub mod wait;
