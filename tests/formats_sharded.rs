//! Sharded checkpoints (`model.safetensors.index.json`, `pytorch_model.bin.index.json`): the
//! shards open as one model, by the index file or its directory, lazily, and bad indexes are
//! clear errors naming the index.

use std::io::Write;
use std::path::Path;

use gmnscope::checkpoint::{self, Format};

use crate::formats_safetensors::fixture;

/// Writes a safetensors file whose tensors are `(name, shape)` in bf16, without their data: the
/// header is written and the file extended to its full length, so the data is a sparse hole.
fn sparse_safetensors(path: &Path, tensors: &[(String, Vec<usize>)]) -> u64 {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, shape) in tensors {
        let bytes = 2 * shape.iter().map(|&d| d as u64).product::<u64>();
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut json = serde_json::to_vec(&serde_json::Value::Object(header)).expect("json");
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut file = std::fs::File::create(path).expect("create shard");
    file.write_all(&(json.len() as u64).to_le_bytes()).expect("write");
    file.write_all(&json).expect("write");
    file.set_len(8 + json.len() as u64 + offset).expect("extend sparsely");
    offset / 2
}

/// Llama-7B's tensors with their Hugging Face names and shapes.
fn llama_7b() -> Vec<(String, Vec<usize>)> {
    let (hidden, intermediate, vocab, layers) = (4096, 11008, 32000, 32);
    let mut out = vec![("model.embed_tokens.weight".to_string(), vec![vocab, hidden])];
    for i in 0..layers {
        let p = format!("model.layers.{i}");
        for proj in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            out.push((format!("{p}.self_attn.{proj}.weight"), vec![hidden, hidden]));
        }
        out.push((format!("{p}.mlp.gate_proj.weight"), vec![intermediate, hidden]));
        out.push((format!("{p}.mlp.up_proj.weight"), vec![intermediate, hidden]));
        out.push((format!("{p}.mlp.down_proj.weight"), vec![hidden, intermediate]));
        out.push((format!("{p}.input_layernorm.weight"), vec![hidden]));
        out.push((format!("{p}.post_attention_layernorm.weight"), vec![hidden]));
    }
    out.push(("model.norm.weight".to_string(), vec![hidden]));
    out.push(("lm_head.weight".to_string(), vec![vocab, hidden]));
    out
}

fn write_index(path: &Path, weight_map: &[(String, String)]) {
    let map: serde_json::Map<String, serde_json::Value> =
        weight_map.iter().map(|(t, s)| (t.clone(), serde_json::Value::String(s.clone()))).collect();
    let doc = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
    std::fs::write(path, serde_json::to_vec_pretty(&doc).expect("json")).expect("write index");
}

/// A Llama-7B-shaped set of two sparse shards in `dir`; returns the parameter count.
fn llama_set(dir: &Path) -> u64 {
    let tensors = llama_7b();
    let half = tensors.len() / 2;
    let shards = [
        ("model-00001-of-00002.safetensors", &tensors[..half]),
        ("model-00002-of-00002.safetensors", &tensors[half..]),
    ];
    let mut total = 0;
    let mut map = Vec::new();
    for (name, part) in shards {
        total += sparse_safetensors(&dir.join(name), part);
        map.extend(part.iter().map(|(t, _)| (t.clone(), name.to_string())));
    }
    write_index(&dir.join("model.safetensors.index.json"), &map);
    total
}

#[test]
fn llama_7b_shaped_shards_open_as_one_model_lazily() {
    let dir = tempfile::tempdir().expect("tempdir");
    let total = llama_set(dir.path());
    assert_eq!(total, 6_738_415_616, "Llama-7B's parameter count");
    for path in [dir.path().to_path_buf(), dir.path().join("model.safetensors.index.json")] {
        let store = checkpoint::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.format, Format::Safetensors);
        assert_eq!(store.len(), 291);
        assert_eq!(store.num_parameters() as u64, total);
        assert!(store.path.ends_with("model.safetensors.index.json"));
        // Shard order, then file order: the model's own order.
        assert_eq!(store.tensors()[0].name, "model.embed_tokens.weight");
        assert_eq!(store.tensors()[290].name, "lm_head.weight");
    }
    // The layer overview: 32 decoder blocks' projections are recovered from the merged store.
    let store = checkpoint::open(dir.path()).expect("opens");
    let arch = gmnscope::arch::recover(&store);
    let q_projections = arch.layers.iter().filter(|l| l.tensors.iter().any(|t| t.ends_with("q_proj.weight"))).count();
    assert_eq!(q_projections, 32, "{:?}", arch.layers.iter().map(|l| &l.name).take(12).collect::<Vec<_>>());
}

