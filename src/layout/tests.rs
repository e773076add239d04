use super::*;
use crate::checkpoint::writer::{OwnedTensor, to_safetensors_bytes};
use crate::checkpoint::{Blob, TensorStore};
use crate::graph::{self, NodeRole};
use crate::rng::SplitMix64;

fn store_of(tensors: &[OwnedTensor]) -> TensorStore {
    crate::checkpoint::safetensors::read("test.safetensors".as_ref(), Blob::from_vec(to_safetensors_bytes(tensors)))
        .expect("valid safetensors")
}

fn graph_of(store: &TensorStore) -> ParamGraph {
    graph::build(&crate::arch::recover(store), store).expect("graph builds")
}

fn demo_graph(name: &str) -> ParamGraph {
    graph_of(&crate::demo::open(name).expect("demo opens"))
}

#[test]
fn siren_layout_has_one_column_per_layer_index_and_ordered_inputs() {
    let g = demo_graph("siren");
    let layout = compute(&g, &LayoutOptions::default());
    assert_eq!(layout.positions.len(), g.num_nodes());
    assert_eq!(layout.blocks.len(), g.node_blocks().len());
    // SIREN 2-32-32-1: layer indices 0..=3.
    let layers: Vec<i64> = layout.columns.iter().map(|c| c.layer_index).collect();
    assert_eq!(layers, vec![0, 1, 2, 3]);
    assert!(layout.positions.iter().all(|p| p[0].is_finite() && p[1].is_finite()));
    for (b, e) in g.node_blocks().iter().zip(&layout.blocks) {
        let col = layout.columns[e.column];
        assert_eq!(col.layer_index, b.layer_index);
        if b.role == NodeRole::Parameter {
            assert!(e.x < col.x, "parameter node {} sits left of its column", b.label);
        } else {
            assert_eq!(e.x, col.x);
        }
        if b.ordered {
            // Inputs and final outputs keep their order, top to bottom.
            let ys: Vec<f32> = b.range().map(|id| layout.positions[id][1]).collect();
            assert!(ys.windows(2).all(|w| w[0] < w[1]), "{} keeps its order", b.label);
        }
    }
    // Neuron columns are centred on y = 0.
    let hidden = g.node_blocks().iter().position(|b| b.len == 32).unwrap();
    let e = layout.blocks[hidden];
    assert!((e.y0 + e.y1).abs() < 1e-4, "centred: {e:?}");
    assert!(layout.crossings_reduced);
}

#[test]
fn crossing_reduction_only_permutes_slots_within_blocks() {
    let g = demo_graph("siren");
    let plain = compute(&g, &LayoutOptions { crossing_sweeps: 0, ..LayoutOptions::default() });
    let reduced = compute(&g, &LayoutOptions::default());
    for b in g.node_blocks() {
        let mut a: Vec<f32> = b.range().map(|id| plain.positions[id][1]).collect();
        let mut c: Vec<f32> = b.range().map(|id| reduced.positions[id][1]).collect();
        a.sort_by(f32::total_cmp);
        c.sort_by(f32::total_cmp);
        assert_eq!(a, c, "block {} uses the same slots", b.label);
    }
}

/// A 4-4-4 MLP whose hidden neuron `o` is wired (strongly) to input `perm[o]` and output
/// `perm[o]`: barycentric ordering must put hidden neuron `o` in slot `perm[o]`.
#[test]
fn crossing_reduction_untangles_a_permuted_hidden_layer() {
    let perm = [2usize, 0, 3, 1];
    let mut w1 = vec![0.001f32; 16];
    let mut w2 = vec![0.001f32; 16];
    for (o, &p) in perm.iter().enumerate() {
        w1[o * 4 + p] = 1.0; // W1[o, perm[o]]
        w2[p * 4 + o] = 1.0; // W2[perm[o], o]
    }
    let store = store_of(&[
        OwnedTensor::f32("0.weight", vec![4, 4], &w1),
        OwnedTensor::f32("0.bias", vec![4], &[0.0; 4]),
        OwnedTensor::f32("1.weight", vec![4, 4], &w2),
        OwnedTensor::f32("1.bias", vec![4], &[0.0; 4]),
    ]);
    let g = graph_of(&store);
    let layout = compute(&g, &LayoutOptions::default());
    let hidden = g.node_blocks().iter().find(|b| b.role == NodeRole::Neurons && !b.ordered).expect("hidden block");
    let mut by_y: Vec<usize> = (0..4).collect();
    by_y.sort_by(|&a, &b| layout.positions[hidden.start + a][1].total_cmp(&layout.positions[hidden.start + b][1]));
    // by_y[slot] = neuron in that slot; neuron o must be in slot perm[o].
    for (o, &p) in perm.iter().enumerate() {
        assert_eq!(by_y[p], o, "hidden neuron {o} in slot {p}: {by_y:?}");
    }
}

