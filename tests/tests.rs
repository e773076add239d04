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
