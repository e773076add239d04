//! The GMN's parameters as one flat `f32` vector, and the bridge to the burn model.
//!
//! [`Layout`] names the offset of every parameter tensor inside the flat vector, in the order a
//! burn `ModuleVisitor` visits [`Gmn`]'s parameters (field declaration order; see
//! `models::gmn`, `models::block`, `models::encoders`). [`read`] checks every visited shape
//! against the layout, so a change to the burn model that the engine does not know about is an
//! error, not silently wrong numbers. Gradients go back as burn `GradientsParams` keyed by the
//! same parameter ids ([`to_gradients`]), so the trainer's clipping, AdamW, checkpoints and
//! resume stay exactly as they are for the burn engine.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

use crate::models::config::NODE_TYPES;
use crate::models::{Gmn, Readout};

/// Offsets of one EdgeMPNN block's tensors. Matrices are `[d_in, d_out]` row-major (`x W`).
#[derive(Clone, Copy, Debug)]
pub struct BlockOffsets {
    pub node_gamma: usize,
    pub node_beta: usize,
    pub edge_gamma: usize,
    pub edge_beta: usize,
    pub edge_src: usize,
    pub edge_dst: usize,
    pub edge_self_w: usize,
    pub edge_self_b: usize,
    pub edge_out_w: usize,
    pub edge_out_b: usize,
    pub msg_src: usize,
    pub msg_edge_w: usize,
    pub msg_edge_b: usize,
    pub msg_out_w: usize,
    pub msg_out_b: usize,
    pub node_self_w: usize,
    pub node_self_b: usize,
    pub node_agg: usize,
    pub node_out_w: usize,
    pub node_out_b: usize,
}

/// Where every parameter lives in the flat vector, and the shapes that put it there.
#[derive(Clone, Debug)]
pub struct Layout {
    pub h: usize,
    pub outputs: usize,
    /// Probe points `K` (0 without probe features).
    pub probe_points: usize,
    /// Width of the lifted weight input (`WeightLift::width`: 1 = linear).
    pub lift_width: usize,
    /// Aggregates the message projection reads (1: the mean; 8: PNA).
    pub agg_width: usize,
    pub readout: Readout,
    /// Width of the graph embedding the head reads.
    pub embedding: usize,
    // Node encoder.
    pub node_layer_w: usize,
    pub node_layer_b: usize,
    pub node_order_w: usize,
    pub node_order_b: usize,
    pub node_types: usize,
    // Edge encoder.
    pub edge_weight_w: usize,
    pub edge_weight_b: usize,
    pub edge_layer_w: usize,
    pub edge_types: usize,
    pub edge_position: usize,
    pub blocks: Vec<BlockOffsets>,
    pub final_node_gamma: usize,
    pub final_node_beta: usize,
    pub final_edge_gamma: usize,
    pub final_edge_beta: usize,
    pub head_hidden_w: usize,
    pub head_hidden_b: usize,
    pub head_out_w: usize,
    pub head_out_b: usize,
    pub probe_w: usize,
    pub probe_b: usize,
    /// The bias node features' `[lift_width, h]` matrix (`len` when off).
    pub bias_row: usize,
    /// Position of `final_edge_norm.gamma` in visit order.
    final_edge_index: usize,
    /// Every tensor's shape in visit order, and the total length.
    pub shapes: Vec<Vec<usize>>,
    pub len: usize,
}

struct Builder {
    shapes: Vec<Vec<usize>>,
    len: usize,
}

impl Builder {
    fn take(&mut self, shape: &[usize]) -> usize {
        let at = self.len;
        self.len += shape.iter().product::<usize>();
        self.shapes.push(shape.to_vec());
        at
    }
}

