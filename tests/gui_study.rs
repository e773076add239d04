//! The CKA explorer's study view, driven headlessly with egui_kittest (lavapipe where there is no
//! GPU). A small study directory is made with the study module's own analysis functions and
//! serialisation types (so these tests break if the results.json schema drifts): opening it shows
//! the seed-comparison plot, the agreement chart with its counts, and a heatmap whose hovered cell
//! reads the matrix CSV's value; the pickers switch matrices; export runs in a job; a corrupt
//! results.json gives an error toast naming the file; the real binary opens `gmnscope DIR`.
#![cfg(feature = "burn")]

use std::collections::BTreeMap;
use std::path::Path;

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use gmnscope::cka::{Matrix, Options};
use gmnscope::rng::SplitMix64;
use gmnscope::study::analysis::{self, FAMILIES, PairMatrix, Run};
use gmnscope::study::files::ActivationSet;
use gmnscope::study::{CkaResults, OutputFiles, Probe, Results, figures, reader};
use gmnscope::ui::App;
use gmnscope::ui::app::commands::{Command, Tab};
use gmnscope::ui::app::state::ThemeChoice;
use gmnscope::ui::widgets::toasts::Level;

use crate::gui_support::{harness, settle};

const SAMPLES: usize = 24;
const SEEDS: [u64; 3] = [0, 1, 2];

/// Which probe samples each family classifies correctly (every seed alike): GMN only 0..6,
/// GMN+MLP 6..9, all 9..12, MLP+CNN 12..18, CNN only 18..21, MLP only 22, none 21 and 23.
fn correct(family: &str, i: usize) -> bool {
    match family {
        "gmn" => i < 12,
        "mlp" => (6..18).contains(&i) || i == 22,
        _ => (9..21).contains(&i),
    }
}

/// A study of synthetic activations: each layer = a shared signal + seed noise, much noisier for
/// the GMN (so its seeds disagree, as in the paper). Written the way `study::run` writes it.
struct Sample {
    results: Results,
    runs: Vec<Run>,
    pairs: Vec<PairMatrix>,
}

/// Writes the study into `dir` (created; tests use a fixed name inside a temp dir, so the
/// caption in the snapshots does not change between runs).
fn write_study(dir: &Path) -> Sample {
    std::fs::create_dir_all(dir).expect("study dir");
    let labels: Vec<u8> = (0..SAMPLES).map(|i| (i % 10) as u8).collect();
    let layers: [(&str, &[(&str, usize)]); 3] = [
        ("gmn", &[("block1", 6), ("block2", 6)]),
        ("mlp", &[("fc1", 8), ("fc2", 6), ("logits", 10)]),
        ("cnn", &[("conv1", 12), ("conv2", 8), ("fc1", 6), ("logits", 10)]),
    ];
    let mut base_rng = SplitMix64::new(11);
    let mut runs = Vec::new();
    for (family, shapes) in layers {
        let base: Vec<Vec<f32>> =
            shapes.iter().map(|(_, p)| (0..SAMPLES * p).map(|_| base_rng.normal()).collect()).collect();
        let noise = if family == "gmn" { 2.5 } else { 0.3 };
        for seed in SEEDS {
            let mut rng = SplitMix64::new(100 + seed * 7 + family.len() as u64);
            let acts = shapes
                .iter()
                .zip(&base)
                .map(|((_, p), b)| (*p, b.iter().map(|v| v + noise * rng.normal()).collect()))
                .collect();
            let predictions =
                labels.iter().enumerate().map(|(i, &l)| if correct(family, i) { l } else { (l + 1) % 10 }).collect();
            let names = shapes.iter().map(|(n, _)| n.to_string()).collect();
            runs.push(Run { family, seed, acts: ActivationSet { names, layers: acts, predictions } });
        }
    }
    let pairs = analysis::all_pairs(&runs, &Options::linear()).expect("CKA of every pair");
    let mut files = OutputFiles::default();
    std::fs::create_dir_all(dir.join("cka")).expect("cka dir");
    for p in &pairs {
        let (a, b) = (&runs[p.a], &runs[p.b]);
        let rel = format!("cka/{}_vs_{}.csv", a.label(), b.label());
        figures::write_matrix_csv(&dir.join(&rel), &a.acts.names, &b.acts.names, &p.matrix).expect("CSV");
        files.matrices.push(rel);
    }
    let mut families = BTreeMap::new();
    let mut summaries = BTreeMap::new();
    for (i, fa) in FAMILIES.iter().enumerate() {
        families.insert(fa.to_string(), analysis::family_summary(&runs, &pairs, fa).expect("family"));
        for fb in &FAMILIES[i..] {
            let s = analysis::family_pair_summary(&runs, &pairs, fa, fb).expect("pair");
            let rel = format!("cka/mean_{fa}-{fb}.csv");
            std::fs::write(dir.join(&rel), figures::matrix_csv(&s.row_layers, &s.col_layers, &s.mean_matrix))
                .expect("mean CSV");
            files.matrices.push(rel);
            summaries.insert(format!("{fa}-{fb}"), s);
        }
    }
    let mut layer_names = BTreeMap::new();
    for r in &runs {
        layer_names.entry(r.family.to_string()).or_insert_with(|| r.acts.names.clone());
    }
    let results = Results {
        format: gmnscope::study::FORMAT.into(),
        version: gmnscope::study::VERSION,
        name: "kittest".into(),
        cka_estimator: "linear".into(),
        seeds: SEEDS.to_vec(),
        probe: Probe { split: "test".into(), samples: SAMPLES, labels: labels.clone() },
        accuracy: analysis::accuracies(&runs, &labels),
        layers: layer_names,
        cka: CkaResults { families, pairs: summaries },
        agreement: analysis::agreement(&runs, &labels),
        files,
    };
    let json = serde_json::to_string_pretty(&results).expect("serialise");
    std::fs::write(dir.join(reader::RESULTS_FILE), json).expect("results.json");
    Sample { results, runs, pairs }
}

