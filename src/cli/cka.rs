//! `gmnscope cka`. STUB.

#[derive(clap::Args)]
pub struct CkaArgs {
    pub file: std::path::PathBuf,
}

pub fn run(_args: &CkaArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
