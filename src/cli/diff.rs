//! `gmnscope diff A B [--align] [--json]`: per-layer relative change and cosine similarity of two
//! checkpoints, the layers only one has, and whether they are equal (up to a permutation of
//! hidden units with `--align`).

use std::path::PathBuf;

use anyhow::Context as _;

use gmnscope::arch;
use gmnscope::compare::align::{self, Alignment};
use gmnscope::compare::diff::{self, Diff, Verdict};
use gmnscope::text::shown;

use super::align::AlignLimits;
use super::inspect::open_model;

#[derive(clap::Args)]
pub struct DiffArgs {
    pub a: PathBuf,
    pub b: PathBuf,
    /// Align B's hidden units to A's first (weight matching; needs one architecture).
    #[arg(long)]
    pub align: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub limits: AlignLimits,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    a: String,
    b: String,
    #[serde(flatten)]
    diff: &'a Diff,
    /// With `--align`: the alignment's distances and groups.
    alignment: Option<&'a Alignment>,
}

pub fn run(args: &DiffArgs) -> anyhow::Result<()> {
    let a = open_model(&args.a)?;
    let b = open_model(&args.b)?;
    let (a_arch, b_arch) = (arch::recover(&a), arch::recover(&b));
    let alignment =
        if args.align { Some(align::align(&a, &a_arch, &b, &b_arch, &args.limits.options())?) } else { None };
    let d = diff::diff(&a, &a_arch, &b, &b_arch, alignment.as_ref());
    if args.json {
        let report = Report {
            a: a.path.display().to_string(),
            b: b.path.display().to_string(),
            diff: &d,
            alignment: alignment.as_ref(),
        };
        println!("{}", serde_json::to_string_pretty(&report).context("serialising the report")?);
        return Ok(());
    }
    let opt = |v: Option<f64>, f: fn(f64) -> String| v.map_or("-".to_string(), f);
    println!("{:<40}  {:>12}  {:>9}  {:>12}", "layer", "||A-B||/||A||", "cosine", "max |A-B|");
    for l in &d.layers {
        println!(
            "{:<40}  {:>12}  {:>9}  {:>12.4e}",
            shown(&format!("{} ({})", l.name, l.kind)).to_string(),
            opt(l.relative_change, |v| format!("{v:.6}")),
            opt(l.cosine, |v| format!("{v:.6}")),
            l.max_abs_difference
        );
    }
    println!("{:<40}  {:>12}", "total", opt(d.relative_change, |v| format!("{v:.6}")));
    for (what, list) in [("only in A", &d.only_in_a), ("only in B", &d.only_in_b), ("shapes differ", &d.shape_differs)]
    {
        if !list.is_empty() {
            let names: Vec<String> = list.iter().map(|n| shown(n).to_string()).collect();
            println!("{what} ({}): {}", list.len(), names.join(", "));
        }
    }
    if let Some(al) = &alignment {
        println!(
            "aligned B to A: ||A-B|| {:.6e} -> {:.6e} ({} sweeps)",
            al.distance_before, al.distance_after, al.sweeps
        );
    }
    let verdict = match d.verdict {
        Verdict::Equal => "equal",
        Verdict::EquivalentUpToPermutation => "equivalent up to permutation",
        Verdict::Different => "different",
    };
    println!(
        "verdict: {verdict} (equal means every element within {:e} x the largest |value| of A's tensor{})",
        d.tolerance,
        if d.aligned { ", after aligning B's units to A's" } else { "" }
    );
    Ok(())
}