#[test]
fn pytorch_bin_shards_open_as_one_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut map = Vec::new();
    let mut expected = Vec::new();
    for (fixture_name, shard) in
        [("mlp_zip.pt", "pytorch_model-00001-of-00002.bin"), ("cnn_bn.pt", "pytorch_model-00002-of-00002.bin")]
    {
        std::fs::copy(fixture("pytorch", fixture_name), dir.path().join(shard)).expect("copy");
        let store = checkpoint::open(dir.path().join(shard)).expect("shard opens alone");
        for t in store.tensors() {
            map.push((t.name.clone(), shard.to_string()));
            expected.push((t.name.clone(), t.shape.clone(), t.to_f64()));
        }
    }
    write_index(&dir.path().join("pytorch_model.bin.index.json"), &map);
    let store = checkpoint::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(store.format, Format::PytorchZip);
    let got: Vec<_> = store.tensors().iter().map(|t| (t.name.clone(), t.shape.clone(), t.to_f64())).collect();
    assert_eq!(got, expected, "every tensor of every shard, values intact");
}

#[test]
fn bad_indexes_are_clear_errors_naming_the_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tensors = vec![("a.weight".to_string(), vec![2, 2]), ("b.weight".to_string(), vec![3])];
    sparse_safetensors(&dir.path().join("s1.safetensors"), &tensors);
    let index = dir.path().join("model.safetensors.index.json");
    let pair = |t: &str, s: &str| (t.to_string(), s.to_string());
    let cases: Vec<(Vec<(String, String)>, &str)> = vec![
        (vec![pair("a.weight", "../s1.safetensors")], "not a plain file name"),
        (vec![pair("a.weight", "/etc/passwd")], "not a plain file name"),
        (vec![pair("a.weight", "sub/s1.safetensors")], "not a plain file name"),
        (vec![pair("a.weight", "s2.safetensors")], "s2.safetensors' is missing"),
        (vec![pair("a.weight", "s1.safetensors"), pair("c.weight", "s1.safetensors")], "tensor 'c.weight'"),
        (vec![pair("a.weight", "model.safetensors.index.json")], "not a model file"),
        (vec![], "lists no tensors"),
    ];
    for (map, expected) in cases {
        write_index(&index, &map);
        let err = checkpoint::open(dir.path()).expect_err(expected).to_string();
        assert!(err.contains("model.safetensors.index.json") && err.contains(expected), "{expected}: {err}");
    }
    std::fs::write(&index, b"{\"weight_map\": [1, 2").expect("write");
    let err = checkpoint::open(&index).expect_err("not json").to_string();
    assert!(err.contains("invalid shard index"), "{err}");
    #[cfg(unix)]
    {
        let outside = tempfile::tempdir().expect("tempdir");
        sparse_safetensors(&outside.path().join("x.safetensors"), &tensors);
        std::os::unix::fs::symlink(outside.path().join("x.safetensors"), dir.path().join("link.safetensors"))
            .expect("symlink");
        write_index(&index, &[pair("a.weight", "link.safetensors")]);
        let err = checkpoint::open(&index).expect_err("symlink").to_string();
        assert!(err.contains("outside the index's directory"), "{err}");
    }
    // A directory without any model.
    let empty = tempfile::tempdir().expect("tempdir");
    let err = checkpoint::open(empty.path()).expect_err("empty dir").to_string();
    assert!(err.contains("without a model"), "{err}");
}

#[test]
fn random_shardings_reassemble_the_same_model() {
    let mut rng = gmnscope::rng::SplitMix64::new(3);
    for case in 0..40 {
        let dir = tempfile::tempdir().expect("tempdir");
        let count = 1 + rng.below(12) as usize;
        let tensors: Vec<(String, Vec<usize>)> = (0..count)
            .map(|i| (format!("layer{i}.weight"), vec![1 + rng.below(5) as usize, 1 + rng.below(5) as usize]))
            .collect();
        let shards = 1 + rng.below(count as u64) as usize;
        // Contiguous runs, as the writers split a model.
        let mut map = Vec::new();
        let mut start = 0;
        for s in 0..shards {
            let end = if s + 1 == shards { count } else { start + (count - start) / (shards - s) };
            let name = format!("model-{:05}-of-{shards:05}.safetensors", s + 1);
            sparse_safetensors(&dir.path().join(&name), &tensors[start..end]);
            map.extend(tensors[start..end].iter().map(|(t, _)| (t.clone(), name.clone())));
            start = end;
        }
        write_index(&dir.path().join("model.safetensors.index.json"), &map);
        let store = checkpoint::open(dir.path()).unwrap_or_else(|e| panic!("case {case}: {e}"));
        let got: Vec<_> = store.tensors().iter().map(|t| (t.name.clone(), t.shape.clone())).collect();
        assert_eq!(got, tensors, "case {case}");
    }
}