impl Sample {
    /// The CKA matrix of runs (family, seed) x (family, seed), oriented that way.
    fn matrix(&self, a: (&str, u64), b: (&str, u64)) -> Vec<Vec<Option<f64>>> {
        let find = |(f, s): (&str, u64)| self.runs.iter().position(|r| r.family == f && r.seed == s).expect("run");
        let (ia, ib) = (find(a), find(b));
        for p in &self.pairs {
            if (p.a, p.b) == (ia, ib) {
                return p.matrix.to_rows();
            }
            if (p.a, p.b) == (ib, ia) {
                let rows = p.matrix.to_rows();
                return (0..p.matrix.cols()).map(|j| rows.iter().map(|r| r[j]).collect()).collect();
            }
        }
        panic!("no pair {a:?} {b:?}");
    }
}

fn assert_close(shown: &Matrix, expected: &[Vec<Option<f64>>], tol: f64) {
    assert_eq!((shown.rows(), shown.cols()), (expected.len(), expected[0].len()));
    for (i, row) in expected.iter().enumerate() {
        for (j, e) in row.iter().enumerate() {
            let s = shown.get(i, j);
            assert!(s.zip(*e).is_some_and(|(s, e)| (s - e).abs() <= tol), "({i}, {j}): {s:?} vs {e:?}");
        }
    }
}

fn errors(h: &Harness<'static, App>) -> Vec<String> {
    h.state().toasts().texts().filter(|t| t.0 == Level::Error).map(|t| t.1.to_string()).collect()
}

/// Picks `item` from the combo box labelled `label`.
fn choose(h: &mut Harness<'static, App>, label: &str, item: &str) {
    h.get_by_label(label).click();
    h.run_steps(2);
    h.get_by_label(item).click();
    h.run_steps(3);
}

