//! Zip archives (torch.save, .npz) whose central directory names one entry twice are ambiguous:
//! the `zip` crate keeps one of the two, another reader may keep the other, so one file could show
//! different tensors to different tools. This walks the directory itself to find such names.

use std::collections::HashSet;
use std::io::Cursor;

use zip::ZipArchive;

use crate::text::shown;

/// Refuses an archive whose central directory names one entry twice. The zip reader keeps only
/// one of them, so the directory is walked here (name lengths checked against the file).
pub fn check_unique(archive: &ZipArchive<Cursor<&[u8]>>, bytes: &[u8]) -> Result<(), String> {
    let mut seen = HashSet::new();
    let mut pos = usize::try_from(archive.central_directory_start()).unwrap_or(usize::MAX);
    while let Some(header) = bytes.get(pos..).and_then(|rest| rest.get(..46))
        && header.starts_with(b"PK\x01\x02")
    {
        let field = |at: usize| usize::from(u16::from_le_bytes([header[at], header[at + 1]]));
        let (name_len, extra_len, comment_len) = (field(28), field(30), field(32));
        let Some(name) = bytes.get(pos + 46..pos + 46 + name_len) else {
            break;
        };
        if !seen.insert(name) {
            return Err(format!(
                "zip archive has two entries named '{}'; refusing an ambiguous archive (readers disagree on which \
                 copy counts)",
                shown(&String::from_utf8_lossy(name))
            ));
        }
        pos += 46 + name_len + extra_len + comment_len;
    }
    if seen.len() > archive.len() {
        return Err("zip archive has two entries whose names decode alike; refusing an ambiguous archive".into());
    }
    Ok(())
}
