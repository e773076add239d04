//! Temp files next to their destination: one naming scheme, and the clean-up of those left by
//! killed runs.
//!
//! Every file the project writes goes to `.NAME.tmp-PID-N` beside `NAME` and is renamed into
//! place when complete. A process killed mid-write (or stopped by a full disk before its own
//! clean-up ran) leaves that temp behind; a graph export of a big model left 900 MB. The next
//! writer of the same `NAME` removes temps whose process is gone, so stale files never pile up.
//! Temps of a live process (another export running now) are left alone.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh temp path for `path`: `.NAME.tmp-PID-N` in the same directory (same file system,
/// so the final rename is atomic).
pub fn temp_path_for(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{file_name}.tmp-{}-{n}", std::process::id()))
}

/// Removes temps of `path` left by processes that no longer run (files or directories); returns
/// how many. Errors are ignored: clean-up never stops the write it precedes.
pub fn remove_stale(path: &Path) -> usize {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(file_name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else { return 0 };
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let prefix = format!(".{file_name}.");
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        let Some(pid) = owner_pid(rest) else { continue };
        if pid != std::process::id() && !process_alive(pid) {
            let p = entry.path();
            let gone = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
            removed += usize::from(gone.is_ok());
        }
    }
    removed
}

/// The writing process of a temp name's tail after `.NAME.`: `tmp-PID[-N]` (this module,
/// checkpoints) or `PID.N.tmp` (`.npz` exports of earlier versions).
fn owner_pid(rest: &str) -> Option<u32> {
    if let Some(tail) = rest.strip_prefix("tmp-") {
        let pid = tail.split('-').next()?;
        return pid.parse().ok().filter(|_| tail.split('-').all(|p| p.bytes().all(|b| b.is_ascii_digit())));
    }
    let mut parts = rest.split('.');
    let (pid, n, tmp) = (parts.next()?, parts.next()?, parts.next()?);
    (tmp == "tmp" && parts.next().is_none() && n.bytes().all(|b| b.is_ascii_digit())).then(|| pid.parse().ok())?
}

/// Whether a process with this id exists (signal 0 checks without sending anything).
fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
        let r = unsafe { libc::kill(pid, 0) };
        // EPERM: it exists but belongs to someone else.
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_to_their_writer() {
        assert_eq!(owner_pid("tmp-123"), Some(123));
        assert_eq!(owner_pid("tmp-123-4"), Some(123));
        assert_eq!(owner_pid("123.4.tmp"), Some(123));
        assert_eq!(owner_pid("tmp-12x"), None);
        assert_eq!(owner_pid("backup"), None);
        assert_eq!(owner_pid("1.2.tmp.old"), None);
    }

    #[test]
    fn temps_of_dead_processes_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("graph.npz");
        // Above Linux's largest pid (2^22): no such process.
        let dead = [".graph.npz.tmp-4999999", ".graph.npz.4999999.0.tmp", ".graph.npz.tmp-4999999-3"];
        for name in dead {
            std::fs::write(dir.path().join(name), b"partial").unwrap();
        }
        std::fs::create_dir(dir.path().join(".graph.npz.tmp-4999998")).unwrap();
        let mine = temp_path_for(&target);
        std::fs::write(&mine, b"in progress").unwrap();
        let parent = format!(".graph.npz.tmp-{}", std::os::unix::process::parent_id());
        std::fs::write(dir.path().join(&parent), b"another live writer").unwrap();
        let unrelated = [".other.npz.tmp-4999999", "graph.npz.tmp-4999999", ".graph.npz.notes"];
        for name in unrelated {
            std::fs::write(dir.path().join(name), b"keep").unwrap();
        }
        assert_eq!(remove_stale(&target), 4);
        assert!(mine.exists() && dir.path().join(parent).exists());
        for name in unrelated {
            assert!(dir.path().join(name).exists(), "{name}");
        }
    }
}