#[test]
fn study_view_shows_seed_plot_agreement_and_heatmap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let study = dir.path().join("kittest-study");
    let sample = write_study(&study);
    let r = &sample.results;
    // The designed agreement (and the library's count of it).
    let a = &r.agreement;
    assert_eq!((a.gmn_only, a.mlp_only, a.cnn_only, a.all, a.two_families, a.none), (6, 1, 3, 3, 9, 2));
    let gmn = r.cka.families["gmn"].overall.as_ref().expect("gmn").mean;
    let mlp = r.cka.families["mlp"].overall.as_ref().expect("mlp").mean;
    assert!(gmn < mlp, "the noisy GMN seeds agree less ({gmn} vs {mlp})");

    let mut h = harness(ThemeChoice::Dark);
    settle(&mut h);
    // A study directory given as a "file" opens the study view (as `gmnscope DIR` and drops do).
    h.state_mut().send(Command::OpenFiles(vec![study.clone()]));
    settle(&mut h);
    assert_eq!(h.state().tab(), Tab::Cka);
    assert!(errors(&h).is_empty(), "error toasts: {:?}", errors(&h));
    let view = h.state().cka().study().expect("the study view is shown");

    // Seed-comparison plot: one curve per family, the per-layer statistics of results.json.
    h.get_by_label("Seed comparison");
    let curves = view.curves();
    assert_eq!(curves.iter().map(|c| c.family.as_str()).collect::<Vec<_>>(), ["gmn", "mlp", "cnn"]);
    for c in curves {
        let s = &r.cka.families[&c.family];
        assert_eq!(c.points.len(), s.layers.len());
        for p in &c.points {
            let expected = s.per_layer[p.index].as_ref().expect("defined");
            assert!((p.stats.mean - expected.mean).abs() < 1e-12 && (p.stats.max - expected.max).abs() < 1e-12);
            assert_eq!(p.stats.count, 3, "3 seeds: 3 seed pairs");
        }
        let last = c.points.last().expect("points");
        assert_eq!((c.points[0].depth, last.depth), (0.0, 1.0), "depth normalised to 0..1");
        // The caption under the plot states each family's mean.
        let overall = c.overall.as_ref().expect("overall");
        h.get_by_label_contains(&format!("{}: mean {:.3}", c.family.to_uppercase(), overall.mean));
    }
    // Cross-family bars and the agreement chart with its counts.
    h.get_by_label("Cross-family CKA");
    h.get_by_label("Prediction agreement");
    for (name, count) in reader::agreement_bars(r) {
        h.get_by_label(name);
        let rows = h.query_all_by_label(&count.to_string()).count();
        assert!(rows >= 1, "count {count} of '{name}' is shown");
    }
    h.get_by_label("total");
    h.get_by_label(&SAMPLES.to_string());
    // Accuracy table: MLP correct on 13 of 24 samples with every seed (GMN and CNN on 12).
    h.get_by_label("Accuracy on the probe set");
    assert_eq!(h.query_all_by_label("54.2 %").count(), SEEDS.len() + 1, "MLP seeds and their mean");
    assert_eq!(h.query_all_by_label("50.0 %").count(), 2 * (SEEDS.len() + 1), "GMN and CNN");

    // The heatmap: GMN seed 0 x GMN seed 1 first, equal to the core's matrix (CSV has 6 decimals).
    let shown = h.state().cka().result().expect("a matrix is shown");
    assert_eq!(shown.rows, ["block1", "block2"]);
    assert_eq!(shown.n, SAMPLES);
    assert_close(&shown.matrix, &sample.matrix(("gmn", 0), ("gmn", 1)), 5e-7);
    assert_eq!((shown.row_title.as_str(), shown.col_title.as_str()), ("GMN seed 0", "GMN seed 1"));

    // Switch to GMN x CNN (seeds 0 x 0), then to its seed 2 x seed 1 matrix.
    choose(&mut h, "Families", "GMN × CNN");
    let shown = h.state().cka().result().expect("matrix");
    assert_eq!(shown.cols, ["conv1", "conv2", "fc1", "logits"]);
    assert_close(&shown.matrix, &sample.matrix(("gmn", 0), ("cnn", 0)), 5e-7);
    choose(&mut h, "Seeds", "seed 2 × seed 1");
    let shown = h.state().cka().result().expect("matrix");
    assert_eq!(shown.col_title, "CNN seed 1");
    let expected = sample.matrix(("gmn", 2), ("cnn", 1));
    assert_close(&shown.matrix, &expected, 5e-7);

    // Hover a cell: the readout names both layers and states the value.
    let (row, col) = (1, 2);
    let pos = h.state().cka().heatmap.cell_center(row, col).expect("the heatmap was drawn");
    h.hover_at(pos);
    h.run_steps(3);
    let prefix = "block2 × fc1: CKA = ";
    let node = h.get_by_label_contains(prefix);
    let readout = node.accesskit_node().label().or_else(|| node.value()).expect("a label");
    let value: f64 = readout.trim_start_matches(prefix).trim().parse().expect("a number");
    let reference = expected[row][col].expect("defined");
    assert!((value - reference).abs() <= 1e-6, "hover shows {value}, core {reference}");
    // Click selects it: the details line states the value and the runs.
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::default(),
        });
        h.step();
    }
    h.run_steps(3);
    h.get_by_label_contains(&format!("Selected: block2 (GMN seed 2) × fc1 (CNN seed 1): {value:.6}"));
    h.snapshot("cka_study");

    // The mean over seed pairs is the summary's mean matrix.
    choose(&mut h, "Seeds", "mean over seed pairs");
    let shown = h.state().cka().result().expect("matrix");
    assert_close(&shown.matrix, &r.cka.pairs["gmn-cnn"].mean_matrix, 1e-12);
    assert!(errors(&h).is_empty(), "error toasts: {:?}", errors(&h));
}

