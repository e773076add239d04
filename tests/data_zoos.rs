//! Zoo loaders on the fixtures written by tests/fixtures/zoos/generate.py (real torch.save and
//! numpy files laid out like the released data sets), and our own zoo format's round trip.

use std::path::{Path, PathBuf};

use gmnscope::checkpoint::TensorStore;
use gmnscope::data::siren::{Dense, InrSpec, Siren};
use gmnscope::data::zoo::native::{self, IndexEntry, ZooIndex};
use gmnscope::data::{Split, Target, Zoo, ZooKind};

fn zoos_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zoos")
}

fn expected(zoo: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(zoos_dir().join("expected.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json[zoo].as_array().unwrap().clone()
}

/// The store holds exactly the tensors generate.py described, in order.
fn assert_tensors(store: &TensorStore, described: &serde_json::Value, what: &str) {
    let described = described.as_array().unwrap();
    assert_eq!(store.len(), described.len(), "{what}: tensor count");
    for (t, d) in store.tensors().iter().zip(described) {
        assert_eq!(t.name, d["name"].as_str().unwrap(), "{what}");
        let shape: Vec<usize> = d["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(t.shape, shape, "{what}: {}", t.name);
        let v = t.to_f64();
        let close = |a: f64, b: &serde_json::Value, label: &str| {
            let b = b.as_f64().unwrap();
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{what}: {} {label}: {a} vs {b}", t.name);
        };
        close(v.iter().sum(), &d["sum"], "sum");
        close(v.iter().map(|x| x * x).sum(), &d["sum_sq"], "sum of squares");
        close(v[0], &d["first"], "first");
        close(*v.last().unwrap(), &d["last"], "last");
    }
}

fn entry_index(zoo: &Zoo, id: &str) -> usize {
    zoo.entries.iter().position(|e| e.id == id).unwrap_or_else(|| panic!("no entry '{id}' in {:?}", ids(zoo)))
}

fn ids(zoo: &Zoo) -> Vec<&str> {
    zoo.entries.iter().map(|e| e.id.as_str()).collect()
}

#[test]
fn dwsnets_mnist_layout() {
    // The parent of mnist-inrs/ is accepted too.
    let zoo = Zoo::open(&zoos_dir().join("dwsnets_mnist")).unwrap();
    assert_eq!(zoo.kind, ZooKind::DwsnetsMnist);
    assert!(zoo.root.ends_with("mnist-inrs"));
    assert_eq!((zoo.num_classes, zoo.inr), (Some(10), Some(InrSpec::DWSNETS)));
    let expected = expected("dwsnets_mnist");
    assert_eq!(zoo.len(), expected.len());
    for e in &expected {
        let i = entry_index(&zoo, e["id"].as_str().unwrap());
        let entry = &zoo.entries[i];
        assert_eq!(entry.target, Target::Class(e["label"].as_u64().unwrap() as u8));
        match e["split"].as_str().unwrap() {
            "test" => assert_eq!(entry.split, Split::Test),
            _ => assert_ne!(entry.split, Split::Test),
        }
        assert_tensors(&zoo.load(i).unwrap(), &e["tensors"], &entry.id);
    }
    // 6 training INRs: round(6 / 12) = 1 moves to validation, the same one every time.
    assert_eq!(zoo.split_counts(), [5, 1, 2]);
    let again = Zoo::open(&zoos_dir().join("dwsnets_mnist/mnist-inrs")).unwrap();
    assert_eq!(again.split(Split::Val), zoo.split(Split::Val));
}

#[test]
fn dwsnets_fmnist_layout_with_int_and_tensor_labels() {
    let zoo = Zoo::open(&zoos_dir().join("dwsnets_fmnist")).unwrap();
    assert_eq!(zoo.kind, ZooKind::DwsnetsFmnist);
    let expected = expected("dwsnets_fmnist");
    assert_eq!(zoo.len(), expected.len());
    for e in &expected {
        let i = entry_index(&zoo, e["id"].as_str().unwrap());
        let entry = &zoo.entries[i];
        assert_eq!(entry.target, Target::Class(e["label"].as_u64().unwrap() as u8), "{}", entry.id);
        assert_eq!(entry.split.name(), e["split"].as_str().unwrap());
        let store = zoo.load(i).unwrap();
        assert!(store.get("label").is_none(), "the label is not a weight");
        assert_tensors(&store, &e["tensors"], &entry.id);
    }
    assert_eq!(zoo.split_counts(), [3, 1, 2]);
}

#[test]
fn dwsnets_fmnist_release_with_splits_json() {
    let zoo = Zoo::open(&zoos_dir().join("dwsnets_fmnist_splits")).unwrap();
    assert_eq!(zoo.kind, ZooKind::DwsnetsFmnist);
    let expected = expected("dwsnets_fmnist_splits");
    assert_eq!(zoo.len(), expected.len(), "the file splits.json does not list is skipped");
    assert!(zoo.notes.iter().any(|n| n.contains("skipped 1")), "{:?}", zoo.notes);
    for e in &expected {
        let i = entry_index(&zoo, e["id"].as_str().unwrap());
        assert_eq!(zoo.entries[i].split.name(), e["split"].as_str().unwrap());
        assert_eq!(zoo.entries[i].target, Target::Class(e["label"].as_u64().unwrap() as u8));
        assert_tensors(&zoo.load(i).unwrap(), &e["tensors"], &zoo.entries[i].id);
    }
}

#[test]
fn nfn_siren_layout_splits_by_index() {
    let zoo = Zoo::open(&zoos_dir().join("nfn_mnist")).unwrap();
    assert_eq!(zoo.kind, ZooKind::NfnSiren);
    assert_eq!(zoo.inr, Some(InrSpec::NFN));
    let expected = expected("nfn_mnist");
    assert_eq!(zoo.len(), expected.len());
    for e in &expected {
        let i = entry_index(&zoo, e["id"].as_str().unwrap());
        assert_eq!(zoo.entries[i].split.name(), e["split"].as_str().unwrap(), "{}", zoo.entries[i].id);
        assert_eq!(zoo.entries[i].target, Target::Class(e["label"].as_u64().unwrap() as u8));
        let store = zoo.load(i).unwrap();
        assert_tensors(&store, &e["tensors"], &zoo.entries[i].id);
        // NFN names differ from DWSNets', yet the SIREN reads the same.
        let siren = Siren::from_store(&store).unwrap();
        assert_eq!((siren.in_features(), siren.out_features(), siren.layers.len()), (2, 1, 3));
    }
    assert_eq!(zoo.split_counts(), [3, 2, 1]);
}

#[test]
fn small_cnn_zoo_rows_are_keras_networks_the_graph_builder_accepts() {
    let zoo = Zoo::open(&zoos_dir().join("small_cnn_zoo")).unwrap();
    assert_eq!(zoo.kind, ZooKind::SmallCnnZoo);
    assert_eq!(zoo.num_classes, None);
    let expected = expected("small_cnn_zoo");
    assert_eq!(zoo.len(), expected.len(), "the row without accuracy is skipped");
    assert!(zoo.notes.iter().any(|n| n.contains("skipped 1")));
    for e in &expected {
        let i = entry_index(&zoo, e["id"].as_str().unwrap());
        let Target::Value(v) = zoo.entries[i].target else { panic!("regression target expected") };
        assert!((v as f64 - e["value"].as_f64().unwrap()).abs() < 1e-6);
        let store = zoo.load(i).unwrap();
        assert_tensors(&store, &e["tensors"], &zoo.entries[i].id);

        let arch = gmnscope::arch::recover(&store);
        let kinds: Vec<String> = arch.layers.iter().map(|l| l.kind.describe()).collect();
        assert_eq!(
            kinds,
            [
                "Conv2d(1 -> 16, kernel [3, 3], bias)",
                "Conv2d(16 -> 16, kernel [3, 3], bias)",
                "Conv2d(16 -> 16, kernel [3, 3], bias)",
                "Linear(16 -> 10, bias)"
            ],
            "{:?}",
            arch.notes
        );
        assert!(arch.unrecognized.is_empty(), "{:?}", arch.unrecognized);
        assert_eq!(arch.chain_breaks(), 0);
        let graph = gmnscope::graph::build(&arch, &store).unwrap();
        assert_eq!(graph.num_parameters(), 4970);
    }
    // Two checkpoints of one training run share a split.
    assert_eq!(zoo.entries[entry_index(&zoo, "row0")].split, zoo.entries[entry_index(&zoo, "row1")].split);
}

#[test]
fn small_cnn_zoo_with_inconsistent_files_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let src = zoos_dir().join("small_cnn_zoo");
    for f in ["weights.npy", "metrics.csv.gz"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    // A layout that runs past the 4970 columns.
    std::fs::write(
        tmp.path().join("layout.csv"),
        ",varname,start_idx,end_idx,size,shape\n0,a/kernel:0,4900,5044,144,\"(3, 3, 1, 16)\"\n",
    )
    .unwrap();
    let err = Zoo::open(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("layout.csv") && err.contains("4900..5044"), "{err}");
    // Metrics with fewer rows than weights.npy.
    std::fs::copy(src.join("layout.csv"), tmp.path().join("layout.csv")).unwrap();
    std::fs::remove_file(tmp.path().join("metrics.csv.gz")).unwrap();
    std::fs::write(tmp.path().join("metrics.csv"), "modeldir,test_accuracy\nrun,0.5\n").unwrap();
    let err = Zoo::open(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("metrics.csv") && err.contains("1 rows but weights.npy has 5"), "{err}");
}

fn test_siren(seed: u64) -> Vec<Dense> {
    let mut rng = gmnscope::rng::SplitMix64::new(seed);
    let mut dense = |outputs: usize, inputs: usize| Dense {
        weight: (0..outputs * inputs).map(|_| rng.uniform(-0.2, 0.2)).collect(),
        bias: (0..outputs).map(|_| rng.uniform(-0.1, 0.1)).collect(),
        inputs,
        outputs,
    };
    vec![dense(32, 2), dense(32, 32), dense(1, 32)]
}

fn index_with(entries: Vec<IndexEntry>) -> ZooIndex {
    ZooIndex {
        format: native::FORMAT.into(),
        version: native::VERSION,
        image_source: "procedural:seed=0".into(),
        num_classes: 10,
        architecture: "siren 2-32-32-1".into(),
        omega_0: 30.0,
        output_offset: 0.5,
        side: 28,
        coordinates: "ij".into(),
        steps: 10,
        target_psnr: Some(40.0),
        lr: 5e-4,
        batch: 2,
        seed: 0,
        shared_init: false,
        recipe: "dwsnets".into(),
        split_seed: 0,
        entries,
    }
}

#[test]
fn our_zoo_format_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let mut entries = Vec::new();
    let mut sirens = Vec::new();
    for i in 0..3 {
        let layers = test_siren(i as u64);
        let file = native::inr_file_name(i);
        gmnscope::checkpoint::writer::write_safetensors(&tmp.path().join(&file), &native::inr_tensors(&layers))
            .unwrap();
        entries.push(IndexEntry {
            file,
            label: i as u8 + 4,
            split: Split::ALL[i],
            psnr: 30.0 + i as f32,
            image_index: 10 * i,
        });
        sirens.push(layers);
    }
    let index = index_with(entries);
    index.write(tmp.path()).unwrap();
    assert_eq!(ZooIndex::read(tmp.path()).unwrap(), index);

    let zoo = Zoo::open(tmp.path()).unwrap();
    assert_eq!((zoo.kind, zoo.num_classes, zoo.inr), (ZooKind::Gmnscope, Some(10), Some(InrSpec::DWSNETS)));
    assert_eq!(zoo.split_counts(), [1, 1, 1]);
    for (i, layers) in sirens.iter().enumerate() {
        assert_eq!(zoo.entries[i].target, Target::Class(i as u8 + 4));
        assert_eq!(zoo.entries[i].psnr, Some(30.0 + i as f32));
        let store = zoo.load(i).unwrap();
        let names: Vec<&str> = store.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["seq.0.weight", "seq.0.bias", "seq.1.weight", "seq.1.bias", "seq.2.weight", "seq.2.bias"]);
        assert_eq!(store.get("seq.1.weight").unwrap().shape, [32, 32]);
        assert_eq!(Siren::from_store(&store).unwrap().layers, *layers);
        // The GMN sees a 2-32-32-1 MLP.
        let arch = gmnscope::arch::recover(&store);
        assert_eq!(arch.layers.len(), 3);
        assert_eq!(gmnscope::graph::build(&arch, &store).unwrap().num_parameters(), 1185);
    }
}

#[test]
fn our_zoo_index_is_validated() {
    let tmp = tempfile::tempdir().unwrap();
    let entry =
        |file: &str, label| IndexEntry { file: file.into(), label, split: Split::Train, psnr: 0.0, image_index: 0 };
    for (entries, expect) in [
        (vec![entry("../escape.safetensors", 1)], "not a plain file name"),
        (vec![entry("a.safetensors", 1), entry("a.safetensors", 2)], "listed twice"),
        (vec![entry("a.safetensors", 12)], "label 12 but the zoo has 10 classes"),
    ] {
        index_with(entries).write(tmp.path()).unwrap();
        let err = Zoo::open(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("index.json") && err.contains(expect), "{err}");
    }
    std::fs::write(tmp.path().join("index.json"), "{\"format\": \"something-else\"}").unwrap();
    assert!(Zoo::open(tmp.path()).unwrap_err().to_string().contains("not a valid zoo index"));
}

#[test]
fn a_folder_that_is_no_zoo_says_what_was_looked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Zoo::open(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("not a zoo") && err.contains("index.json") && err.contains("weights.npy"), "{err}");
    let err = Zoo::open(&tmp.path().join("missing")).unwrap_err().to_string();
    assert!(err.contains("not a directory"), "{err}");
}
