//! The CKA explorer tab: a layer-by-layer CKA heatmap of two activation sets (the built-in demo
//! pair until files are opened), estimator controls (kernel, sigma, debiased, minibatch), a
//! details side panel for the clicked cell, and PNG/CSV export. With a seed study open
//! (`gmnscope study` output, feature `burn`) it becomes the study view: a picker over every
//! run-pair matrix and a summary column with the seed-comparison, cross-family and agreement
//! charts (see [`crate::ui::study::view`]).
//!
//! Loading, computing and exporting run as jobs; [`CkaExplorer::logic`] (called from `App::logic`)
//! polls them and restarts the computation when the settings change. With a minibatch size the
//! job reports each intermediate estimate as its progress, so the heatmap fills in live.
//!
//! Two live sources (feature `burn`): [`CkaSource::Training`] shows the GMN tab's newest training
//! CKA matrix (each block at the latest checkpoint vs at initialisation; the app hands it over
//! every frame through [`CkaExplorer::follow_training`]); and "Run study…" runs a seed study in
//! the background (`ui::study::run`), whose matrices fill the study view as they are computed before
//! the finished directory is opened like any other study.
//!
//! Split as the app is: this file holds the state and its accessors; `command_handling.rs` the
//! entry points the app's commands call (open a source, a study, run one, export, follow
//! training), `logic.rs` the per-frame job polling, `ui.rs` the layout (CKA view and study host).

mod command_handling;
pub mod data;
mod logic;
mod ui;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::jobs::JobHandle;
use crate::ui::cka::data::{CkaResult, CkaSettings, LayerPair};
use crate::ui::widgets::heatmap::HeatmapView;

/// True when `path` is a seed-study directory (or its results.json): `gmnscope DIR`, a dropped
/// folder and File › Open then open the study view instead of a model. Only stats the path.
pub fn is_study_path(path: &Path) -> bool {
    #[cfg(feature = "burn")]
    return crate::study::reader::study_dir_of(path).is_some();
    #[cfg(not(feature = "burn"))]
    {
        let _ = path;
        false
    }
}

/// Where the explorer's data comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum CkaSource {
    Demo,
    Files {
        a: PathBuf,
        b: PathBuf,
    },
    /// A matrix written by `gmnscope cka --json` (no activations: settings are fixed).
    Results(PathBuf),
    /// The live CKA of the GMN training run in `run_dir` (GMN tab), newest checkpoint vs
    /// initialisation, updated after every epoch.
    Training {
        run_dir: PathBuf,
    },
}

/// The training run the explorer shows, and the matrix version on show.
struct TrainingFollow {
    run_dir: PathBuf,
    version: u64,
    title: Option<String>,
}

#[derive(Default)]
pub struct CkaExplorer {
    /// What the controls show; compared with `computed_for` to decide when to recompute.
    pub settings: CkaSettings,
    computed_for: Option<CkaSettings>,
    pair: Option<Arc<LayerPair>>,
    load_job: Option<JobHandle<LayerPair>>,
    results_job: Option<JobHandle<CkaResult>>,
    /// Reports each minibatch estimate as progress.
    compute_job: Option<JobHandle<CkaResult, CkaResult>>,
    result: Option<CkaResult>,
    version: u64,
    pub heatmap: HeatmapView,
    selected: Option<(usize, usize)>,
    hovered: Option<(usize, usize)>,
    started: bool,
    minibatch_text: String,
    export_stem: String,
    /// PNG/CSV writes in flight (each reports the path it wrote).
    export_jobs: Vec<JobHandle<PathBuf>>,
    /// The "Open study results" window's path field, while it is shown.
    study_form: Option<String>,
    /// A native folder dialog for that window.
    browse_job: Option<JobHandle<Option<PathBuf>>>,
    #[cfg(feature = "burn")]
    study_job: Option<JobHandle<crate::study::reader::StudyData>>,
    #[cfg(feature = "burn")]
    study: Option<crate::ui::study::view::StudyView>,
    /// The last source opened (`None`: a study, or nothing yet).
    source: Option<CkaSource>,
    /// Set while the training source is shown.
    training: Option<TrainingFollow>,
    /// The run directory whose live matrices were last switched to automatically.
    auto_followed: Option<PathBuf>,
    /// The "Run study…" window, while it is shown.
    #[cfg(feature = "burn")]
    run_form: Option<crate::ui::study::run::RunStudyForm>,
    /// A study running in the background; its partial results are in `study`.
    #[cfg(feature = "burn")]
    study_run: Option<crate::ui::study::run::StudyRun>,
}

impl CkaExplorer {
    /// The running study, if any (tests read it).
    #[cfg(feature = "burn")]
    pub fn study_run(&self) -> Option<&crate::ui::study::run::StudyRun> {
        self.study_run.as_ref()
    }

    /// The title of the live training matrix on show ("GMN training: epoch 3 vs initialisation").
    pub fn training_title(&self) -> Option<&str> {
        self.training.as_ref().and_then(|t| t.title.as_deref())
    }

    fn study_running(&self) -> bool {
        #[cfg(feature = "burn")]
        return self.study_run.is_some();
        #[cfg(not(feature = "burn"))]
        false
    }

    /// The study on show, if any (tests read it).
    #[cfg(feature = "burn")]
    pub fn study(&self) -> Option<&crate::ui::study::view::StudyView> {
        self.study.as_ref()
    }

    /// True while a study is shown (the scripted-run screenshot counts it as a ready workspace).
    pub fn has_study(&self) -> bool {
        #[cfg(feature = "burn")]
        return self.study.is_some();
        #[cfg(not(feature = "burn"))]
        false
    }

    fn study_loading(&self) -> bool {
        #[cfg(feature = "burn")]
        return self.study_job.is_some();
        #[cfg(not(feature = "burn"))]
        false
    }

    fn cancel_all(&mut self) {
        for job in [&self.compute_job].into_iter().flatten() {
            job.cancel();
        }
        self.load_job.iter().for_each(JobHandle::cancel);
        self.results_job.iter().for_each(JobHandle::cancel);
        self.compute_job = None;
        self.load_job = None;
        self.results_job = None;
        #[cfg(feature = "burn")]
        {
            self.study_job.iter().for_each(JobHandle::cancel);
            self.study_job = None;
        }
    }

    /// Leaves the study view (another source was opened).
    fn clear_study(&mut self) {
        #[cfg(feature = "burn")]
        {
            self.study = None;
        }
    }

    pub fn is_busy(&self) -> bool {
        self.load_job.is_some()
            || self.results_job.is_some()
            || self.compute_job.is_some()
            || self.needs_compute()
            || !self.export_jobs.is_empty()
            || self.browse_job.is_some()
            || self.study_loading()
            || self.study_running()
    }

    /// The current matrix, if any (tests read it).
    pub fn result(&self) -> Option<&CkaResult> {
        self.result.as_ref()
    }

    fn needs_compute(&self) -> bool {
        self.pair.is_some() && self.computed_for.as_ref() != Some(&self.settings)
    }

    fn set_result(&mut self, result: CkaResult) {
        let same_shape = self.result.as_ref().is_some_and(|r| r.rows == result.rows && r.cols == result.cols);
        if !same_shape {
            self.selected = None;
        }
        self.result = Some(result);
        self.version += 1;
    }
}
