//! Temp files next to their destination: one naming scheme, and the clean-up of those left by
//! killed runs.
//!
//! Every file the project writes goes to `.NAME.tmp-PID-N` beside `NAME` and is renamed into
//! place when complete. A process killed mid-write (or stopped by a full disk before its own
//! clean-up ran) leaves that temp behind; a graph export of a big model left 900 MB. The next
//! run that writes into the same directory removes temps whose process is gone, so stale files
//! never pile up. Temps of a live process (another export running now) are left alone.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh temp path for `path`: `.NAME.tmp-PID-N` in the same directory (same file system,
/// so the final rename is atomic).
pub fn temp_path_for(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{file_name}.tmp-{}-{n}", std::process::id()))
}

/// Removes the temps in `path`'s directory left by processes that no longer run (files or
/// directories), the first time this process writes there (a zoo of 10,000 files is one scan,
/// not 10,000); returns how many. Errors are ignored: clean-up never stops the write it precedes.
pub fn remove_stale(path: &Path) -> usize {
    static CLEANED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    {
        let mut cleaned = CLEANED.lock().unwrap_or_else(|e| e.into_inner());
        if !cleaned.get_or_insert_with(HashSet::new).insert(dir.to_path_buf()) {
            return 0;
        }
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(owner_pid) else { continue };
        if pid != std::process::id() && !process_alive(pid) {
            let p = entry.path();
            let gone = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
            removed += usize::from(gone.is_ok());
        }
    }
    removed
}

/// The writing process of a temp file name: `.NAME.tmp-PID[-N]` (this module, checkpoints) or
/// `.NAME.PID.N.tmp` (`.npz` exports of earlier versions); `None` for anything else.
fn owner_pid(name: &str) -> Option<u32> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !name.starts_with('.') {
        return None;
    }
    if let Some(i) = name.rfind(".tmp-") {
        let mut parts = name[i + 5..].split('-');
        let pid = parts.next().filter(|p| digits(p))?;
        let rest: Vec<&str> = parts.collect();
        return (rest.len() <= 1 && rest.iter().all(|p| digits(p)) && i > 1).then(|| pid.parse().ok())?;
    }
    let mut parts = name.strip_suffix(".tmp")?.rsplitn(3, '.');
    let (n, pid, stem) = (parts.next()?, parts.next()?, parts.next()?);
    (digits(n) && digits(pid) && stem.len() > 1).then(|| pid.parse().ok())?
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
        assert_eq!(owner_pid(".g.npz.tmp-123"), Some(123));
        assert_eq!(owner_pid(".g.npz.tmp-123-4"), Some(123));
        assert_eq!(owner_pid(".g.npz.123.4.tmp"), Some(123));
        assert_eq!(owner_pid(".step-000000003-e1-b0.tmp-77"), Some(77));
        assert_eq!(owner_pid(".g.npz.tmp-12x"), None);
        assert_eq!(owner_pid(".g.npz.tmp-1-2-3"), None);
        assert_eq!(owner_pid("g.npz.tmp-123"), None, "not hidden: not ours");
        assert_eq!(owner_pid(".backup"), None);
        assert_eq!(owner_pid(".1.2.tmp.old"), None);
    }

    #[test]
    fn temps_of_dead_processes_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("graph.npz");
        // Above Linux's largest pid (2^22): no such process.
        let dead = [".graph.npz.tmp-4999999", ".graph.npz.4999999.0.tmp", ".other.json.tmp-4999999-3"];
        for name in dead {
            std::fs::write(dir.path().join(name), b"partial").unwrap();
        }
        std::fs::create_dir(dir.path().join(".step-1-e0-b1.tmp-4999998")).unwrap();
        let mine = temp_path_for(&target);
        std::fs::write(&mine, b"in progress").unwrap();
        let parent = format!(".graph.npz.tmp-{}", std::os::unix::process::parent_id());
        std::fs::write(dir.path().join(&parent), b"another live writer").unwrap();
        let unrelated = ["graph.npz.tmp-4999999", ".graph.npz.notes", "data.tmp"];
        for name in unrelated {
            std::fs::write(dir.path().join(name), b"keep").unwrap();
        }
        assert_eq!(remove_stale(&target), 4);
        assert!(mine.exists() && dir.path().join(parent).exists());
        for name in unrelated {
            assert!(dir.path().join(name).exists(), "{name}");
        }
        // Once per directory and process: a later write there does not scan again.
        std::fs::write(dir.path().join(".graph.npz.tmp-4999999"), b"partial").unwrap();
        assert_eq!(remove_stale(&dir.path().join("other.npz")), 0);
    }
}