impl Layout {
    /// The layout of `model`'s configuration.
    pub fn of(model: &Gmn) -> Self {
        let c = model.config();
        let h = c.hidden;
        let probe_points = c.probe.map_or(0, |p| p.points);
        let embedding = c.embedding_width();
        let mut b = Builder { shapes: Vec::new(), len: 0 };
        let node_layer_w = b.take(&[1, h]);
        let node_layer_b = b.take(&[h]);
        let node_order_w = b.take(&[1, h]);
        let node_order_b = b.take(&[h]);
        let node_types = b.take(&[NODE_TYPES, h]);
        let lift_width = c.weight_lift.width();
        let edge_weight_w = b.take(&[lift_width, h]);
        let edge_weight_b = b.take(&[h]);
        let edge_layer_w = b.take(&[1, h]);
        let edge_types = b.take(&[c.edge_type_rows(), h]);
        let edge_position = b.take(&[3, h]);
        let blocks = (0..c.layers)
            .map(|_| BlockOffsets {
                node_gamma: b.take(&[h]),
                node_beta: b.take(&[h]),
                edge_gamma: b.take(&[h]),
                edge_beta: b.take(&[h]),
                edge_src: b.take(&[h, h]),
                edge_dst: b.take(&[h, h]),
                edge_self_w: b.take(&[h, h]),
                edge_self_b: b.take(&[h]),
                edge_out_w: b.take(&[h, h]),
                edge_out_b: b.take(&[h]),
                msg_src: b.take(&[h, h]),
                msg_edge_w: b.take(&[h, h]),
                msg_edge_b: b.take(&[h]),
                msg_out_w: b.take(&[c.aggregation.width() * h, h]),
                msg_out_b: b.take(&[h]),
                node_self_w: b.take(&[h, h]),
                node_self_b: b.take(&[h]),
                node_agg: b.take(&[h, h]),
                node_out_w: b.take(&[h, h]),
                node_out_b: b.take(&[h]),
            })
            .collect();
        let final_node_gamma = b.take(&[h]);
        let final_node_beta = b.take(&[h]);
        let final_edge_index = b.shapes.len();
        let final_edge_gamma = b.take(&[h]);
        let final_edge_beta = b.take(&[h]);
        let head_hidden_w = b.take(&[embedding, h]);
        let head_hidden_b = b.take(&[h]);
        let head_out_w = b.take(&[h, c.outputs]);
        let head_out_b = b.take(&[c.outputs]);
        let (probe_w, probe_b) =
            if probe_points > 0 { (b.take(&[probe_points, h]), b.take(&[h])) } else { (b.len, b.len) };
        let bias_row = if c.bias_features { b.take(&[lift_width, h]) } else { b.len };
        Self {
            h,
            outputs: c.outputs,
            probe_points,
            lift_width,
            agg_width: c.aggregation.width(),
            readout: c.readout,
            embedding,
            node_layer_w,
            node_layer_b,
            node_order_w,
            node_order_b,
            node_types,
            edge_weight_w,
            edge_weight_b,
            edge_layer_w,
            edge_types,
            edge_position,
            blocks,
            final_node_gamma,
            final_node_beta,
            final_edge_gamma,
            final_edge_beta,
            head_hidden_w,
            head_hidden_b,
            head_out_w,
            head_out_b,
            probe_w,
            probe_b,
            bias_row,
            final_edge_index,
            shapes: b.shapes,
            len: b.len,
        }
    }

    /// Index ranges (into `shapes`) of tensors that get no gradient: the final edge LayerNorm
    /// when the readout ignores edges. burn leaves such parameters without a gradient (so AdamW
    /// skips them, weight decay included); the engine does the same.
    fn unused(&self) -> Vec<usize> {
        match self.readout {
            Readout::Nodes => vec![self.final_edge_index, self.final_edge_index + 1],
            _ => Vec::new(),
        }
    }
}

/// Copies `model`'s parameters into a flat vector laid out as `layout`.
pub fn read(model: &Gmn, layout: &Layout) -> Result<Vec<f32>, String> {
    let mut reader = Reader { layout, values: Vec::with_capacity(layout.len), index: 0, error: None };
    model.visit(&mut reader);
    if let Some(e) = reader.error {
        return Err(e);
    }
    if reader.index != layout.shapes.len() || reader.values.len() != layout.len {
        return Err(format!(
            "the fused engine expected {} parameter tensors, the model has {}",
            layout.shapes.len(),
            reader.index
        ));
    }
    Ok(reader.values)
}

struct Reader<'a> {
    layout: &'a Layout,
    values: Vec<f32>,
    index: usize,
    error: Option<String>,
}

impl ModuleVisitor for Reader<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.error.is_some() {
            return;
        }
        let tensor = param.val();
        let dims = tensor.dims().to_vec();
        match self.layout.shapes.get(self.index) {
            Some(expected) if *expected == dims => {}
            expected => {
                self.error = Some(format!(
                    "the fused engine does not know this model: parameter {} has shape {dims:?}, expected {expected:?}",
                    self.index
                ));
                return;
            }
        }
        match tensor.into_data().try_into_vec::<f32>() {
            Ok(v) => self.values.extend_from_slice(&v),
            Err(e) => self.error = Some(format!("cannot read parameter {}: {e:?}", self.index)),
        }
        self.index += 1;
    }
}

/// The flat gradient `grad` as burn gradients of `model`'s parameters, on `device` (the
/// non-autodiff device the optimizer works on).
pub fn to_gradients(model: &Gmn, layout: &Layout, grad: &[f32], device: &Device) -> GradientsParams {
    let mut writer =
        Writer { layout, grad, offset: 0, index: 0, skip: layout.unused(), device, out: GradientsParams::new() };
    model.visit(&mut writer);
    writer.out
}

struct Writer<'a> {
    layout: &'a Layout,
    grad: &'a [f32],
    offset: usize,
    index: usize,
    skip: Vec<usize>,
    device: &'a Device,
    out: GradientsParams,
}

impl ModuleVisitor for Writer<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(shape) = self.layout.shapes.get(self.index) else { return };
        let len: usize = shape.iter().product();
        if !self.skip.contains(&self.index)
            && let Some(values) = self.grad.get(self.offset..self.offset + len)
        {
            let data = TensorData::new(values.to_vec(), shape.clone());
            self.out.register::<D>(param.id, Tensor::from_data(data, self.device));
        }
        self.offset += len;
        self.index += 1;
    }
}
