//! `gmnscope graph`. STUB.

#[derive(clap::Args)]
pub struct GraphArgs {
    pub file: std::path::PathBuf,
}

pub fn run(_args: &GraphArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
