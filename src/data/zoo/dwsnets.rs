//! The DWSNets INR zoos (Navon et al. 2023): one `torch.save` state dict per SIREN 2-32-32-1,
//! keys `seq.{0,1,2}.{weight,bias}`, omega_0 = 30, output + 0.5 ([`InrSpec::DWSNETS`]).
//!
//! **MNIST** (`mnist-inrs/`): `mnist_png_<split>_<label>_<id>/<...>/<name>.pth`, e.g.
//! `mnist_png_training_2_23089/checkpoints/model_final.pth`. The label is the second-to-last
//! `_` field of that folder. `<split>` is `training` or `testing`; as in DWSNets' split script,
//! validation is carved out of training: 1/12 of the training INRs (5,000 of 60,000), chosen by
//! a fixed seeded permutation of the folders in name order.
//!
//! **Fashion-MNIST** (`fmnist_inrs/`): `{train,val,test}/model_<i>.pth`, each state dict holding
//! an extra `"label"` (a Python int, or a 0-d tensor in some re-exports). Releases that ship
//! `{train,test}/` plus `splits.json` (`{"train": [paths], "val": [...], "test": [...]}`, or the
//! neural-graphs form `{"train": {"path": [...], ...}}`) take each file's split from that list,
//! matched on `<folder>/<file name>` (the paths inside are from the authors' machine); files the
//! list does not mention are skipped with a note.
//!
//! The label of a FMNIST file is found without running its pickle: a bounded scan of the pickle
//! bytes for the key `label` followed by an integer opcode; failing that, a 0-d `label` tensor
//! read through `checkpoint::open` (the PyTorch reader keeps tensors only).

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::{EntrySource, Target, Zoo, ZooEntry, ZooKind, files_under, subdirs};
use crate::data::siren::InrSpec;
use crate::data::split::{self, Split};
use crate::data::{Error, Result};

/// Seed of the fixed validation carve-out of the MNIST training INRs.
const MNIST_VAL_SEED: u64 = 0;

/// `dir` itself when it holds `mnist_png_*` folders, else `dir/mnist-inrs` when that does.
pub fn find_mnist_root(dir: &Path) -> Option<PathBuf> {
    let has = |d: &Path| subdirs(d).iter().any(|(name, _)| name.starts_with("mnist_png_"));
    if has(dir) {
        return Some(dir.to_path_buf());
    }
    let nested = dir.join("mnist-inrs");
    has(&nested).then_some(nested)
}

/// `dir` itself when it has `train/model_*.pth`, else `dir/fmnist_inrs` when that does.
pub fn find_fmnist_root(dir: &Path) -> Option<PathBuf> {
    let has = |d: &Path| {
        std::fs::read_dir(d.join("train"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_str().is_some_and(is_fmnist_file))
    };
    if has(dir) {
        return Some(dir.to_path_buf());
    }
    let nested = dir.join("fmnist_inrs");
    has(&nested).then_some(nested)
}

fn is_fmnist_file(name: &str) -> bool {
    name.strip_prefix("model_").and_then(|r| r.strip_suffix(".pth")).is_some_and(|n| n.parse::<u64>().is_ok())
}

/// `(split, label)` from a folder name `mnist_png_<split>_<label>_<id>`.
fn parse_mnist_folder(name: &str) -> Option<(Split, u8)> {
    let rest = name.strip_prefix("mnist_png_")?;
    let fields: Vec<&str> = rest.split('_').collect();
    let n = fields.len();
    if n < 3 {
        return None;
    }
    let label: u8 = fields[n - 2].parse().ok().filter(|&l: &u8| l < 10)?;
    // DWSNets' rule: anything mentioning "train" is training, the rest test.
    let split = if fields[..n - 2].join("_").contains("train") { Split::Train } else { Split::Test };
    Some((split, label))
}

pub fn open_mnist(root: &Path) -> Result<Zoo> {
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    for (name, folder) in subdirs(root) {
        if !name.starts_with("mnist_png_") {
            continue;
        }
        let Some((split, label)) = parse_mnist_folder(&name) else {
            notes.push(format!("skipped folder '{name}': not mnist_png_<split>_<label>_<id>"));
            continue;
        };
        let files = files_under(&folder, 3, &|n| n.ends_with(".pth"))?;
        if files.len() > 1 {
            notes.push(format!("folder '{name}' holds {} .pth files; each is an entry", files.len()));
        }
        for (k, file) in files.into_iter().enumerate() {
            let id = if k == 0 { name.clone() } else { format!("{name}#{k}") };
            entries.push(ZooEntry {
                id,
                target: Target::Class(label),
                split,
                source: EntrySource::File(file),
                psnr: None,
            });
        }
    }
    // Validation: a fixed 1/12 of the training INRs.
    let train: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].split == Split::Train).collect();
    let n_val = (train.len() as f64 / 12.0).round() as usize;
    for &p in split::permutation(train.len(), MNIST_VAL_SEED).iter().take(n_val) {
        entries[train[p]].split = Split::Val;
    }
    let mut zoo = Zoo::new(ZooKind::DwsnetsMnist, root, entries, Some(10), Some(InrSpec::DWSNETS));
    zoo.notes = notes;
    Ok(zoo)
}

