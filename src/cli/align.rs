//! `gmnscope align A B --out OUT.safetensors [--json]`: permutes B's hidden units onto A's by
//! weight matching and writes B permuted, with B's tensor names, order and dtypes.

use std::path::PathBuf;

use anyhow::Context as _;

use gmnscope::arch;
use gmnscope::compare::align::{self, ASSIGNMENT_ENTRIES, AlignOptions, Alignment, SWEEP_WORK};
use gmnscope::text::{shown, shown_message};

use super::inspect::open_model;

#[derive(clap::Args)]
pub struct AlignArgs {
    /// The reference network.
    pub a: PathBuf,
    /// The network to permute onto A (same architecture).
    pub b: PathBuf,
    /// Where to write B permuted (safetensors).
    #[arg(long, value_name = "OUT.safetensors")]
    pub out: PathBuf,
    /// Print one JSON object instead of the readable summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub limits: AlignLimits,
}

/// Bounds on alignment work, shared by `align` and `diff --align`.
#[derive(clap::Args, Clone, Copy)]
pub struct AlignLimits {
    /// Largest dense assignment (units x units of one permutation group); larger groups are
    /// refused before anything of that size is allocated.
    #[arg(long, value_name = "N", default_value_t = ASSIGNMENT_ENTRIES.default)]
    pub max_assignment_entries: u64,
    /// Most multiply-adds of one weight-matching sweep.
    #[arg(long, value_name = "N", default_value_t = SWEEP_WORK.default)]
    pub max_align_work: u64,
    /// Seed of the order in which groups are solved.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl AlignLimits {
    pub fn options(&self) -> AlignOptions {
        AlignOptions {
            max_assignment_entries: self.max_assignment_entries,
            max_sweep_work: self.max_align_work,
            seed: self.seed,
            ..AlignOptions::default()
        }
    }
}

#[derive(serde::Serialize)]
struct Report<'a> {
    a: String,
    b: String,
    out: String,
    #[serde(flatten)]
    alignment: &'a Alignment,
}

pub fn run(args: &AlignArgs) -> anyhow::Result<()> {
    let a = open_model(&args.a)?;
    let b = open_model(&args.b)?;
    let (a_arch, b_arch) = (arch::recover(&a), arch::recover(&b));
    let alignment = align::align(&a, &a_arch, &b, &b_arch, &args.limits.options())?;
    let tensors = alignment.aligned_tensors(&b, &b_arch);
    gmnscope::checkpoint::writer::write_safetensors(&args.out, &tensors)
        .with_context(|| format!("{}: writing the aligned network", args.out.display()))?;
    if args.json {
        let report = Report {
            a: a.path.display().to_string(),
            b: b.path.display().to_string(),
            out: args.out.display().to_string(),
            alignment: &alignment,
        };
        println!("{}", serde_json::to_string_pretty(&report).context("serialising the report")?);
    } else {
        print_alignment(&alignment);
        println!("wrote {}", shown(&args.out.display().to_string()));
    }
    Ok(())
}

/// The readable summary: groups, per-layer distances, totals.
pub fn print_alignment(al: &Alignment) {
    let aligned: Vec<_> = al.groups.iter().filter(|g| g.fixed.is_none()).collect();
    println!(
        "aligned {} permutation groups in {} sweeps{}",
        aligned.len(),
        al.sweeps,
        if al.converged { " (fixed point)" } else { " (sweep limit reached)" }
    );
    for g in &aligned {
        println!("  {:<40}  {:>6} units  {:>6} moved", shown(&g.name).to_string(), g.units, g.moved);
    }
    let fixed = al.groups.iter().filter(|g| g.fixed.is_some()).count();
    if fixed > 0 {
        println!("kept in order ({fixed}):");
        for g in al.groups.iter().filter(|g| g.fixed.is_some()) {
            println!(
                "  {:<40}  {:>6} units  {}",
                shown(&g.name).to_string(),
                g.units,
                shown_message(g.fixed.as_deref().unwrap_or(""))
            );
        }
    }
    println!();
    println!("{:<40}  {:>14}  {:>14}", "layer", "||A-B|| before", "after");
    for l in &al.layers {
        println!(
            "{:<40}  {:>14.6e}  {:>14.6e}",
            shown(&format!("{} ({})", l.name, l.kind)).to_string(),
            l.before,
            l.after
        );
    }
    println!("{:<40}  {:>14.6e}  {:>14.6e}", "total", al.distance_before, al.distance_after);
}