#[test]
fn tall_columns_are_compressed_to_the_maximum_height() {
    let mut rng = SplitMix64::new(9);
    let rows = 5000;
    let table: Vec<f32> = (0..rows * 4).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let store = store_of(&[OwnedTensor::f32("embeddings.word_embeddings.weight", vec![rows, 4], &table)]);
    let g = graph_of(&store);
    let layout = compute(&g, &LayoutOptions { max_column_height: 100.0, ..LayoutOptions::default() });
    let [_, h] = layout.bounds.size();
    assert!(h <= 100.0 + 1e-3, "height {h}");
    let input = g.node_blocks().iter().position(|b| b.len == rows).unwrap();
    assert!((layout.blocks[input].spacing - 100.0 / (rows - 1) as f32).abs() < 1e-4);
}

#[test]
fn block_quads_summarise_each_edge_block() {
    let store = crate::demo::open("siren").unwrap();
    let g = graph_of(&store);
    let layout = compute(&g, &LayoutOptions::default());
    let quads = block_quads(&g, &layout);
    assert_eq!(quads.len(), g.edge_blocks().len());
    let w0 = store.get("seq.0.weight").unwrap().to_f32();
    let mean = w0.iter().map(|&v| f64::from(v)).sum::<f64>() / w0.len() as f64;
    let mean_abs = w0.iter().map(|&v| f64::from(v.abs())).sum::<f64>() / w0.len() as f64;
    // The first block in stream order is seq.0's weight: 2 inputs -> 32 neurons, fully dense.
    let q = quads[0];
    assert_eq!(q.edges, 64);
    assert!((f64::from(q.mean_weight) - mean).abs() < 1e-6);
    assert!((f64::from(q.mean_abs_weight) - mean_abs).abs() < 1e-6);
    assert_eq!(q.density, 1.0);
    assert_eq!(q.src[0], layout.columns[0].x);
    assert_eq!(q.dst[0], layout.columns[1].x);
    assert_eq!(quads.iter().map(|q| q.edges).sum::<usize>(), g.num_edges());
}

#[test]
fn explicit_edges_match_the_stream_and_respect_the_cap() {
    let g = demo_graph("transformer");
    assert!(explicit_edges(&g, g.num_edges() - 1, |_| false).is_none());
    let edges = explicit_edges(&g, g.num_edges(), |_| false).expect("under the cap");
    assert_eq!(edges.len(), g.num_edges());
    for (seg, e) in edges.iter().zip(g.edges()) {
        assert_eq!((seg.src as usize, seg.dst as usize), (e.src, e.dst));
        assert_eq!(seg.weight.to_bits(), e.features[0].to_bits());
    }
    assert!(explicit_edges(&g, usize::MAX, |_| true).is_none(), "cancellation stops the stream");
}

#[test]
fn spatial_grid_finds_the_same_node_as_a_brute_force_scan() {
    let g = demo_graph("transformer");
    let layout = compute(&g, &LayoutOptions::default());
    let grid = SpatialGrid::new(&layout.positions, layout.bounds, 1.0);
    let mut rng = SplitMix64::new(4);
    let [lo, hi] = [layout.bounds.min, layout.bounds.max];
    for _ in 0..500 {
        let p = [rng.uniform(lo[0] - 5.0, hi[0] + 5.0), rng.uniform(lo[1] - 5.0, hi[1] + 5.0)];
        let radius = rng.uniform(0.1, 6.0);
        let brute = layout
            .positions
            .iter()
            .enumerate()
            .map(|(i, q)| ((q[0] - p[0]).powi(2) + (q[1] - p[1]).powi(2), i))
            .filter(|(d2, _)| *d2 <= radius * radius)
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let found = grid.nearest(&layout.positions, p, radius);
        match (brute, found) {
            (None, None) => {}
            (Some((d2, _)), Some(id)) => {
                let q = layout.positions[id];
                let got = (q[0] - p[0]).powi(2) + (q[1] - p[1]).powi(2);
                assert!((got - d2).abs() < 1e-4, "grid {got} vs brute {d2}");
            }
            other => panic!("grid and brute force disagree at {p:?} r={radius}: {other:?}"),
        }
    }
    assert!(grid.nearest(&layout.positions, [f32::NAN, 0.0], 1.0).is_none());
}

