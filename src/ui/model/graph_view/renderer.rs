//! The graph's GPU side: WGSL pipelines created once (from the app's wgpu render state) and kept
//! in egui-wgpu's `callback_resources`; per-graph instance buffers uploaded once (keyed by the
//! graph's id); per frame only the small [`ViewUniforms`] buffer is written. Draws: ONE instanced
//! call for the edges (neuron-level lines, or block bands at overview zoom), ONE for the nodes.
//! The GMN activation overlay rewrites the node buffer alone (never the edges), and only when the
//! overlay changes (its key), not per frame.
//!
//! Over ~450 lines on purpose: the instance structs, their vertex layouts, the uniform block and
//! the two WGSL files must agree byte for byte; kept in one file they are checked against each
//! other in one read.

use std::sync::Arc;

use egui_wgpu::wgpu;
use wgpu::util::DeviceExt as _;

use super::overlay::NodeOverlay;
use crate::graph::ParamGraph;
use crate::layout::{BlockQuad, EdgeSegment, GraphLayout};
use crate::ui::widgets::colormap;

/// One neuron-level edge: endpoints in world units, the weight, and the weight relative to its
/// tensor's scale (the per-layer colour scale).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct EdgeInstance {
    pub src: [f32; 2],
    pub dst: [f32; 2],
    pub weight: f32,
    pub local: f32,
}

/// One edge block band: `[src_x, src_y0, src_y1, dst_x]`, `[dst_y0, dst_y1, mean weight,
/// density]`, `[mean / mean |w|, 0, 0, 0]` (sign consistency, the per-layer colour) and a solid
/// colour `[r, g, b, a]` (gamma space; `a = 0`: colour by weight). Node blocks of graphs too big
/// for one instance per node are drawn as solid bars through the same pipeline.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockInstance {
    pub a: [f32; 4],
    pub b: [f32; 4],
    pub c: [f32; 4],
    pub d: [f32; 4],
}

/// Graphs with more nodes than this draw each node block as one bar instead of a disc per node:
/// a 7B model's 1.2M discs would cost tens of megabytes of buffers and seconds per frame on a
/// software renderer, and at any zoom that shows the whole model they are a solid column anyway.
pub const NODE_INSTANCE_CAP: usize = 200_000;

/// One node: world position, palette index (see `colormap::NODE_PALETTE`), flags
/// ([`NODE_OVERLAY`]) and the overlay value on the diverging map's scale (used with the flag).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct NodeInstance {
    pub pos: [f32; 2],
    pub palette: u32,
    pub flags: u32,
    pub value: f32,
}

/// Flag bit: colour the node by `value` (a GMN activation) instead of its palette entry.
pub const NODE_OVERLAY: u32 = 1;

/// Everything the GPU needs about one graph, built on the loader's worker thread.
pub struct GpuGeometry {
    /// Unique per loaded graph: the key of its GPU buffers.
    pub id: u64,
    pub nodes: Vec<NodeInstance>,
    /// Empty when the graph has more edges than the explicit-edge cap.
    pub edges: Vec<EdgeInstance>,
    pub blocks: Vec<BlockInstance>,
    /// Node blocks as bars, for graphs over [`NODE_INSTANCE_CAP`] nodes (then `nodes` is empty).
    pub node_bars: Vec<BlockInstance>,
}

