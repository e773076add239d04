//! IDX image sets: the real MNIST / Fashion-MNIST files in ../shared/data (reference values
//! computed with Python: gzip + numpy), corrupted files, splits, and the procedural set.

use std::path::{Path, PathBuf};

use gmnscope::data::idx::{self, ImageSet};
use gmnscope::data::{Split, procedural};

fn shared_data(name: &str) -> Option<PathBuf> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data")).join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: {} is absent (the real data set is not on this machine)", dir.display());
        None
    }
}

/// Sum of all pixels and sum of pixel * (flat index mod 251), as computed by numpy.
fn checksums(set: &ImageSet) -> (u64, u64) {
    let sum = set.images.iter().map(|&p| p as u64).sum();
    let weighted = set.images.iter().enumerate().map(|(i, &p)| p as u64 * (i % 251) as u64).sum();
    (sum, weighted)
}

fn histogram(labels: &[u8]) -> Vec<usize> {
    let mut h = vec![0; 10];
    for &l in labels {
        h[l as usize] += 1;
    }
    h
}

#[test]
fn real_mnist_matches_python_reference() {
    let Some(dir) = shared_data("mnist") else { return };
    let set = ImageSet::open_dir(&dir).unwrap();
    assert_eq!((set.len(), set.rows, set.cols), (10_000, 28, 28));
    assert_eq!(histogram(&set.labels), [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
    assert_eq!(set.labels[..10], [9, 3, 7, 0, 9, 7, 7, 9, 6, 5]);
    assert_eq!(checksums(&set), (262_146_600, 32_806_373_926));
    let first = set.image(0).unwrap();
    assert_eq!(first.iter().map(|&p| p as u64).sum::<u64>(), 28_397);
    assert_eq!(first[14 * 28 + 14], 253);

    // 80/10/10 per class, deterministic by seed.
    let splits = set.splits(0);
    assert_eq!(splits, set.splits(0));
    for class in 0..10u8 {
        let n = set.labels.iter().filter(|&&l| l == class).count();
        let count = |s| (0..set.len()).filter(|&i| set.labels[i] == class && splits[i] == s).count();
        assert_eq!(count(Split::Train), (n as f64 * 0.8).round() as usize);
        assert_eq!(count(Split::Val), (n as f64 * 0.1).round() as usize);
    }
}

/// The shared Fashion-MNIST image file is inconsistent: its header says 70,002 images but it
/// holds the pixels of 70,000 (the label file has 70,002 labels). The reader must say so rather
/// than invent two images; the labels themselves read fine.
#[test]
fn real_fashion_mnist_truncated_image_file_is_reported() {
    let Some(dir) = shared_data("fashion-mnist") else { return };
    let err = ImageSet::open_dir(&dir).unwrap_err().to_string();
    assert!(
        err.contains("images-idx3-ubyte.gz")
            && err.contains("[70002, 28, 28] needs 54881568 bytes")
            && err.contains("holds only 54880000"),
        "{err}"
    );
    let labels = idx::read_labels(&dir.join("labels-idx1-ubyte.gz")).unwrap();
    let mut expected = vec![7000; 10];
    expected[0] = 7002;
    assert_eq!(histogram(&labels), expected);
    assert_eq!(labels[..10], [8, 9, 1, 9, 2, 8, 0, 0, 5, 7]);
}

#[test]
fn corrupted_real_headers_are_errors_naming_the_file() {
    let Some(dir) = shared_data("mnist") else { return };
    let (n, rows, cols, pixels) = idx::read_images(&dir.join("images-idx3-ubyte.gz")).unwrap();
    let raw = idx::encode(&[n, rows, cols], &pixels);
    let tmp = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "wrong-magic",
            {
                let mut b = raw.clone();
                b[3] = 0x01;
                b
            },
            "magic is 2049",
        ),
        (
            "count-too-big",
            {
                let mut b = raw.clone();
                b[4..8].copy_from_slice(&10_001u32.to_be_bytes());
                b
            },
            "needs 7840800 bytes but the file has 7840016",
        ),
        ("truncated", raw[..raw.len() - 1].to_vec(), "needs 7840016 bytes but the file has 7840015"),
        ("header-only", raw[..10].to_vec(), "ends inside the IDX header"),
    ];
    for (name, bytes, expect) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let err = idx::read_images(&path).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains(expect), "{name}: {err}");
    }
}

#[test]
fn procedural_set_is_deterministic_and_shaped_like_mnist() {
    let set = procedural::generate(100, 0);
    assert_eq!((set.len(), set.rows, set.cols), (100, 28, 28));
    assert_eq!(set, procedural::generate(100, 0));
    assert_eq!(histogram(&set.labels), [10; 10]);
    assert!(set.source.starts_with("procedural"));
    // Round trip through IDX files, as a user could export it.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("images-idx3-ubyte"), idx::encode(&[100, 28, 28], &set.images)).unwrap();
    std::fs::write(tmp.path().join("labels-idx1-ubyte"), idx::encode(&[100], &set.labels)).unwrap();
    let back = ImageSet::open_dir(tmp.path()).unwrap();
    assert_eq!((back.images, back.labels), (set.images, set.labels));
}
