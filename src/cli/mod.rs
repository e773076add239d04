//! Subcommands of the binary: each parses its own arguments (clap) and returns `anyhow::Result`.
//! Errors are printed once, by `main`, as one line; the exit code is then 2.

pub mod align;
pub mod cka;
pub mod diff;
pub mod fit_inrs;
pub mod graph;
#[cfg(feature = "gui")]
pub mod gui;
/// Without the `gui` feature the binary is headless: subcommands only.
#[cfg(not(feature = "gui"))]
pub mod gui {
    pub fn run(
        _files: &[std::path::PathBuf],
        _screenshot: Option<&std::path::Path>,
        _quit_after_frames: Option<u64>,
        _tab: Option<&str>,
        _gmn: Option<&std::path::Path>,
    ) -> anyhow::Result<()> {
        anyhow::bail!("this gmnscope was built without the `gui` feature; use a subcommand (see --help)")
    }
}
pub mod infer;
pub mod inspect;
pub mod retrieve;
pub mod study;
pub mod train;
