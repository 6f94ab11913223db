//! What every BPF object of this crate needs besides its programs: a panic
//! handler and the licence section (both objects, `nat-ebpf` and the
//! bench's `bench-baseline`, include this file).

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach a real panic; this only
    // satisfies the compiler.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
