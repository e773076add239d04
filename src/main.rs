//! The `gmnscope` binary: no arguments (or only files) opens the desktop app; subcommands are the
//! headless twins of the app's actions.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gmnscope",
    version,
    about = "Weight-space learning workbench: parameter graphs, graph metanetworks, CKA"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Model files to open in the app (`demo:NAME` for an embedded demo model).
    files: Vec<std::path::PathBuf>,
    /// App: once the workspace has loaded, save a screenshot of the window as PNG and exit.
    #[arg(long, value_name = "OUT.png")]
    screenshot: Option<std::path::PathBuf>,
    /// App: exit after this many frames of the loaded workspace (with --screenshot: frames before it).
    #[arg(long, value_name = "N")]
    quit_after_frames: Option<u64>,
    /// App: the tab shown first (model, gmn or cka).
    #[arg(long, value_name = "TAB")]
    tab: Option<String>,
    /// App: load this trained GMN run, run it on the active model and colour the graph by its
    /// node activations.
    #[arg(long, value_name = "RUN")]
    gmn: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Summarise a model file: format, tensors, recovered layers, parameter graph size.
    Inspect(cli::inspect::InspectArgs),
    /// Export a model's explicit parameter graph as .npz (+ JSON sidecar).
    Graph(cli::graph::GraphArgs),
    /// Layer-by-layer CKA between two activation files.
    Cka(cli::cka::CkaArgs),
    /// Fit a zoo of SIREN INRs to images (IDX files or the procedural demo set).
    FitInrs(cli::fit_inrs::FitInrsArgs),
    /// Train a graph metanetwork on a zoo.
    Train(cli::train::TrainArgs),
    /// Run a trained graph metanetwork on a model file.
    Infer(cli::infer::InferArgs),
    /// The networks of a zoo nearest to a model by their GMN embedding.
    Retrieve(cli::retrieve::RetrieveArgs),
    /// Permute B's hidden units onto A's (weight matching) and write B permuted.
    Align(cli::align::AlignArgs),
    /// Per-layer differences of two checkpoints, optionally after aligning B to A.
    Diff(cli::diff::DiffArgs),
    /// The seed study: GMN vs MLP vs CNN representations across seeds (CKA, accuracy, agreement).
    Study(cli::study::StudyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Only for the headless commands: the app talks to sockets (display, portals) where a
    // closed peer must be an error, not a signal that ends it.
    if cli.command.is_some() {
        restore_default_sigpipe();
    }
    init_logging();
    let result = match cli.command {
        Some(Command::Inspect(args)) => cli::inspect::run(&args),
        Some(Command::Graph(args)) => cli::graph::run(&args),
        Some(Command::Cka(args)) => cli::cka::run(&args),
        Some(Command::FitInrs(args)) => cli::fit_inrs::run(&args),
        Some(Command::Train(args)) => cli::train::run(&args),
        Some(Command::Infer(args)) => cli::infer::run(&args),
        Some(Command::Retrieve(args)) => cli::retrieve::run(&args),
        Some(Command::Study(args)) => cli::study::run(&args),
        Some(Command::Align(args)) => cli::align::run(&args),
        Some(Command::Diff(args)) => cli::diff::run(&args),
        None => cli::gui::run(
            &cli.files,
            cli.screenshot.as_deref(),
            cli.quit_after_frames,
            cli.tab.as_deref(),
            cli.gmn.as_deref(),
        ),
    };
    report_peak_memory();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, the whole cause chain: "error: FILE: what is wrong". Messages quote names
            // from files; the last gate escapes control bytes and cuts runaway lengths.
            eprintln!("error: {}", gmnscope::text::shown_message(&format!("{err:#}")));
            ExitCode::from(2)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GMNSCOPE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,winit=error,wgpu_hal=error,wgpu_core=error,naga=error")
    });
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// With `GMNSCOPE_PEAK_RSS=1`, prints this process's peak resident memory (Linux `VmHWM`) to
/// stderr. Benchmarks use it: a parent's `getrusage(RUSAGE_CHILDREN)` also counts the memory the
/// child shared with the parent before `exec`, which would hide the real figure.
fn report_peak_memory() {
    if std::env::var_os("GMNSCOPE_PEAK_RSS").is_none() {
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
        eprintln!("peak RSS: {}", line.trim_start_matches("VmHWM:").trim());
    }
}

/// Rust ignores SIGPIPE, so printing to a closed pipe (`gmnscope infer ... | head`) panics.
/// A command-line tool should end quietly there, as `cat` does: restore the default action.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; only resets a signal action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