impl GpuGeometry {
    pub fn build(
        id: u64,
        graph: &ParamGraph,
        layout: &GraphLayout,
        edges: Option<&[EdgeSegment]>,
        block_scales: &[f32],
        quads: &[BlockQuad],
    ) -> Self {
        let bars = graph.num_nodes() > NODE_INSTANCE_CAP;
        let node_bars = if bars { node_bars(graph, layout) } else { Vec::new() };
        let mut nodes = Vec::with_capacity(if bars { 0 } else { graph.num_nodes() });
        for b in graph.node_blocks().iter().filter(|_| !bars) {
            let palette = colormap::node_palette_index(b.node_type, b.role, b.ordered);
            for id in b.range() {
                let pos = layout.positions.get(id).copied().unwrap_or([0.0, 0.0]);
                nodes.push(NodeInstance { pos, palette, flags: 0, value: 0.0 });
            }
        }
        let at = |id: u32| layout.positions.get(id as usize).copied().unwrap_or([0.0, 0.0]);
        let edges = edges.unwrap_or(&[]);
        let mut instances = Vec::with_capacity(edges.len());
        for (block, scale) in graph.edge_blocks().iter().zip(block_scales.iter().chain(std::iter::repeat(&1.0))) {
            let end = block.first_edge.saturating_add(block.len).min(edges.len());
            for e in edges.get(block.first_edge..end).unwrap_or(&[]) {
                instances.push(EdgeInstance {
                    src: at(e.src),
                    dst: at(e.dst),
                    weight: e.weight,
                    local: e.weight / scale,
                });
            }
        }
        let edges = instances;
        // Fans from a single bias/gamma/beta node, and bands that skip columns (residuals, a
        // feature map concatenated far downstream), are drawn fainter: otherwise the long bands
        // of a DAG cross every column between their ends at full strength.
        let fan = |q: &BlockQuad| {
            let src = graph.edge_blocks().get(q.edge_block).and_then(|e| graph.node_blocks().get(e.src));
            let skips = (q.dst[0] - q.src[0]).abs() > 1.5 * layout.column_spacing;
            src.is_some_and(|b| b.len == 1) || skips
        };
        let blocks = quads
            .iter()
            .map(|q| BlockInstance {
                a: [q.src[0], q.src[1], q.src[2], q.dst[0]],
                b: [q.dst[1], q.dst[2], q.mean_weight, if fan(q) { 0.25 * q.density } else { q.density }],
                c: [if q.mean_abs_weight > 0.0 { q.mean_weight / q.mean_abs_weight } else { 0.0 }, 0.0, 0.0, 0.0],
                d: [0.0; 4],
            })
            .collect();
        Self { id, nodes, edges, blocks, node_bars }
    }

    /// The node instances with `overlay` applied: instance `i` takes `overlay[i]` (nodes are laid
    /// out in node-id order, see `analysis::node_alignment`). Non-finite values keep the palette
    /// colour; an overlay of the wrong length is ignored rather than shifted onto other nodes.
    pub fn node_instances(&self, overlay: Option<&[f32]>) -> Vec<NodeInstance> {
        let overlay = overlay.filter(|v| v.len() == self.nodes.len());
        match overlay {
            None => self.nodes.clone(),
            Some(values) => {
                self.nodes
                    .iter()
                    .zip(values)
                    .map(|(n, &v)| {
                        if v.is_finite() { NodeInstance { flags: n.flags | NODE_OVERLAY, value: v, ..*n } } else { *n }
                    })
                    .collect()
            }
        }
    }
}

/// One solid bar per node block, in the block's palette colour, a fifth of a column wide.
fn node_bars(graph: &ParamGraph, layout: &GraphLayout) -> Vec<BlockInstance> {
    let half = 0.08 * layout.column_spacing;
    graph
        .node_blocks()
        .iter()
        .zip(&layout.blocks)
        .map(|(b, e)| {
            let c = colormap::NODE_PALETTE
                .get(colormap::node_palette_index(b.node_type, b.role, b.ordered) as usize)
                .copied()
                .unwrap_or(egui::Color32::GRAY);
            BlockInstance {
                a: [e.x - half, e.y0, e.y1, e.x + half],
                b: [e.y0, e.y1, 0.0, 1.0],
                c: [0.0; 4],
                d: [f32::from(c.r()) / 255.0, f32::from(c.g()) / 255.0, f32::from(c.b()) / 255.0, 1.0],
            }
        })
        .collect()
}

