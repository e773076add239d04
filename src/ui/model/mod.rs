//! The model tab: one open model file as a layer tree, a parameter graph and a details panel.
//!
//! - [`loader`]: the open-model job (file -> tensors, architecture, graph, layout, GPU buffers).
//! - [`layer_tree`]: the layers and tensors, with search.
//! - [`graph_view`]: the parameter graph (wgpu renderer, captions, the GMN overlay).
//! - [`details`]: the selected layer's statistics, histogram and tensor heatmap.

pub mod details;
pub mod graph_view;
pub mod layer_tree;
pub mod loader;
