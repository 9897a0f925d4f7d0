//! Thread priorities: the background work (the optimizer's compiles, the
//! long lane's guests) runs at a higher nice value than the request
//! workers, so the kernel serves requests first.

/// Gives the calling thread the nice value `nice` (higher is lower
/// priority; only ever raised). On Linux a nice value is per thread.
pub(crate) fn lower_priority(nice: i32) {
    // SAFETY: plain system calls on the calling thread, named by its id.
    let result = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if result != 0 {
        tracing::debug!(
            "cannot lower the thread's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The calling thread's nice value.
#[cfg(test)]
pub(crate) fn nice() -> i32 {
    // SAFETY: reads the calling thread's nice value.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::getpriority(libc::PRIO_PROCESS, tid)
    }
}