/// The per-frame uniform block; must match `struct View` in shaders/edges.wgsl and nodes.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ViewUniforms {
    pub center: [f32; 2],
    pub scale: f32,
    pub srgb_target: f32,
    pub viewport_px: [f32; 2],
    pub node_radius_px: f32,
    pub edge_width_px: f32,
    pub weight_scale: f32,
    pub block_scale: f32,
    pub edge_alpha: f32,
    /// 1: colour by the per-layer (local) value, 0: by the global scale.
    pub local_scale: f32,
    pub negative: [f32; 4],
    pub zero: [f32; 4],
    pub positive: [f32; 4],
    pub outline: [f32; 4],
}

/// What to draw this frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeDraw {
    Neurons,
    Blocks,
    None,
}

/// The paint callback: which graph, how to look at it, which edge level to draw, and the node
/// overlay (`None`: colour nodes by type).
pub struct GraphPaintCallback {
    pub geometry: Arc<GpuGeometry>,
    pub uniforms: ViewUniforms,
    pub edges: EdgeDraw,
    pub overlay: Option<Arc<NodeOverlay>>,
}

struct GraphBuffers {
    id: u64,
    nodes: Option<(wgpu::Buffer, u32)>,
    /// Key of the overlay the node buffer holds (`None`: palette colours, as uploaded).
    node_overlay: Option<u64>,
    edges: Option<(wgpu::Buffer, u32)>,
    blocks: Option<(wgpu::Buffer, u32)>,
    node_bars: Option<(wgpu::Buffer, u32)>,
}

/// Pipelines and buffers, stored once in `callback_resources`.
pub struct GraphRenderer {
    edge_pipeline: wgpu::RenderPipeline,
    block_pipeline: wgpu::RenderPipeline,
    node_pipeline: wgpu::RenderPipeline,
    uniforms: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    /// Most recently used last; a few graphs stay resident so switching tabs is instant.
    graphs: Vec<GraphBuffers>,
    srgb_target: bool,
}

const RESIDENT_GRAPHS: usize = 4;

impl GraphRenderer {
    /// Creates the pipelines and registers them with egui's renderer. Call once at start-up.
    pub fn install(render_state: &egui_wgpu::RenderState) {
        let renderer = Self::new(&render_state.device, render_state.target_format);
        render_state.renderer.write().callback_resources.insert(renderer);
    }