#[test]
fn inspect_takes_a_sharded_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tensors = vec![("fc1.weight".to_string(), vec![8, 4]), ("fc1.bias".to_string(), vec![8])];
    let more = vec![("fc2.weight".to_string(), vec![2, 8]), ("fc2.bias".to_string(), vec![2])];
    sparse_safetensors(&dir.path().join("a.safetensors"), &tensors);
    sparse_safetensors(&dir.path().join("b.safetensors"), &more);
    let map: Vec<(String, String)> = tensors
        .iter()
        .map(|(t, _)| (t.clone(), "a.safetensors".to_string()))
        .chain(more.iter().map(|(t, _)| (t.clone(), "b.safetensors".to_string())))
        .collect();
    write_index(&dir.path().join("model.safetensors.index.json"), &map);
    let out = std::process::Command::new(crate::common::gmnscope_bin())
        .args(["inspect", "--json"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!((report["tensors"].as_u64(), report["parameters"].as_u64()), (Some(4), Some(32 + 8 + 16 + 2)));
    assert_eq!(report["layers"].as_array().map(|l| l.len()), Some(2), "{report}");
}

/// Issue 12, in the app: the open job (tensors, architecture, graph, layout, bands, GPU-ready
/// arrays) reads headers only. Its heap stays small (no statistics sample, no disc per node), no
/// layer statistics are computed at open, and a selected layer's statistics are a bounded sample.
#[cfg(feature = "gui")]
#[test]
fn the_app_opens_a_llama_7b_shaped_set_without_reading_its_weights() {
    use gmnscope::jobs;
    use gmnscope::ui::model::graph_view::renderer::NODE_INSTANCE_CAP;
    use gmnscope::ui::model::loader::{self, ModelSource};

    let dir = tempfile::tempdir().expect("tempdir");
    llama_set(dir.path());
    let source = ModelSource::File(dir.path().to_path_buf());
    let (model, peak) = crate::alloc_meter::peak_during(|| jobs::run_here(|r| loader::load(source, r)));
    let model = model.unwrap_or_else(|e| panic!("{e}"));
    assert!(model.stats_deferred, "6.7B parameters: statistics are deferred");
    assert!(model.layers.iter().all(|l| l.stats.is_none() && l.histogram.is_none()), "nothing sampled at open");
    let q = model.layers.iter().filter(|l| l.tensors.iter().any(|t| t.name.ends_with("q_proj.weight"))).count();
    assert_eq!(q, 32, "the layer overview lists every decoder block's attention");
    let data = model.graph.as_ref().unwrap_or_else(|e| panic!("{e}"));
    assert!(data.graph.num_nodes() > NODE_INSTANCE_CAP && data.edges.is_none());
    assert!(data.geometry.nodes.is_empty(), "node blocks are bars, not 1.2M discs");
    assert_eq!(data.geometry.node_bars.len(), data.graph.node_blocks().len());
    assert_eq!(data.geometry.blocks.len(), data.quads.len());
    // 1.2M node positions and their hit-test grid are most of it (~25 MB).
    assert!(peak < 64 << 20, "the open job held {peak} bytes at its peak");

    // On demand (the app runs this as a job when a layer is selected): a bounded sample.
    let layer = model.layers.iter().find(|l| l.name.ends_with("layers.3.mlp.down_proj")).expect("down_proj");
    let names: Vec<String> = layer.tensors.iter().filter(|t| t.is_parameter).map(|t| t.name.clone()).collect();
    let ((stats, histogram), peak) = crate::alloc_meter::peak_during(|| loader::layer_stats(&model.store, &names));
    let stats = stats.expect("a sparse file reads as zeros");
    assert!(stats.count <= (1 << 20) + 4096 && stats.count < layer.parameters / 10, "{} sampled", stats.count);
    assert_eq!((stats.mean, stats.std), (0.0, 0.0));
    assert_eq!(histogram.expect("histogram").counts.iter().sum::<u64>(), stats.count as u64);
    assert!(peak < 32 << 20, "one layer's sample held {peak} bytes");
}
