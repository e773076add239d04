//! No subcommand: the desktop app. STUB.

pub fn run(_files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    anyhow::bail!("GUI not implemented yet")
}
