//! Subcommands of the binary: each parses its own arguments (clap) and returns `anyhow::Result`.
//! Errors are printed once, by `main`, as one line; the exit code is then 2.

pub mod cka;
pub mod fit_inrs;
pub mod graph;
pub mod gui;
pub mod infer;
pub mod inspect;
pub mod train;