#[test]
fn node_block_lookup_inverts_ranges() {
    let g = demo_graph("transformer");
    for (i, b) in g.node_blocks().iter().enumerate() {
        assert_eq!(GraphLayout::block_of_node(&g, b.start), Some(i));
        assert_eq!(GraphLayout::block_of_node(&g, b.start + b.len - 1), Some(i));
    }
    assert_eq!(GraphLayout::block_of_node(&g, g.num_nodes()), None);
}

#[test]
fn weight_stats_and_histogram_reference_values() {
    let s = WeightStats::of(&[1.0, 2.0, 3.0, 4.0, f32::NAN]).unwrap();
    assert_eq!((s.count, s.non_finite, s.min, s.max), (4, 1, 1.0, 4.0));
    assert!((s.mean - 2.5).abs() < 1e-12);
    assert!((s.std - 1.25f64.sqrt()).abs() < 1e-12);
    assert!(WeightStats::of(&[f32::INFINITY]).is_none());
    let h = Histogram::of_slices([&[0.0f32, 0.1, 0.5][..], &[1.0, 0.99]], 0.0, 1.0, 4);
    assert_eq!(h.counts, vec![2, 0, 1, 2]);
    assert!((h.bin_center(0) - 0.125).abs() < 1e-12);
    let flat = Histogram::of_slices([&[3.0f32, 3.0][..]], 3.0, 3.0, 5);
    assert_eq!(flat.counts.iter().sum::<u64>(), 2);
}

#[test]
fn matrix_view_flattens_kernels_and_pools_by_magnitude() {
    // Conv [out=2, in=3, 2, 2] -> 2 x 12.
    let values: Vec<f32> = (0..24).map(|i| i as f32 - 12.0).collect();
    let m = matrix_view(&[2, 3, 2, 2], &values, 64).unwrap();
    assert_eq!((m.rows, m.cols, m.source_rows, m.source_cols), (2, 12, 2, 12));
    assert_eq!(m.values, values);
    assert_eq!(m.max_abs, 12.0);
    // Pool a 4 x 4 to 2 x 2: each cell keeps its largest-magnitude value, with its sign.
    let v = [1.0, -5.0, 0.0, 2.0, 0.5, 0.1, 3.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 7.0, -8.0, 0.0];
    let p = matrix_view(&[4, 4], &v, 2).unwrap();
    assert_eq!(p.values, vec![-5.0, 3.0, 7.0, -8.0]);
    assert_eq!((p.rows, p.cols), (2, 2));
    assert_eq!(matrix_view(&[3], &[1.0, 2.0, 3.0], 8).unwrap().rows, 1);
    assert!(matrix_view(&[2, 2], &[1.0], 8).is_none(), "length mismatch");
    assert!(matrix_view(&[usize::MAX, 2], &[1.0], 8).is_none(), "overflowing shape");
}

#[test]
fn abs_quantile_is_exact_on_small_inputs_and_spans_slices() {
    let a: Vec<f32> = (1..=50).map(|i| -(i as f32)).collect();
    let b: Vec<f32> = (51..=100).map(|i| i as f32).collect();
    assert_eq!(abs_quantile([&a[..], &b[..]], 1.0, 1000), Some(100.0));
    assert_eq!(abs_quantile([&a[..], &b[..]], 0.0, 1000), Some(1.0));
    assert_eq!(abs_quantile([&a[..], &b[..]], 0.5, 1000), Some(51.0));
    // Strided sampling still sees both slices.
    let q = abs_quantile([&a[..], &b[..]], 1.0, 10).unwrap();
    assert!(q > 90.0, "{q}");
    assert_eq!(abs_quantile([&[f32::NAN][..]], 0.5, 10), None);
}

#[test]
fn block_scales_follow_each_tensor() {
    let store = crate::demo::open("siren").unwrap();
    let g = graph_of(&store);
    let edges = explicit_edges(&g, usize::MAX, |_| false).unwrap();
    let scales = block_scales(&g, &edges, 1.0);
    assert_eq!(scales.len(), g.edge_blocks().len());
    // q = 1: the block's largest |weight|, i.e. the max |value| of its tensor slice.
    let w0 = store.get("seq.0.weight").unwrap().to_f32();
    assert_eq!(scales[0], w0.iter().fold(0.0f32, |m, v| m.max(v.abs())));
    let w1 = store.get("seq.1.weight").unwrap().to_f32();
    let max1 = w1.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scales.contains(&max1));
    assert!(scales[0] > 10.0 * max1, "SIREN's first layer is much larger");
}