/// Export of the shown study matrix runs as a job and reports the written files.
#[test]
fn study_matrix_exports_in_a_job() {
    let dir = tempfile::tempdir().expect("temp dir");
    let study = dir.path().join("kittest-study");
    let sample = write_study(&study);
    let mut h = harness(ThemeChoice::Light);
    settle(&mut h);
    h.state_mut().send(Command::OpenStudy(study.join("results.json")));
    settle(&mut h);
    choose(&mut h, "Families", "MLP × MLP (across seeds)");
    h.snapshot("cka_study_light_mlp");
    let (png, csv) = (dir.path().join("out.png"), dir.path().join("out.csv"));
    h.state_mut().send(Command::ExportCka { path: png.clone(), png: true });
    h.state_mut().send(Command::ExportCka { path: csv.clone(), png: false });
    h.step();
    // The command pass only started the jobs: the status bar lists them until they finish.
    assert!(h.state().is_busy() || (png.exists() && csv.exists()));
    settle(&mut h);
    assert!(std::fs::read(&png).expect("PNG written").starts_with(b"\x89PNG\r\n\x1a\n"));
    let text = std::fs::read_to_string(&csv).expect("CSV written");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "layer,fc1,fc2,logits", "the one CKA CSV dialect (cka::csv)");
    let expected = sample.matrix(("mlp", 0), ("mlp", 1));
    let first: f64 = lines[1].split(',').nth(1).expect("a value").parse().expect("a number");
    assert!((first - expected[0][0].expect("defined")).abs() < 5e-7);
    let infos: Vec<String> = h.state().toasts().texts().filter(|t| t.0 == Level::Info).map(|t| t.1.into()).collect();
    for path in [&png, &csv] {
        assert!(infos.iter().any(|t| t.contains(&path.display().to_string())), "toast for {path:?}: {infos:?}");
    }
}

/// Bad study directories: an error toast naming the file, no panic, the previous view stays.
#[test]
fn corrupt_or_missing_study_files_give_error_toasts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let study = dir.path().join("kittest-study");
    write_study(&study);
    let results = study.join("results.json");
    let good = std::fs::read_to_string(&results).expect("results");
    let mut h = harness(ThemeChoice::Dark);
    settle(&mut h);

    std::fs::write(&results, &good[..good.len() / 3]).expect("truncate");
    h.state_mut().send(Command::OpenStudy(study.clone()));
    settle(&mut h);
    let e = errors(&h);
    assert!(e.iter().any(|t| t.contains(&results.display().to_string()) && t.contains("not valid JSON")), "{e:?}");
    assert!(h.state().cka().study().is_none());

    // A CLI `cka --json` file is not a study.
    std::fs::write(&results, r#"{"rows":["a"],"cols":["b"],"matrix":[[1.0]]}"#).expect("write");
    h.state_mut().send(Command::OpenStudy(results.clone()));
    settle(&mut h);
    assert!(errors(&h).iter().any(|t| t.contains("not a gmnscope study results file")), "{:?}", errors(&h));

    // A missing matrix CSV: the study opens, and a toast names the file.
    std::fs::write(&results, &good).expect("restore");
    let missing = study.join("cka/gmn-s0_vs_gmn-s1.csv");
    std::fs::remove_file(&missing).expect("remove");
    h.state_mut().send(Command::OpenStudy(study.clone()));
    settle(&mut h);
    assert!(h.state().cka().study().is_some(), "opens without one matrix");
    assert!(errors(&h).iter().any(|t| t.contains(&missing.display().to_string())), "{:?}", errors(&h));
    let shown = h.state().cka().result().expect("another matrix is shown");
    assert_eq!(shown.col_title, "GMN seed 2", "the first readable GMN seed pair");

    // No results.json at all.
    let empty = tempfile::tempdir().expect("temp dir");
    h.state_mut().send(Command::OpenStudy(empty.path().to_path_buf()));
    settle(&mut h);
    let expected = empty.path().join("results.json").display().to_string();
    assert!(errors(&h).iter().any(|t| t.contains(&expected)), "{:?}", errors(&h));
    assert!(h.state().cka().study().is_some(), "the open study stays");
}

/// `gmnscope DIR --tab cka --screenshot OUT` under xvfb: the study view renders and the app exits.
#[test]
fn binary_opens_a_study_directory() {
    if std::process::Command::new("xvfb-run").arg("--help").output().is_err() {
        eprintln!("skipped: xvfb-run is not installed (scripts/setup.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let study = dir.path().join("kittest-study");
    write_study(&study);
    let out = dir.path().join("shot.png");
    let status = std::process::Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1600x1000x24"])
        .arg(env!("CARGO_BIN_EXE_gmnscope"))
        .arg(&study)
        .args(["--tab", "cka", "--screenshot"])
        .arg(&out)
        .env("GMNSCOPE_THEME", "dark")
        .status()
        .expect("xvfb-run starts");
    assert!(status.success(), "gmnscope exited with {status}");
    let bytes = std::fs::read(&out).expect("screenshot written");
    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder.read_info().expect("valid PNG header");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    reader.next_frame(&mut pixels).expect("valid PNG data");
    let mut colours: Vec<u32> = pixels.chunks_exact(4).map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]])).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 200, "only {} distinct colours", colours.len());
}
