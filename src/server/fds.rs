//! The file descriptor limit: raised at start to the hard limit, as
//! RabbitMQ does, since every connection holds one (two over TLS: the
//! socket and its proxy pair's end).

use tracing::{info, warn};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and logs what was
/// granted; returns the limit in force.
pub fn raise_limit() -> Option<u64> {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        warn!("cannot read the file descriptor limit: {}", std::io::Error::last_os_error());
        return None;
    }
    let before = l.rlim_cur;
    if l.rlim_cur < l.rlim_max {
        let raised = libc::rlimit { rlim_cur: l.rlim_max, rlim_max: l.rlim_max };
        // SAFETY: setrlimit only reads the struct it is given; raising the
        // soft limit up to the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            l = raised;
        } else {
            warn!(
                limit = before,
                "cannot raise the file descriptor limit: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    info!(limit = l.rlim_cur, was = before, "file descriptor limit (about that many connections)");
    #[allow(clippy::unnecessary_cast)] // rlim_t differs between platforms
    Some(l.rlim_cur as u64)
}