pub fn open_fmnist(root: &Path) -> Result<Zoo> {
    let listed = read_splits_json(root)?;
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    let mut unlisted = 0usize;
    for folder_split in Split::ALL {
        let folder = root.join(folder_split.name());
        if !folder.is_dir() {
            continue;
        }
        let mut files = files_under(&folder, 0, &is_fmnist_file)?;
        files.sort_by_key(|p| file_number(p));
        for file in files {
            let key = parent_and_name(&file);
            let split = match &listed {
                Some(map) => match map.get(&key) {
                    Some(&s) => s,
                    None => {
                        unlisted += 1;
                        continue;
                    }
                },
                None => folder_split,
            };
            let label = read_label(&file)?;
            if label >= 10 {
                return Err(Error::new(&file, format!("label {label} is not a Fashion-MNIST class (0-9)")));
            }
            let id = key.trim_end_matches(".pth").to_string();
            entries.push(ZooEntry {
                id,
                target: Target::Class(label),
                split,
                source: EntrySource::File(file),
                psnr: None,
            });
        }
    }
    if unlisted > 0 {
        notes.push(format!("skipped {unlisted} files that splits.json does not list"));
    }
    let mut zoo = Zoo::new(ZooKind::DwsnetsFmnist, root, entries, Some(10), Some(InrSpec::DWSNETS));
    zoo.notes = notes;
    Ok(zoo)
}

