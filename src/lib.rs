//! gmnscope: a workbench for weight-space learning.
//!
//! The core library (everything but `ui`) never depends on the UI:
//! - [`checkpoint`]: model files -> `TensorStore` (named tensors, lazy bytes);
//! - [`arch`]: `TensorStore` -> `Architecture` (ordered layers);
//! - [`graph`]: `Architecture` -> `ParamGraph` (GMN parameter-graph rules);
//! - [`cka`]: centred kernel alignment between layer activations; [`activations`]: activation files -> CKA layers;
//! - [`compare`]: per-layer spectra, neuron alignment (weight matching) and checkpoint diffs;
//! - [`limits`]: named limits on work derived from a file's contents (refusals name the flag that raises them);
//! - [`demo`]: the embedded default model the app opens with no files;
//! - [`analysis`]: GMN outputs over a parameter graph as plain numbers (node colouring, alignment).
//!
//! `ui` (feature `gui`) renders state and sends commands; it holds no numerics.

pub mod activations;
pub mod analysis;
pub mod arch;
pub mod atomic_write;
pub mod checkpoint;
pub mod cka;
pub mod compare;
pub mod data;
pub mod demo;
pub mod graph;
#[cfg(feature = "burn")]
pub mod inference;
#[cfg(feature = "burn")]
pub mod inr;
pub mod jobs;
pub mod layout;
pub mod limits;
#[cfg(feature = "burn")]
pub mod models;
pub mod npz_writer;
pub mod render;
#[cfg(feature = "burn")]
pub mod retrieval;
pub mod rng;
#[cfg(feature = "burn")]
pub mod study;
pub mod temp_files;
pub mod text;
#[cfg(feature = "burn")]
pub mod train;
#[cfg(feature = "gui")]
pub mod ui;
