//! "Run study…" (feature `burn`): the window that chooses a study config (the built-in demo or a
//! TOML file) and an output directory, and the background job that runs
//! `study::run_with_events` there. The job forwards the study's structured events: messages and
//! finished runs become the job's stage and progress fraction; every run-pair matrix (with the
//! study's summaries so far) is the job's typed progress ([`StudyPair`]), which
//! [`StudyRun::poll`] drains once per frame, so the explorer's study view fills in matrix
//! by matrix. Nothing is computed here.

use std::path::{Path, PathBuf};

use crate::jobs::{JobError, JobHandle, Registry, Reporter};
use crate::study::reader::{RunPairMatrix, StudyData};
use crate::study::{Results, StudyConfig, StudyEvent};
use crate::ui::app::commands::{Command, CommandQueue};

/// The "Run study…" window's fields.
pub struct RunStudyForm {
    /// Run the built-in demo study (otherwise the TOML in `config_path`).
    pub demo: bool,
    pub config_path: String,
    pub out: String,
    /// A native file or folder dialog and the field it fills.
    browse_job: Option<(JobHandle<Option<PathBuf>>, Field)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Field {
    Config,
    Out,
}

impl Default for RunStudyForm {
    fn default() -> Self {
        Self {
            demo: true,
            config_path: String::new(),
            out: default_out_dir("demo").display().to_string(),
            browse_job: None,
        }
    }
}

/// A new directory for a study's output: under the user's cache directory
/// (`$XDG_CACHE_HOME` or `~/.cache`, then `gmnscope/studies/`), or the temp directory.
pub fn default_out_dir(name: &str) -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    cache.join("gmnscope").join("studies").join(format!("{name}-{stamp}"))
}

impl RunStudyForm {
    /// The window; `false` once it is closed (run or dismissed).
    pub fn ui(&mut self, ctx: &egui::Context, commands: &mut CommandQueue, jobs: &Registry) -> bool {
        self.poll_browse();
        let (mut open, mut run) = (true, false);
        egui::Window::new("Run study")
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_TOP, [0.0, 80.0])
            .show(ctx, |ui| {
                ui.label("Trains GMN, MLP and CNN runs per seed and fills in the CKA matrices as they are computed.");
                ui.add_space(6.0);
                ui.radio_value(&mut self.demo, true, "Built-in demo study (procedural digits, a few minutes)");
                ui.radio_value(&mut self.demo, false, "Study config (TOML):");
                ui.add_enabled_ui(!self.demo, |ui| {
                    ui.horizontal(|ui| {
                        ui.add(
                            egui::TextEdit::singleline(&mut self.config_path)
                                .hint_text("/path/to/study.toml")
                                .desired_width(340.0),
                        );
                        if ui.add_enabled(self.browse_job.is_none(), egui::Button::new("Browse…")).clicked() {
                            self.browse(Field::Config, jobs);
                        }
                    });
                });
                ui.add_space(6.0);
                ui.label("Output directory (an existing study there with the same config is resumed):");
                ui.horizontal(|ui| {
                    ui.add(egui::TextEdit::singleline(&mut self.out).desired_width(340.0));
                    if ui.add_enabled(self.browse_job.is_none(), egui::Button::new("Browse…")).clicked() {
                        self.browse(Field::Out, jobs);
                    }
                });
                ui.add_space(8.0);
                let ready = !self.out.trim().is_empty() && (self.demo || !self.config_path.trim().is_empty());
                run = ui.add_enabled(ready, egui::Button::new("Run")).clicked();
            });
        if run {
            let config = (!self.demo).then(|| PathBuf::from(self.config_path.trim()));
            commands.send(Command::RunStudy { config, out: PathBuf::from(self.out.trim()) });
            return false;
        }
        open
    }

    /// The native dialog blocks its caller, so it runs on a worker; without one the fields work.
    fn browse(&mut self, field: Field, jobs: &Registry) {
        let pick = move |_: &Reporter<Option<PathBuf>>| {
            let dialog = rfd::FileDialog::new();
            Ok(match field {
                Field::Config => dialog.set_title("Study config").add_filter("TOML", &["toml"]).pick_file(),
                Field::Out => dialog.set_title("Study output directory").pick_folder(),
            })
        };
        self.browse_job = jobs.spawn("file dialog", pick).ok().map(|j| (j, field));
    }

    fn poll_browse(&mut self) {
        let Some((job, field)) = &mut self.browse_job else { return };
        let Some(done) = job.poll() else { return };
        let field = *field;
        self.browse_job = None;
        if let Ok(Some(path)) = done {
            let text = path.display().to_string();
            match field {
                Field::Config => self.config_path = text,
                Field::Out => self.out = text,
            }
        }
    }
}

/// A study job's progress: one run-pair matrix and the study's summaries so far.
pub struct StudyPair {
    pub matrix: RunPairMatrix,
    pub partial: Box<Results>,
}

/// A study running in the background.
pub struct StudyRun {
    pub out: PathBuf,
    pub job: JobHandle<PathBuf, StudyPair>,
    /// Every matrix received so far, in arrival order.
    matrices: Vec<RunPairMatrix>,
}

impl StudyRun {
    /// Starts the study of `config` (`None`: the demo) into `out`.
    pub fn start(config: Option<PathBuf>, out: PathBuf, jobs: &Registry) -> std::io::Result<Self> {
        let job_out = out.clone();
        let work = move |r: &Reporter<PathBuf, StudyPair>| run_job(config.as_deref(), &job_out, r);
        let job = jobs.spawn("study", work)?;
        Ok(Self { out, job, matrices: Vec::new() })
    }

    /// Polls the job: the study as far as it got (when new matrices arrived since the last
    /// call), and the job's result once it ended.
    pub fn poll(&mut self) -> (Option<StudyData>, Option<Result<PathBuf, JobError>>) {
        let mut partial = None;
        let matrices = &mut self.matrices;
        let done = self.job.poll_with(|pair| {
            matrices.push(pair.matrix);
            partial = Some(pair.partial);
        });
        let update = partial.map(|partial| StudyData {
            dir: self.out.clone(),
            results: *partial,
            matrices: self.matrices.clone(),
            problems: Vec::new(),
        });
        (update, done)
    }

    /// Matrices received so far.
    pub fn matrix_count(&self) -> usize {
        self.matrices.len()
    }
}

/// The job body: loads the config, runs the study, forwards its events.
fn run_job(config: Option<&Path>, out: &Path, r: &Reporter<PathBuf, StudyPair>) -> Result<PathBuf, JobError> {
    let config = match config {
        None => StudyConfig::load("demo"),
        Some(path) => StudyConfig::load(&path.display().to_string()),
    }
    .map_err(JobError::Failed)?;
    r.stage(format!("study '{}' -> {}", config.name, out.display()), Some(0.0));
    let mut fraction = 0.0f32;
    let mut on_event = |event: StudyEvent| match event {
        StudyEvent::Message(line) => r.stage(line, Some(fraction)),
        StudyEvent::RunFinished { run, done, total, .. } => {
            fraction = done as f32 / total.max(1) as f32;
            r.stage(format!("{} ready ({done}/{total} runs)", run.label()), Some(fraction));
        }
        StudyEvent::Pair { matrix, partial } => {
            r.stage(format!("CKA {} vs {}", matrix.a.label(), matrix.b.label()), Some(fraction));
            r.progress(StudyPair { matrix, partial });
        }
    };
    crate::study::run_with_events(&config, out, r.cancel_token(), &mut on_event)
        .map_err(|e| JobError::from(e).context("study"))?;
    Ok(out.to_path_buf())
}
