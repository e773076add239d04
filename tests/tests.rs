//! Integration tests: one binary, a module per topic.

mod common;
mod formats_numpy;
mod formats_onnx;
mod formats_pytorch;
mod formats_safetensors;
mod graph_rules;
mod cka_reference;
mod cka_properties;
mod cli;
mod corruption;
#[cfg(feature = "burn")]
mod gmn_symmetry;
#[cfg(feature = "burn")]
mod gmn_train;
mod data_idx;
mod data_zoos;
#[cfg(feature = "gui")]
mod gui;
#[cfg(feature = "burn")]
mod inr_fit;
#[cfg(feature = "burn")]
mod study;