/// A YOLO-shaped DAG (issue 12): weights always run to a later column, and a split half, a
/// concatenation's segment or a group draws as its own band, not over the whole block.
#[test]
fn dag_layout_is_layered_and_segments_are_separate_bands() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/graphs/c2f_block.onnx");
    let g = graph_of(&crate::checkpoint::open(&path).expect("fixture opens"));
    let layout = compute(&g, &LayoutOptions::default());
    let quads = block_quads(&g, &layout);
    for (q, e) in quads.iter().zip(g.edge_blocks()) {
        if matches!(e.edge_type, crate::graph::EdgeType::ConvWeight | crate::graph::EdgeType::LinWeight) {
            assert!(q.src[0] < q.dst[0], "edge block {e:?} runs backwards");
        }
    }
    // The bottleneck residual leaves the second half of cv1's 8 channels: the lower half band.
    let (i, e) =
        g.edge_blocks().iter().enumerate().find(|(_, e)| e.edge_type == crate::graph::EdgeType::Residual).unwrap();
    let cv1 = layout.blocks[e.src];
    let band = quads[i].src;
    assert_eq!(band[2], cv1.y1);
    assert!((band[1] - (cv1.y0 + 4.0 * cv1.spacing)).abs() < 1e-4, "{band:?} vs {cv1:?}");
    // The depthwise conv: eight one-channel bands, one per group, each to its own channel.
    let dw: Vec<_> = quads
        .iter()
        .zip(g.edge_blocks())
        .filter(|(_, e)| e.edge_type == crate::graph::EdgeType::ConvWeight && e.len == 9)
        .collect();
    assert_eq!(dw.len(), 8);
    assert!(dw.iter().all(|(q, _)| q.src[1] == q.src[2] && q.dst[1] == q.dst[2] && q.density == 1.0));
}

/// A 6-layer BERT (HF names, hidden 8) lays out in layers: every weight block runs to a later
/// column, no edge runs right to left, and each encoder layer's attention neurons have a column
/// of their own.
#[test]
fn six_layer_bert_layout_is_layered() {
    let (d, ff, vocab) = (8usize, 16usize, 30usize);
    let mut tensors = Vec::new();
    let mut add = |name: String, shape: Vec<usize>| {
        let n = shape.iter().product::<usize>();
        tensors.push(OwnedTensor::f32(name, shape, &vec![0.01; n]));
    };
    add("embeddings.word_embeddings.weight".into(), vec![vocab, d]);
    add("embeddings.position_embeddings.weight".into(), vec![16, d]);
    add("embeddings.LayerNorm.weight".into(), vec![d]);
    add("embeddings.LayerNorm.bias".into(), vec![d]);
    for l in 0..6 {
        let p = format!("encoder.layer.{l}");
        for (m, i, o) in [
            ("attention.self.query", d, d),
            ("attention.self.key", d, d),
            ("attention.self.value", d, d),
            ("attention.output.dense", d, d),
        ] {
            add(format!("{p}.{m}.weight"), vec![o, i]);
            add(format!("{p}.{m}.bias"), vec![o]);
        }
        add(format!("{p}.attention.output.LayerNorm.weight"), vec![d]);
        add(format!("{p}.attention.output.LayerNorm.bias"), vec![d]);
        for (m, i, o) in [("intermediate.dense", d, ff), ("output.dense", ff, d)] {
            add(format!("{p}.{m}.weight"), vec![o, i]);
            add(format!("{p}.{m}.bias"), vec![o]);
        }
        add(format!("{p}.output.LayerNorm.weight"), vec![d]);
        add(format!("{p}.output.LayerNorm.bias"), vec![d]);
    }
    let g = graph_of(&store_of(&tensors));
    let layout = compute(&g, &LayoutOptions::default());
    let quads = block_quads(&g, &layout);
    for (q, e) in quads.iter().zip(g.edge_blocks()) {
        match e.edge_type {
            crate::graph::EdgeType::LinWeight => assert!(q.src[0] < q.dst[0], "{e:?}"),
            _ => assert!(q.src[0] <= q.dst[0], "{e:?}"),
        }
    }
    // Embedding output, then per layer: attention, its output, the feed-forward hidden, the output.
    let attention_columns: Vec<f32> = g
        .node_blocks()
        .iter()
        .zip(&layout.blocks)
        .filter(|(b, _)| b.role == NodeRole::Attention)
        .map(|(_, e)| e.x)
        .collect();
    assert_eq!(attention_columns.len(), 6);
    assert!(
        attention_columns.windows(2).all(|w| w[0] < w[1]),
        "one column per layer's attention: {attention_columns:?}"
    );
    assert_eq!(layout.columns.len(), 1 + 1 + 6 * 4);
}
