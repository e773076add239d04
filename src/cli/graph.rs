//! `gmnscope graph FILE --out OUT.npz`: the explicit parameter graph, streamed into a .npz
//! (`node_features` N x 3 int64, `edge_index` 2 x E int64, `edge_features` E x 6 float32) plus a
//! JSON sidecar `OUT.json` describing layers, node blocks and edge blocks.
//!
//! Edges are streamed block by block from the implicit graph, three passes (sources, targets,
//! features) because each .npz array is written contiguously; memory stays O(largest tensor).

use std::path::PathBuf;

use anyhow::Context as _;
use serde::Serialize;

use gmnscope::arch::{self, Layer};
use gmnscope::graph::{self, EdgeBlock, NodeBlock};
use gmnscope::npz_writer::NpzWriter;

use gmnscope::text::thousands;

use super::inspect::open_model;

#[derive(clap::Args)]
pub struct GraphArgs {
    /// Model file, or `demo:NAME` for an embedded demo model.
    pub file: PathBuf,
    /// Output .npz; a JSON sidecar is written next to it with the extension `.json`.
    #[arg(long)]
    pub out: PathBuf,
    /// Deflate the arrays (as `np.savez_compressed`): smaller, slower to write and to load.
    #[arg(long)]
    pub compress: bool,
}

/// Exports above this size get a note suggesting `--compress` before the write starts.
const LARGE_EXPORT_BYTES: u64 = 256 << 20;

#[derive(Serialize)]
struct Sidecar<'a> {
    source: String,
    format: &'static str,
    nodes: usize,
    edges: usize,
    parameters: usize,
    node_feature_columns: [&'static str; 3],
    edge_feature_columns: [&'static str; 6],
    layers: &'a [Layer],
    unrecognized: &'a [String],
    node_blocks: &'a [NodeBlock],
    edge_blocks: &'a [EdgeBlock],
}

pub fn run(args: &GraphArgs) -> anyhow::Result<()> {
    let store = open_model(&args.file)?;
    let arch = arch::recover(&store);
    // graph errors name layers, which come from the file: escaped and cut like every such name.
    let graph = graph::build(&arch, &store).map_err(|e| {
        anyhow::anyhow!(
            "{}: building the parameter graph: {}",
            store.path.display(),
            gmnscope::text::shown_message(&e.to_string())
        )
    })?;
    let (n, e) = (graph.num_nodes(), graph.num_edges());

    let out = &args.out;
    let sidecar_path = out.with_extension("json");
    let sidecar = Sidecar {
        source: store.path.display().to_string(),
        format: store.format.name(),
        nodes: n,
        edges: e,
        parameters: graph.num_parameters(),
        node_feature_columns: ["layer_index", "neuron_order", "node_type"],
        edge_feature_columns: ["weight", "layer_index", "edge_type", "p0", "p1", "p2"],
        layers: &arch.layers,
        unrecognized: &arch.unrecognized,
        node_blocks: graph.node_blocks(),
        edge_blocks: graph.edge_blocks(),
    };
    let json = serde_json::to_vec_pretty(&sidecar)?;
    // The export is the pair: the sidecar is written (to a temp file) before the archive and
    // moved into place right after it, so a full disk leaves the old pair or nothing, never a
    // new .npz next to an old or missing .json.
    let sidecar_file = gmnscope::atomic_write::prepare(&sidecar_path, |w| std::io::Write::write_all(w, &json))
        .with_context(|| format!("{}: cannot write", sidecar_path.display()))?;

    // node_features i64 x 3, edge_index i64 x 2, edge_features f32 x 6.
    let stored_bytes = n as u64 * 24 + e as u64 * (16 + 24);
    if stored_bytes > LARGE_EXPORT_BYTES && !args.compress {
        eprintln!(
            "note: the graph has {} edges; {} will be about {} (add --compress to deflate it)",
            thousands(e as u64),
            out.display(),
            gmnscope::text::bytes_human(stored_bytes)
        );
    }
    let mut npz =
        NpzWriter::create(out).with_context(|| format!("{}: cannot create", out.display()))?.compressed(args.compress);
    let write = |npz: &mut NpzWriter| -> std::io::Result<()> {
        let features: Vec<i64> = graph.node_features().into_iter().flatten().collect();
        npz.add_array_i64("node_features", &[n, 3], &features)?;

        let mut index = npz.begin_array_i64("edge_index", &[2, e])?;
        let mut buf = Vec::with_capacity(1 << 16);
        for pass in 0..2 {
            for edge in graph.edges() {
                buf.push(if pass == 0 { edge.src } else { edge.dst } as i64);
                if buf.len() == buf.capacity() {
                    index.write_i64s(&buf)?;
                    buf.clear();
                }
            }
            index.write_i64s(&buf)?;
            buf.clear();
        }
        index.finish()?;

        let mut feats = npz.begin_array_f32("edge_features", &[e, 6])?;
        let mut fbuf: Vec<f32> = Vec::with_capacity(6 << 14);
        for edge in graph.edges() {
            fbuf.extend_from_slice(&edge.features);
            if fbuf.len() == fbuf.capacity() {
                feats.write_f32s(&fbuf)?;
                fbuf.clear();
            }
        }
        feats.write_f32s(&fbuf)?;
        feats.finish()
    };
    write(&mut npz).with_context(|| format!("{}: writing", out.display()))?;
    npz.finish().with_context(|| format!("{}: finishing", out.display()))?;
    if let Err(e) = sidecar_file.commit() {
        // Not a pair: take the new archive back out rather than leave it beside an old sidecar.
        std::fs::remove_file(out).ok();
        return Err(e).with_context(|| format!("{}: cannot move into place", sidecar_path.display()));
    }

    let written = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({} nodes, {} edges; {}) and {}",
        out.display(),
        thousands(n as u64),
        thousands(e as u64),
        gmnscope::text::bytes_human(written),
        sidecar_path.display()
    );
    Ok(())
}
