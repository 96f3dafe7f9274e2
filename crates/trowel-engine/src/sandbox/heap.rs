//! How this process's C allocator (glibc's malloc) gives big buffers back. It lives in
//! `sandbox/` because it is a foreign call, and `unsafe` stays here.
//!
//! glibc starts by mapping each allocation of 128 KiB or more on its own and unmapping it when
//! freed, but the first time such a block is freed it raises that threshold to the block's
//! size: from then on the layer writer's 512 KiB gzip chunks and their compressed copies, made
//! and freed on several threads at once, come from per-thread arenas, which keep what was freed
//! in their middle. A build that wrote two 21 MB layers then held 51–64 MB at its peak (W5 of
//! bench/, cold; W3's 200 MB copy 51–58 MB) against a goal of 64 MB, and more on a machine with
//! more cores (a compressor per core). With the threshold fixed, blocks of [`MMAP_THRESHOLD`]
//! or more are always mapped and unmapped: 37–44 MB for both (bench/README.md, "Peak memory:
//! big buffers given back").

/// Allocations this big or bigger get pages of their own, returned when freed: the gzip
/// chunks (`fs/pgzip.rs` `CHUNK`) and what they compress to.
const MMAP_THRESHOLD: i32 = 512 * 1024;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] (which also stops it moving the trim
/// threshold). Call it first thing in `main`, before any other thread exists.
pub fn give_big_buffers_back() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets a tunable of glibc's malloc, and is called before this process
    // starts any other thread, so no allocation runs while it changes. It returns 0 when it
    // refuses, and the defaults (more memory held, nothing wrong) then stay.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