    fn new(device: &wgpu::Device, target: wgpu::TextureFormat) -> Self {
        let edges_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("gmnscope edges.wgsl"),
            source: wgpu::ShaderSource::Wgsl(include_str!("../../../../shaders/edges.wgsl").into()),
        });
        let nodes_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("gmnscope nodes.wgsl"),
            source: wgpu::ShaderSource::Wgsl(include_str!("../../../../shaders/nodes.wgsl").into()),
        });
        let uniforms = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("gmnscope graph view uniforms"),
            contents: bytemuck::bytes_of(&ViewUniforms::zeroed_view()),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        });
        let bind_group_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("gmnscope graph view bind group layout"),
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::VERTEX | wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: std::num::NonZeroU64::new(size_of::<ViewUniforms>() as u64),
                },
                count: None,
            }],
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("gmnscope graph view bind group"),
            layout: &bind_group_layout,
            entries: &[wgpu::BindGroupEntry { binding: 0, resource: uniforms.as_entire_binding() }],
        });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("gmnscope graph view pipeline layout"),
            bind_group_layouts: &[Some(&bind_group_layout)],
            immediate_size: 0,
        });
        let pipeline = |label: &str,
                        module: &wgpu::ShaderModule,
                        vs: &str,
                        fs: &str,
                        stride: u64,
                        attributes: &[wgpu::VertexAttribute]| {
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some(label),
                layout: Some(&layout),
                vertex: wgpu::VertexState {
                    module,
                    entry_point: Some(vs),
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                    buffers: &[Some(wgpu::VertexBufferLayout {
                        array_stride: stride,
                        step_mode: wgpu::VertexStepMode::Instance,
                        attributes,
                    })],
                },
                primitive: wgpu::PrimitiveState {
                    topology: wgpu::PrimitiveTopology::TriangleList,
                    cull_mode: None,
                    ..Default::default()
                },
                depth_stencil: None,
                multisample: wgpu::MultisampleState::default(),
                fragment: Some(wgpu::FragmentState {
                    module,
                    entry_point: Some(fs),
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                    targets: &[Some(wgpu::ColorTargetState {
                        format: target,
                        // Premultiplied alpha, like egui's own pipeline.
                        blend: Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING),
                        write_mask: wgpu::ColorWrites::ALL,
                    })],
                }),
                multiview_mask: None,
                cache: None,
            })
        };
        let edge_pipeline = pipeline(
            "gmnscope edges",
            &edges_module,
            "vs_edge",
            "fs_edge",
            size_of::<EdgeInstance>() as u64,
            &wgpu::vertex_attr_array![0 => Float32x2, 1 => Float32x2, 2 => Float32, 3 => Float32],
        );
        let block_pipeline = pipeline(
            "gmnscope edge blocks",
            &edges_module,
            "vs_block",
            "fs_edge",
            size_of::<BlockInstance>() as u64,
            &wgpu::vertex_attr_array![0 => Float32x4, 1 => Float32x4, 2 => Float32x4, 3 => Float32x4],
        );
        let node_pipeline = pipeline(
            "gmnscope nodes",
            &nodes_module,
            "vs_node",
            "fs_node",
            size_of::<NodeInstance>() as u64,
            &wgpu::vertex_attr_array![0 => Float32x2, 1 => Uint32, 2 => Uint32, 3 => Float32],
        );
        Self {
            edge_pipeline,
            block_pipeline,
            node_pipeline,
            uniforms,
            bind_group,
            graphs: Vec::new(),
            srgb_target: target.is_srgb(),
        }
    }

    /// Uploads a graph's instance buffers the first time it is drawn (the only per-graph upload).
    fn ensure_uploaded(&mut self, device: &wgpu::Device, geometry: &GpuGeometry) {
        if let Some(pos) = self.graphs.iter().position(|g| g.id == geometry.id) {
            let entry = self.graphs.remove(pos);
            self.graphs.push(entry);
            return;
        }
        let upload = |label: &str, bytes: &[u8], count: usize, usage: wgpu::BufferUsages| {
            (count > 0 && count <= u32::MAX as usize).then(|| {
                let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents: bytes,
                    usage: wgpu::BufferUsages::VERTEX | usage,
                });
                (buffer, count as u32)
            })
        };
        let fixed = wgpu::BufferUsages::empty();
        // Only the node buffer is ever rewritten (the activation overlay).
        let nodes = bytemuck::cast_slice(&geometry.nodes);
        let entry = GraphBuffers {
            id: geometry.id,
            nodes: upload("gmnscope nodes", nodes, geometry.nodes.len(), wgpu::BufferUsages::COPY_DST),
            node_overlay: None,
            edges: upload("gmnscope edges", bytemuck::cast_slice(&geometry.edges), geometry.edges.len(), fixed),
            blocks: upload(
                "gmnscope edge blocks",
                bytemuck::cast_slice(&geometry.blocks),
                geometry.blocks.len(),
                fixed,
            ),
            node_bars: upload(
                "gmnscope node bars",
                bytemuck::cast_slice(&geometry.node_bars),
                geometry.node_bars.len(),
                fixed,
            ),
        };
        if self.graphs.len() >= RESIDENT_GRAPHS {
            self.graphs.remove(0);
        }
        self.graphs.push(entry);
    }

    /// Rewrites a graph's node buffer when the wanted overlay differs from the one it holds.
    fn apply_overlay(&mut self, queue: &wgpu::Queue, geometry: &GpuGeometry, overlay: Option<&NodeOverlay>) {
        let Some(entry) = self.graphs.iter_mut().find(|g| g.id == geometry.id) else { return };
        let wanted = overlay.map(|o| o.key);
        if entry.node_overlay == wanted {
            return;
        }
        if let Some((buffer, _)) = &entry.nodes {
            let instances = geometry.node_instances(overlay.map(|o| o.values.as_slice()));
            queue.write_buffer(buffer, 0, bytemuck::cast_slice(&instances));
        }
        entry.node_overlay = wanted;
    }
}

