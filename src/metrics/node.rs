//! Readings of this process and node, as plain functions (the admin API's
//! `nodes` endpoint may use them too): file descriptors, resident memory.
//! Linux's /proc; elsewhere a reading is None. May use nothing of ours.

/// File descriptors this process has open.
pub fn open_fds() -> Option<u64> {
    // Counting entries allocates nothing per entry beyond the iterator's
    // buffer; the directory handle itself is one of them, so not counted.
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(n.saturating_sub(1))
}

/// The soft limit on open file descriptors (`ulimit -n`).
pub fn max_fds() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0).then_some(lim.rlim_cur)
}

/// This process's resident memory in bytes, from /proc/self/statm.
pub fn resident_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_of_this_process_are_plausible() {
        if cfg!(target_os = "linux") {
            let (open, max) = (open_fds().unwrap(), max_fds().unwrap());
            assert!(open >= 3 && open <= max, "{open} of {max}");
            assert!(resident_memory().unwrap() > 1 << 20);
        }
    }
}
