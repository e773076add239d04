//! Train / validation / test splits, deterministic by seed.
//!
//! [`stratified`] assigns each example to a split so that every class keeps the proportions
//! [`TRAIN_FRACTION`] / [`VAL_FRACTION`] / rest (80 / 10 / 10): per class, its examples are shuffled
//! with a SplitMix64 stream seeded by `(seed, class)` and cut in that order. The same labels and
//! seed give the same assignment on every platform; changing the seed reshuffles.

use crate::rng::SplitMix64;

/// Share of each class that goes to training.
pub const TRAIN_FRACTION: f64 = 0.8;
/// Share of each class that goes to validation (the rest is test).
pub const VAL_FRACTION: f64 = 0.1;

/// Which part of a data set an example belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    /// Parses `train`/`training`, `val`/`valid`/`validation`, `test`/`testing`.
    pub fn parse(s: &str) -> Option<Split> {
        match s.to_ascii_lowercase().as_str() {
            "train" | "training" => Some(Split::Train),
            "val" | "valid" | "validation" => Some(Split::Val),
            "test" | "testing" => Some(Split::Test),
            _ => None,
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The split of every example, stratified by label (80/10/10 per class, see the module doc).
pub fn stratified(labels: &[u8], seed: u64) -> Vec<Split> {
    let mut out = vec![Split::Train; labels.len()];
    for class in 0..=u8::MAX {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        if members.is_empty() {
            continue;
        }
        shuffle(&mut members, &mut SplitMix64::new(mix(seed, class as u64)));
        let n = members.len();
        let n_train = (n as f64 * TRAIN_FRACTION).round() as usize;
        let n_val = ((n as f64 * VAL_FRACTION).round() as usize).min(n - n_train);
        for (rank, &i) in members.iter().enumerate() {
            out[i] = if rank < n_train {
                Split::Train
            } else if rank < n_train + n_val {
                Split::Val
            } else {
                Split::Test
            };
        }
    }
    out
}

/// A seeded permutation of `0..n` (Fisher-Yates with SplitMix64).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, &mut SplitMix64::new(mix(seed, 0x5045_524d)));
    order
}

/// The split of an item identified by a stable key (a file name, a training-run directory),
/// with the same 80/10/10 proportions in expectation: used where items come without labels to
/// stratify by, and where related items (checkpoints of one run) must land in the same split.
pub fn by_key(key: &str, seed: u64) -> Split {
    // FNV-1a, then a SplitMix64 step to spread the bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let u = SplitMix64::new(mix(seed, h)).next_f64();
    if u < TRAIN_FRACTION {
        Split::Train
    } else if u < TRAIN_FRACTION + VAL_FRACTION {
        Split::Val
    } else {
        Split::Test
    }
}

fn shuffle(items: &mut [usize], rng: &mut SplitMix64) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

fn mix(seed: u64, salt: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.rotate_left(29) ^ 0xD1B5_4A32_D192_ED03
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_keeps_proportions_per_class_and_is_deterministic() {
        let labels: Vec<u8> = (0..1000).map(|i| (i % 10) as u8).collect();
        let a = stratified(&labels, 7);
        assert_eq!(a, stratified(&labels, 7));
        assert_ne!(a, stratified(&labels, 8), "another seed reshuffles");
        for class in 0..10u8 {
            let count = |s| (0..1000).filter(|&i| labels[i] == class && a[i] == s).count();
            assert_eq!((count(Split::Train), count(Split::Val), count(Split::Test)), (80, 10, 10));
        }
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = permutation(257, 3);
        assert_ne!(p, (0..257).collect::<Vec<_>>());
        p.sort_unstable();
        assert_eq!(p, (0..257).collect::<Vec<_>>());
    }

    #[test]
    fn key_split_has_roughly_the_documented_proportions() {
        let splits: Vec<Split> = (0..10_000).map(|i| by_key(&format!("run_{i}"), 0)).collect();
        let train = splits.iter().filter(|&&s| s == Split::Train).count();
        let val = splits.iter().filter(|&&s| s == Split::Val).count();
        assert!((7700..8300).contains(&train), "{train}");
        assert!((800..1200).contains(&val), "{val}");
        assert_eq!(by_key("run_3", 0), splits[3]);
    }
}
