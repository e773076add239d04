//! The one way the project writes a file: into a temp file beside the destination, synced, then
//! renamed into place, so a reader (or a crash, a full disk, a cancelled export) never sees a
//! half-written file and an older file stays intact until the new one is complete.
//!
//! Temp names come from [`crate::temp_files`] (`.NAME.tmp-PID-N`), not from the `tempfile`
//! crate's random names: the next run writing into the same directory recognises and removes the
//! temps of killed processes by that name, which a big export (900 MB) makes worth doing.
//!
//! - [`write_atomically`]: write a whole file from a closure.
//! - [`prepare`] + [`AtomicFile::commit`]: write several files fully first, then move them into
//!   place together (an export on a nearly full disk fails before any of them replaces an older one).
//! - [`AtomicFile::create`]: a `Write + Seek` handle for writers that need one (zip archives, PNG
//!   encoders); dropping it uncommitted removes the temp.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A file being written at a temp path beside its destination; see the module docs.
#[must_use = "an atomic file is removed unless committed"]
pub struct AtomicFile {
    tmp: PathBuf,
    path: PathBuf,
    out: Option<BufWriter<File>>,
    committed: bool,
}

impl AtomicFile {
    /// Creates the temp file for `path` (after removing temps of `path`'s directory left by
    /// killed runs). Errors name the destination.
    pub fn create(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        if path.file_name().is_none() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{}: not a file path", path.display())));
        }
        crate::temp_files::remove_stale(&path);
        let tmp = crate::temp_files::temp_path_for(&path);
        let file = File::create(&tmp)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: cannot create: {e}", path.display())))?;
        Ok(Self { tmp, path, out: Some(BufWriter::with_capacity(1 << 20, file)), committed: false })
    }

    /// Where the file will appear on [`commit`](Self::commit).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and syncs the temp file to disk (idempotent).
    fn sync(&mut self) -> io::Result<()> {
        let out = self.out.as_mut().ok_or_else(|| io::Error::other("atomic file already closed"))?;
        out.flush()?;
        out.get_ref().sync_all()
    }

    /// Syncs the file and renames it into place, replacing any older file there.
    pub fn commit(mut self) -> io::Result<()> {
        self.sync()?;
        drop(self.out.take());
        std::fs::rename(&self.tmp, &self.path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot move the file to {}: {e}", self.path.display())))?;
        self.committed = true;
        Ok(())
    }

    fn out(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.out.as_mut().ok_or_else(|| io::Error::other("atomic file already closed"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out()?.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out()?.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out()?.flush()
    }
}

impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.out()?.seek(pos)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        drop(self.out.take()); // closed before it is removed
        if !self.committed {
            std::fs::remove_file(&self.tmp).ok();
        }
    }
}

/// Writes `path`'s content with `write` into its temp file and syncs it; [`AtomicFile::commit`]
/// moves it into place.
pub fn prepare(path: &Path, write: impl FnOnce(&mut AtomicFile) -> io::Result<()>) -> io::Result<AtomicFile> {
    let mut file = AtomicFile::create(path)?;
    write(&mut file)?;
    file.sync()?;
    Ok(file)
}

/// Runs `write` against a temp file next to `path`, then renames it into place.
pub fn write_atomically(path: &Path, write: impl FnOnce(&mut AtomicFile) -> io::Result<()>) -> io::Result<()> {
    prepare(path, write)?.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_committed_file_replaces_the_old_one_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        std::fs::write(&path, b"old").unwrap();
        write_atomically(&path, |w| w.write_all(b"new content")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new content");
        assert_eq!(entries(dir.path()), ["out.bin"]);
    }

    #[test]
    fn a_failed_or_dropped_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        std::fs::write(&path, b"old").unwrap();
        let failed = write_atomically(&path, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        {
            let mut file = AtomicFile::create(&path).unwrap();
            file.write_all(b"abandoned").unwrap();
        }
        let prepared = prepare(&path, |w| w.write_all(b"prepared")).unwrap();
        drop(prepared);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["out.bin"]);
    }

    #[test]
    fn a_failed_rename_removes_the_temp() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("blocked");
        std::fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(write_atomically(&blocked, |w| w.write_all(b"x")).is_err(), "a directory is in the way");
        assert_eq!(entries(dir.path()), ["blocked"]);
    }

    #[test]
    fn seeking_back_patches_earlier_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("patched.bin");
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"xxxx-tail").unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.write_all(b"head").unwrap();
        file.seek(SeekFrom::End(0)).unwrap();
        file.write_all(b"!").unwrap();
        file.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"head-tail!");
    }

    #[test]
    fn errors_name_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("out.bin");
        let e = write_atomically(&path, |w| w.write_all(b"x")).unwrap_err();
        assert!(e.to_string().contains("missing-dir"), "{e}");
    }
}
