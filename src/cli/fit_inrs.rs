//! `gmnscope fit-inrs`. STUB: replaced by the real command.

#[derive(clap::Args)]
pub struct FitInrsArgs {
    pub rest: Vec<String>,
}

pub fn run(_args: &FitInrsArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
