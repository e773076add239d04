//! Integration tests: one binary, a module per topic.

mod alloc_meter;
mod bounded_work;
mod cka_csv;
mod cka_properties;
mod cka_reference;
mod cli;
mod common;
mod compare;
mod corruption;
mod data_idx;
mod data_zoos;
mod formats_numpy;
mod formats_onnx;
mod formats_pytorch;
mod formats_safetensors;
mod formats_sharded;
mod fuzz_readers;
#[cfg(feature = "burn")]
mod gmn_augment;
#[cfg(feature = "burn")]
mod gmn_canonical;
#[cfg(feature = "burn")]
mod gmn_fused;
#[cfg(feature = "burn")]
mod gmn_invariance;
#[cfg(feature = "burn")]
mod gmn_symmetry;
#[cfg(feature = "burn")]
mod gmn_train;
mod graph_rules;
#[cfg(feature = "gui")]
mod gui;
#[cfg(feature = "gui")]
mod gui_live;
#[cfg(feature = "gui")]
mod gui_overlay;
#[cfg(feature = "gui")]
mod gui_study;
#[cfg(feature = "gui")]
mod gui_support;
mod hostile_inputs;
#[cfg(feature = "burn")]
mod inr_fit;
mod retrieval;
#[cfg(feature = "burn")]
mod study;
