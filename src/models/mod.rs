//! Metanetworks as burn modules (feature `burn`).
//!
//! Owns: the graph metanetwork ([`Gmn`], EdgeMPNN family, papers.md §3), its input layout
//! ([`Topology`], [`GraphInput`], [`BatchTopology`], [`GmnBatch`]) and the flattened-weights MLP
//! baseline ([`FlatMlp`]). Must not import: `ui`, `train`, `jobs`.
//!
//! Brief overview:
//! - [`topology`]: a parameter graph split into a topology shared by a zoo and a weight column
//!   per network; batches are node-major (`[N, B, h]`) so gathers and scatters use `E` indices
//!   built once per zoo; mixed architectures go in as a disjoint union.
//! - [`encoders`]: node features (layer, neuron order with positions for input/output neurons,
//!   type) and edge features (weight, layer, type, kernel position) -> `h` dims.
//! - [`block`]: one EdgeMPNN block in factored form (node terms per node, the message MLP's last
//!   linear after the mean).
//! - [`gmn`]: the whole model, readout and head; [`GmnOutput`] can carry every layer's node
//!   features (CKA, the GUI overlay).
//! - [`canonical`]: sign canonicalisation of hidden neurons for odd activations (SIRENs).
//! - [`init`]: deterministic initialisation from a seed (bit-for-bit repeatable runs).
//!
//! burn 0.22: no backend type parameter; the device (Flex, wgpu, `.autodiff()`) is chosen at run
//! time by the caller.

pub mod baseline;
pub mod block;
pub mod canonical;
pub mod config;
pub mod encoders;
pub mod gmn;
pub mod image;
pub mod init;
pub mod probe;
pub mod topology;

pub use baseline::FlatMlp;
pub use config::{Aggregation, GmnConfig, Readout, WeightLift};
pub use gmn::{Gmn, GmnOutput};
pub use topology::{BatchTopology, GmnBatch, GraphInput, Topology};