impl ViewUniforms {
    fn zeroed_view() -> Self {
        bytemuck::Zeroable::zeroed()
    }
}

impl egui_wgpu::CallbackTrait for GraphPaintCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen_descriptor: &egui_wgpu::ScreenDescriptor,
        _egui_encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(renderer) = resources.get_mut::<GraphRenderer>() else {
            tracing::warn!("graph renderer was not installed; nothing drawn");
            return Vec::new();
        };
        renderer.ensure_uploaded(device, &self.geometry);
        renderer.apply_overlay(queue, &self.geometry, self.overlay.as_deref());
        let mut uniforms = self.uniforms;
        uniforms.srgb_target = if renderer.srgb_target { 1.0 } else { 0.0 };
        queue.write_buffer(&renderer.uniforms, 0, bytemuck::bytes_of(&uniforms));
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(renderer) = resources.get::<GraphRenderer>() else { return };
        let Some(buffers) = renderer.graphs.iter().find(|g| g.id == self.geometry.id) else { return };
        render_pass.set_bind_group(0, &renderer.bind_group, &[]);
        let edges = match self.edges {
            EdgeDraw::Neurons => buffers.edges.as_ref().map(|b| (&renderer.edge_pipeline, b)),
            EdgeDraw::Blocks => buffers.blocks.as_ref().map(|b| (&renderer.block_pipeline, b)),
            EdgeDraw::None => None,
        };
        if let Some((pipeline, (buffer, count))) = edges {
            render_pass.set_pipeline(pipeline);
            render_pass.set_vertex_buffer(0, buffer.slice(..));
            render_pass.draw(0..6, 0..*count);
        }
        if let Some((buffer, count)) = &buffers.node_bars {
            render_pass.set_pipeline(&renderer.block_pipeline);
            render_pass.set_vertex_buffer(0, buffer.slice(..));
            render_pass.draw(0..6, 0..*count);
        }
        if let Some((buffer, count)) = &buffers.nodes {
            render_pass.set_pipeline(&renderer.node_pipeline);
            render_pass.set_vertex_buffer(0, buffer.slice(..));
            render_pass.draw(0..6, 0..*count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> GpuGeometry {
        let node = |palette| NodeInstance { pos: [0.0, 0.0], palette, flags: 0, value: 0.0 };
        GpuGeometry {
            id: 1,
            nodes: vec![node(5), node(0), node(6)],
            edges: Vec::new(),
            blocks: Vec::new(),
            node_bars: Vec::new(),
        }
    }

    #[test]
    fn overlay_values_go_to_their_own_nodes_and_bad_overlays_change_nothing() {
        let g = geometry();
        assert_eq!(g.node_instances(None), g.nodes);
        let shown = g.node_instances(Some(&[-1.0, f32::NAN, 0.5]));
        assert_eq!((shown[0].flags, shown[0].value, shown[0].palette), (NODE_OVERLAY, -1.0, 5));
        assert_eq!(shown[1], g.nodes[1], "no value: the type colour stays");
        assert_eq!((shown[2].flags, shown[2].value), (NODE_OVERLAY, 0.5));
        // A wrong-length overlay is not shifted onto other nodes.
        assert_eq!(g.node_instances(Some(&[0.1, 0.2])), g.nodes);
        // The shader reads value at byte 16 of a 20-byte instance.
        assert_eq!(size_of::<NodeInstance>(), 20);
        assert_eq!(std::mem::offset_of!(NodeInstance, value), 16);
    }
}
