//! `gmnscope retrieve`: a permuted copy of a zoo member (the same function) retrieves that member
//! first at distance ~0, for random permutations of both hidden layers; the zoo's embedding is
//! cached next to the run and served from there the second time.

use std::process::Command;

use gmnscope::checkpoint::writer::{OwnedTensor, write_safetensors};
use gmnscope::rng::SplitMix64;

use crate::common::gmnscope_bin;

fn permutation(rng: &mut SplitMix64, n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        p.swap(i, rng.below(i as u64 + 1) as usize);
    }
    p
}

/// The SIREN 2-32-32-1 in `src` with both hidden layers' neurons permuted (the same function).
fn permuted_copy(src: &std::path::Path, dst: &std::path::Path, rng: &mut SplitMix64) {
    let store = gmnscope::checkpoint::open(src).unwrap();
    let get = |name: &str| {
        let t = store.get(name).unwrap();
        (t.shape.clone(), t.to_f32())
    };
    let (p0, p1) = (permutation(rng, 32), permutation(rng, 32));
    let mut tensors = Vec::new();
    for (name, (shape, values)) in
        ["seq.0.weight", "seq.0.bias", "seq.1.weight", "seq.1.bias", "seq.2.weight", "seq.2.bias"]
            .into_iter()
            .map(|n| (n, get(n)))
    {
        let cols = if shape.len() == 2 { shape[1] } else { 1 };
        let rows = shape[0];
        // Rows follow the layer's own neurons, columns the previous layer's.
        let row_perm: Option<&[usize]> = match name {
            "seq.0.weight" | "seq.0.bias" => Some(&p0),
            "seq.1.weight" | "seq.1.bias" => Some(&p1),
            _ => None,
        };
        let col_perm: Option<&[usize]> = match name {
            "seq.1.weight" => Some(&p0),
            "seq.2.weight" => Some(&p1),
            _ => None,
        };
        let mut out = vec![0.0f32; values.len()];
        for r in 0..rows {
            for c in 0..cols {
                let (sr, sc) = (row_perm.map_or(r, |p| p[r]), col_perm.map_or(c, |p| p[c]));
                out[r * cols + c] = values[sr * cols + sc];
            }
        }
        tensors.push(OwnedTensor::f32(name, shape, &out));
    }
    write_safetensors(dst, &tensors).unwrap();
}

#[cfg(feature = "burn")]
#[test]
fn a_permuted_zoo_member_retrieves_itself_first_and_the_zoo_embedding_is_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let (zoo, run) = (tmp.path().join("zoo"), tmp.path().join("run"));
    let ok = |args: &[&str]| {
        let out = Command::new(gmnscope_bin()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    ok(&["fit-inrs", "--demo", "--count", "24", "--steps", "20", "--out", zoo.to_str().unwrap()]);
    ok(&["train", "--zoo", zoo.to_str().unwrap(), "--out", run.to_str().unwrap(), "--epochs", "2", "--hidden", "16"]);
    let mut rng = SplitMix64::new(11);
    for member in [3usize, 17] {
        let query = tmp.path().join(format!("permuted{member}.safetensors"));
        permuted_copy(&zoo.join(format!("inr_{member:06}.safetensors")), &query, &mut rng);
        let out = ok(&[
            "retrieve",
            "--gmn",
            run.to_str().unwrap(),
            "--zoo",
            zoo.to_str().unwrap(),
            query.to_str().unwrap(),
            "-k",
            "3",
            "--json",
        ]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let hits = report["hits"].as_array().unwrap();
        assert_eq!(hits.len(), 3);
        assert_eq!(hits[0]["id"], format!("inr_{member:06}"), "{report}");
        let (first, second) = (hits[0]["distance"].as_f64().unwrap(), hits[1]["distance"].as_f64().unwrap());
        assert!(first < 1e-4 * second.max(1e-3), "distance ~0: {first} (next {second})");
        // The first query embedded the zoo; every later one reads the cache.
        assert_eq!(report["cached"], member != 3, "{report}");
    }
    let cache: Vec<_> = std::fs::read_dir(run.join("embeddings")).unwrap().collect();
    assert_eq!(cache.len(), 1);
    // A GMN that cannot read the query says so, naming the file.
    let out = Command::new(gmnscope_bin())
        .args(["retrieve", "--gmn", run.to_str().unwrap(), "--zoo", zoo.to_str().unwrap(), "demo:resnet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("demo:resnet: cannot run the GMN on it"));
}
