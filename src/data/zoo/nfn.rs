//! NFN SIREN sets (Zhou et al. 2023): `<prefix>_<digit>s/net<idx>.pth`, e.g.
//! `randinit_smaller_3s/net1207.pth`, one folder per class; the label is the digit before the
//! trailing `s` of the folder name, `<idx>` numbers the networks across all folders. SIREN
//! 2-32-32-out (out 1 for MNIST/FMNIST, 3 for CIFAR), omega_0 = 30, no output offset
//! ([`InrSpec::NFN`]); state dict names as saved (`net.0.linear.weight`, ...).
//!
//! Split by index, as in NFN: train `[0, 45000)`, val `[45000, 50000)`, test `[50000, ...)`.
//! If a directory holds several prefixes (`randinit_smaller_*`, `randinit_test_*`), the one with
//! the most networks is used and the others are reported in [`Zoo::notes`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{EntrySource, Target, Zoo, ZooEntry, ZooKind, files_under, subdirs};
use crate::data::siren::InrSpec;
use crate::data::split::Split;
use crate::data::{Error, Result};

pub const TRAIN_END: u64 = 45_000;
pub const VAL_END: u64 = 50_000;

/// `(prefix, digit)` from `<prefix>_<digit>s`.
fn parse_folder(name: &str) -> Option<(&str, u8)> {
    let (prefix, tail) = name.rsplit_once('_')?;
    let digit = tail.strip_suffix('s')?;
    (digit.len() == 1).then_some(())?;
    Some((prefix, digit.parse().ok()?))
}

/// `<idx>` from `net<idx>.pth`.
fn net_index(name: &str) -> Option<u64> {
    name.strip_prefix("net")?.strip_suffix(".pth")?.parse().ok()
}

pub fn looks_like_nfn(dir: &Path) -> bool {
    subdirs(dir).iter().any(|(name, path)| {
        parse_folder(name).is_some()
            && std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_name().to_str().and_then(net_index).is_some())
    })
}

pub fn split_of(idx: u64) -> Split {
    if idx < TRAIN_END {
        Split::Train
    } else if idx < VAL_END {
        Split::Val
    } else {
        Split::Test
    }
}

pub fn open(dir: &Path) -> Result<Zoo> {
    // prefix -> idx -> (label, path, folder)
    let mut by_prefix: BTreeMap<String, BTreeMap<u64, (u8, PathBuf, String)>> = BTreeMap::new();
    for (name, folder) in subdirs(dir) {
        let Some((prefix, digit)) = parse_folder(&name) else { continue };
        for file in files_under(&folder, 0, &|n| net_index(n).is_some())? {
            let Some(idx) = file.file_name().and_then(|n| n.to_str()).and_then(net_index) else { continue };
            let nets = by_prefix.entry(prefix.to_string()).or_default();
            if let Some((_, other, _)) = nets.get(&idx) {
                return Err(Error::new(&file, format!("network index {idx} also appears as {}", other.display())));
            }
            nets.insert(idx, (digit, file, name.clone()));
        }
    }
    let Some(prefix) = by_prefix.iter().max_by_key(|(_, nets)| nets.len()).map(|(p, _)| p.clone()) else {
        return Err(Error::new(dir, "no <prefix>_<digit>s/net<idx>.pth files"));
    };
    let mut notes: Vec<String> = by_prefix
        .iter()
        .filter(|(p, _)| **p != prefix)
        .map(|(p, nets)| format!("ignored {} networks under prefix '{p}' (using '{prefix}')", nets.len()))
        .collect();
    let nets = by_prefix.remove(&prefix).unwrap_or_default();
    if let Some((&last, _)) = nets.last_key_value()
        && last + 1 != nets.len() as u64
    {
        notes.push(format!("network indices are not contiguous ({} networks, largest index {last})", nets.len()));
    }
    let entries = nets
        .into_iter()
        .map(|(idx, (label, path, folder))| ZooEntry {
            id: format!("{folder}/net{idx}"),
            target: Target::Class(label),
            split: split_of(idx),
            source: EntrySource::File(path),
            psnr: None,
        })
        .collect();
    let mut zoo = Zoo::new(ZooKind::NfnSiren, dir, entries, Some(10), Some(InrSpec::NFN));
    zoo.notes = notes;
    Ok(zoo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_index_split() {
        assert_eq!(parse_folder("randinit_smaller_3s"), Some(("randinit_smaller", 3)));
        assert_eq!(parse_folder("randinit_smaller_13s"), None);
        assert_eq!(parse_folder("checkpoints"), None);
        assert_eq!(net_index("net45000.pth"), Some(45_000));
        assert_eq!(net_index("net.pth"), None);
        assert_eq!(split_of(44_999), Split::Train);
        assert_eq!(split_of(45_000), Split::Val);
        assert_eq!(split_of(50_000), Split::Test);
    }
}
