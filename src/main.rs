//! The `gmnscope` binary: no arguments (or only files) opens the desktop app; subcommands are the
//! headless twins of the app's actions.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "gmnscope", version, about = "Weight-space learning workbench: parameter graphs, graph metanetworks, CKA")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Model files to open in the app.
    files: Vec<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Summarise a model file: format, tensors, recovered layers, parameter graph size.
    Inspect(cli::inspect::InspectArgs),
    /// Export a model's explicit parameter graph as .npz (+ JSON sidecar).
    Graph(cli::graph::GraphArgs),
    /// Layer-by-layer CKA between two activation files.
    Cka(cli::cka::CkaArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Some(Command::Inspect(args)) => cli::inspect::run(&args),
        Some(Command::Graph(args)) => cli::graph::run(&args),
        Some(Command::Cka(args)) => cli::cka::run(&args),
        None => cli::gui::run(&cli.files),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, the whole cause chain: "error: FILE: what is wrong".
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GMNSCOPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