fn file_number(p: &Path) -> u64 {
    p.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("model_"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// `<folder>/<file name>` of a path (how splits.json entries are matched).
fn parent_and_name(p: &Path) -> String {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match p.parent().and_then(|d| d.file_name()) {
        Some(dir) => format!("{}/{name}", dir.to_string_lossy()),
        None => name,
    }
}

/// `root/splits.json` as a map from `<folder>/<file>` to split, if the file exists.
fn read_splits_json(root: &Path) -> Result<Option<HashMap<String, Split>>> {
    let path = root.join("splits.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, "cannot read", e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::new(&path, format!("not valid JSON: {e}")))?;
    let mut map = HashMap::new();
    for split in Split::ALL {
        let Some(list) = json.get(split.name()) else { continue };
        // Either a list of paths or {"path": [...], "label": [...]}.
        let paths = list.get("path").unwrap_or(list);
        let Some(paths) = paths.as_array() else {
            return Err(Error::new(
                &path,
                format!("\"{}\" is neither a list of paths nor {{\"path\": [...]}}", split.name()),
            ));
        };
        for p in paths {
            let Some(p) = p.as_str() else {
                return Err(Error::new(&path, format!("\"{}\" lists a non-string path", split.name())));
            };
            map.insert(parent_and_name(Path::new(p)), split);
        }
    }
    Ok(Some(map))
}

/// Largest FMNIST INR file we read whole to find its label (real ones are ~6 KB).
const MAX_LABEL_FILE: u64 = 64 << 20;

/// The `"label"` of a DWSNets FMNIST state dict (see the module doc).
pub fn read_label(path: &Path) -> Result<u8> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
    let len = file.metadata().map_err(|e| Error::io(path, "cannot stat", e))?.len();
    if len > MAX_LABEL_FILE {
        return Err(Error::new(path, format!("{len} bytes is too large for a SIREN INR checkpoint")));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| Error::io(path, "cannot read", e))?;
    let pickle = if bytes.starts_with(b"PK") { zip_pickle(&bytes).map_err(|m| Error::new(path, m))? } else { bytes };
    if let Some(value) = scan_int_after_key(&pickle, b"label") {
        return u8::try_from(value).map_err(|_| Error::new(path, format!("label {value} is out of range")));
    }
    let store = crate::checkpoint::open(path)?;
    match store.get("label") {
        Some(t) if t.num_elements() == 1 => {
            let v = t.to_f64().first().copied().unwrap_or(f64::NAN);
            if v.fract() == 0.0 && (0.0..=255.0).contains(&v) {
                Ok(v as u8)
            } else {
                Err(Error::new(path, format!("label tensor holds {v}, not a class index")))
            }
        }
        Some(t) => Err(Error::new(path, format!("label tensor has shape {:?}; expected a scalar", t.shape))),
        None => Err(Error::new(path, "the state dict has no \"label\" entry (DWSNets FMNIST INRs store one)")),
    }
}

/// The `data.pkl` entry of a torch.save zip archive (bounded to 16 MiB).
fn zip_pickle(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("not a readable zip archive: {e}"))?;
    let name = archive
        .file_names()
        .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .min_by_key(|n| n.matches('/').count())
        .map(str::to_string)
        .ok_or("zip archive has no data.pkl entry, so it is not a torch.save file")?;
    let entry = archive.by_name(&name).map_err(|e| format!("{name}: {e}"))?;
    let mut out = Vec::new();
    entry.take(16 << 20).read_to_end(&mut out).map_err(|e| format!("{name}: {e}"))?;
    Ok(out)
}

/// The integer a pickle stores right after the string `key`, if the key is pickled as a string
/// (BINUNICODE `X`, SHORT_BINUNICODE `0x8c`, SHORT_BINSTRING `U`) followed by optional memo
/// opcodes and an integer opcode (BININT1 `K`, BININT2 `M`, BININT `J`, LONG1 `0x8a`).
fn scan_int_after_key(pickle: &[u8], key: &[u8]) -> Option<i64> {
    let len = key.len();
    let patterns: Vec<Vec<u8>> = vec![
        [b"X", &(len as u32).to_le_bytes()[..], key].concat(),
        [&[0x8c, len as u8][..], key].concat(),
        [&[b'U', len as u8][..], key].concat(),
    ];
    for pattern in &patterns {
        let mut from = 0;
        while let Some(at) = find(&pickle[from..], pattern) {
            let mut p = from + at + pattern.len();
            from += at + 1;
            // Memo opcodes between the key and its value.
            loop {
                match pickle.get(p) {
                    Some(b'q') => p += 2,
                    Some(b'r') => p += 5,
                    Some(0x94) => p += 1,
                    _ => break,
                }
            }
            let value = match pickle.get(p)? {
                b'K' => pickle.get(p + 1).map(|&b| b as i64),
                b'M' => pickle.get(p + 1..p + 3).map(|b| u16::from_le_bytes([b[0], b[1]]) as i64),
                b'J' => pickle.get(p + 1..p + 5).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
                0x8a => {
                    let n = *pickle.get(p + 1)? as usize;
                    let b = pickle.get(p + 2..p + 2 + n).filter(|_| (1..=8).contains(&n))?;
                    let mut buf = if b[n - 1] & 0x80 != 0 { [0xff; 8] } else { [0; 8] };
                    buf[..n].copy_from_slice(b);
                    Some(i64::from_le_bytes(buf))
                }
                _ => None,
            };
            if value.is_some() {
                return value;
            }
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnist_folder_names() {
        assert_eq!(parse_mnist_folder("mnist_png_training_2_23089"), Some((Split::Train, 2)));
        assert_eq!(parse_mnist_folder("mnist_png_testing_9_1"), Some((Split::Test, 9)));
        assert_eq!(parse_mnist_folder("mnist_png_training_x_1"), None);
        assert_eq!(parse_mnist_folder("mnist_png_12"), None);
    }

    #[test]
    fn label_scan_reads_int_opcodes_and_skips_memo() {
        let key = |tail: &[u8]| [&b"}q\x00(X\x05\x00\x00\x00labelq\x01"[..], tail].concat();
        assert_eq!(scan_int_after_key(&key(b"K\x07u."), b"label"), Some(7));
        assert_eq!(scan_int_after_key(&key(b"M\x2c\x01u."), b"label"), Some(300));
        assert_eq!(scan_int_after_key(&key(b"J\xff\xff\xff\xffu."), b"label"), Some(-1));
        assert_eq!(scan_int_after_key(&key(b"\x8a\x01\x05u."), b"label"), Some(5));
        // A tensor value (a GLOBAL follows): no int.
        assert_eq!(scan_int_after_key(&key(b"ctorch._utils\n"), b"label"), None);
        assert_eq!(scan_int_after_key(b"\x8c\x05label\x94K\x03", b"label"), Some(3));
        assert_eq!(scan_int_after_key(b"X\x05\x00\x00\x00lab", b"label"), None, "truncated");
    }
}
