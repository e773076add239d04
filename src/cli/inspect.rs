//! `gmnscope inspect`. STUB.

#[derive(clap::Args)]
pub struct InspectArgs {
    pub file: std::path::PathBuf,
}

pub fn run(_args: &InspectArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
