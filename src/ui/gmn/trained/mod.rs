//! The trained-GMN half of the GMN tab: load a run directory (a job), run the GMN on the open
//! model (a job), show the prediction, and turn one GMN layer's node features into the graph
//! view's activation overlay.
//!
//! The inference job builds the GMN input from the model's file exactly as `gmnscope infer`
//! does, refuses models that do not fit (weight layers other than the training zoo's, or nodes
//! that do not match the drawn graph one for one: `analysis::node_alignment`), keeps every
//! layer's node features and precomputes their norms and first principal component
//! (`analysis::node_colouring`). Switching layer or colouring afterwards is O(nodes) on the UI
//! thread: it picks precomputed values and normalises them.

mod ui;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;

use crate::analysis::node_alignment::{self, check_alignment};
use crate::analysis::node_colouring::{self, ColourRange, NodeFeatures, PrincipalComponent};
use crate::checkpoint::TensorStore;
use crate::jobs::{JobError, JobHandle, Registry, Reporter};
use crate::models::Gmn;
use crate::train::RunInfo;
use crate::ui::model::graph_view::overlay::{NodeOverlay, OverlayMode, OverlaySettings};
use crate::ui::model::loader::LoadedModel;
use crate::ui::widgets::toasts::Toasts;

/// A trained GMN, loaded on the CPU device.
pub struct LoadedGmn {
    pub run_dir: PathBuf,
    pub info: RunInfo,
    /// Name of the checkpoint the weights came from (`step-...`).
    pub checkpoint: String,
    model: Gmn,
    device: Device,
}

/// What the GMN predicts for a model (the core's type: `infer` prints the same).
pub use crate::inference::Prediction;

/// One GMN layer's node features (`nodes x channels`, row-major) and what the overlay derives.
pub struct LayerFeatures {
    pub values: Vec<f32>,
    pub norms: Vec<f32>,
    pub pca: PrincipalComponent,
}

/// The result of running the GMN on one open model.
pub struct Inference {
    /// `LoadedModel::id` of the model it ran on, and its title.
    pub model_id: u64,
    pub model_title: String,
    pub run_dir: PathBuf,
    pub prediction: Prediction,
    pub nodes: usize,
    pub channels: usize,
    /// Encoder output, then every GMN block's output.
    pub layers: Vec<LayerFeatures>,
    pub secs: f32,
}

/// The panel section's state.
#[derive(Default)]
pub struct TrainedGmn {
    /// The run directory field (also the fallback when no folder dialog is available).
    pub path: String,
    dialog_job: Option<JobHandle<Option<PathBuf>>>,
    load_job: Option<JobHandle<LoadedGmn>>,
    infer_job: Option<JobHandle<Inference>>,
    pub loaded: Option<LoadedGmn>,
    pub inference: Option<Inference>,
    /// The last load / run failure, shown in the panel (also sent as a toast).
    pub error: Option<String>,
    settings: OverlaySettings,
    overlay: Option<Arc<NodeOverlay>>,
}

impl TrainedGmn {
    pub fn is_busy(&self) -> bool {
        self.dialog_job.is_some() || self.load_job.is_some() || self.infer_job.is_some()
    }

    /// Asks for a run directory with the native folder dialog, on a worker thread.
    pub fn show_dialog(&mut self, jobs: &Registry, toasts: &mut Toasts) {
        if self.dialog_job.is_some() {
            return;
        }
        let pick = |_: &Reporter<Option<PathBuf>>| {
            Ok(rfd::FileDialog::new().set_title("Load a trained GMN (its run directory)").pick_folder())
        };
        match jobs.spawn("folder dialog", pick) {
            Ok(job) => self.dialog_job = Some(job),
            Err(e) => toasts.error(format!("cannot start a worker thread: {e}")),
        }
    }

    /// Loads the run in `dir` (run.json and its latest checkpoint) in a job.
    pub fn load(&mut self, dir: PathBuf, jobs: &Registry, toasts: &mut Toasts) {
        if self.load_job.is_some() {
            return;
        }
        self.path = dir.display().to_string();
        let work = move |r: &Reporter<LoadedGmn>| {
            r.stage("reading the run", None);
            let device = Device::flex();
            let (info, model) = crate::train::load_run(&dir, &device).map_err(JobError::failed)?;
            let checkpoint = crate::train::checkpoint::latest(&dir)
                .ok()
                .flatten()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            Ok(LoadedGmn { run_dir: dir, info, checkpoint, model, device })
        };
        match jobs.spawn("load GMN", work) {
            Ok(job) => self.load_job = Some(job),
            Err(e) => toasts.error(format!("cannot start a worker thread: {e}")),
        }
    }

    /// Runs the loaded GMN on `model` (the active model) in a job.
    pub fn run_on(&mut self, model: Option<&LoadedModel>, jobs: &Registry, toasts: &mut Toasts) {
        if self.infer_job.is_some() {
            return;
        }
        let Some(gmn) = &self.loaded else {
            return self.fail("Load a trained GMN first".into(), toasts);
        };
        let Some(model) = model else {
            return self.fail("No model is open: open one in the Model tab, then run the GMN on it".into(), toasts);
        };
        let drawn = match &model.graph {
            Ok(data) => match node_alignment::node_order(&data.graph) {
                Ok(order) => order,
                Err(e) => return self.fail(format!("{}: {e}", model.title()), toasts),
            },
            Err(e) => {
                return self.fail(format!("{} has no parameter graph to run the GMN on: {e}", model.title()), toasts);
            }
        };
        let job = InferJob {
            model: gmn.model.clone(),
            device: gmn.device.clone(),
            info: gmn.info.clone(),
            run_dir: gmn.run_dir.clone(),
            store: model.store.clone(),
            drawn,
            model_id: model.id,
            model_title: model.title(),
        };
        match jobs.spawn("run GMN", move |r| job.run(r)) {
            Ok(handle) => {
                self.infer_job = Some(handle);
                self.error = None;
            }
            Err(e) => toasts.error(format!("cannot start a worker thread: {e}")),
        }
    }

    /// Applies new overlay settings (rebuilds the overlay's node values).
    pub fn set_overlay(&mut self, settings: OverlaySettings) {
        self.settings = settings;
        self.rebuild_overlay();
    }

    /// The overlay for the model with this id, if the GMN ran on it.
    pub fn overlay_for(&self, model_id: u64) -> Option<&Arc<NodeOverlay>> {
        self.overlay.as_ref().filter(|o| o.model_id == model_id)
    }

    /// Polls the dialog, load and inference jobs.
    pub fn logic(&mut self, jobs: &Registry, toasts: &mut Toasts) {
        if let Some(job) = &mut self.dialog_job
            && let Some(done) = job.poll()
        {
            self.dialog_job = None;
            match done {
                Ok(Some(dir)) => self.load(dir, jobs, toasts),
                Ok(None) => {
                    toasts.info("No directory chosen. Without a folder dialog, type the run directory and press Load")
                }
                Err(e) => toasts.error(format!("folder dialog: {e}")),
            }
        }
        if let Some(job) = &mut self.load_job
            && let Some(done) = job.poll()
        {
            self.load_job = None;
            match done {
                Ok(gmn) => {
                    // A prediction and overlay of the previous GMN would now be mislabelled.
                    self.inference = None;
                    self.overlay = None;
                    self.loaded = Some(gmn);
                    self.error = None;
                }
                Err(e) => self.fail(e.to_string(), toasts),
            }
        }
        if let Some(job) = &mut self.infer_job
            && let Some(done) = job.poll()
        {
            self.infer_job = None;
            match done {
                Ok(inference) => {
                    // A new run starts on the last GMN layer, keeping the chosen colouring.
                    self.settings.layer = inference.layers.len().saturating_sub(1);
                    self.inference = Some(inference);
                    self.rebuild_overlay();
                }
                Err(JobError::Cancelled) => {}
                Err(e) => self.fail(e.to_string(), toasts),
            }
        }
    }

    fn fail(&mut self, e: String, toasts: &mut Toasts) {
        toasts.error(e.clone());
        self.error = Some(e);
    }

    fn rebuild_overlay(&mut self) {
        self.overlay = self.inference.as_ref().and_then(|inf| overlay_of(inf, self.settings)).map(Arc::new);
    }
}

/// Builds the overlay for `settings` from precomputed values (O(nodes)).
fn overlay_of(inf: &Inference, settings: OverlaySettings) -> Option<NodeOverlay> {
    let last = inf.layers.len().checked_sub(1)?;
    let layer = settings.layer.min(last);
    let channel = settings.channel.min(inf.channels.saturating_sub(1));
    let features = inf.layers.get(layer)?;
    let (raw, what) = match settings.mode {
        OverlayMode::Channel => {
            let f = NodeFeatures::new(&features.values, inf.nodes, inf.channels).ok()?;
            (node_colouring::channel(f, channel).ok()?, format!("channel {channel}"))
        }
        OverlayMode::Norm => (features.norms.clone(), "L2 norm".to_string()),
        OverlayMode::Pca => {
            (features.pca.scores.clone(), format!("PCA 1 ({:.0}% of variance)", 100.0 * features.pca.explained))
        }
    };
    let range = ColourRange::robust(&raw, settings.mode != OverlayMode::Norm);
    Some(NodeOverlay {
        key: NodeOverlay::next_key(),
        model_id: inf.model_id,
        settings: OverlaySettings { layer, channel, ..settings },
        layers: inf.layers.len(),
        channels: inf.channels,
        values: node_colouring::normalise_all(&raw, range),
        range,
        title: format!("{} · {what}", NodeOverlay::layer_name(layer, inf.layers.len())),
    })
}

/// Everything the inference job needs, moved onto its thread.
struct InferJob {
    model: Gmn,
    device: Device,
    info: RunInfo,
    run_dir: PathBuf,
    store: Arc<TensorStore>,
    /// The drawn graph's nodes (`node_alignment::node_order`), to prove the mapping.
    drawn: Vec<[i64; 3]>,
    model_id: u64,
    model_title: String,
}

impl InferJob {
    fn run(self, r: &Reporter<Inference>) -> Result<Inference, JobError> {
        let started = Instant::now();
        let title = &self.model_title;
        r.stage("building the GMN input", Some(0.05));
        // The one pipeline `gmnscope infer` uses: the same checks, the same refusals in words.
        let input = crate::inference::prepare(&self.store, &self.info, crate::limits::GMN_BYTES.default)
            .map_err(|e| format!("{title}: {e}"))?;
        node_alignment::node_order(&input.graph).map_err(|e| format!("{title}: {e}"))?;
        check_alignment(&input.topology.node_features, &self.drawn).map_err(|e| format!("{title}: {e}"))?;
        r.check()?;
        r.stage("running the GMN", Some(0.2));
        let out = crate::inference::run(&self.model, &self.info, &self.device, &input)?;
        let (nodes, channels) = (out.nodes, out.channels);
        let total = out.node_states.len();
        let mut layers = Vec::with_capacity(total);
        for (l, values) in out.node_states.into_iter().enumerate() {
            r.check()?;
            r.stage(format!("node features, GMN layer {l}"), Some(0.5 + 0.5 * l as f32 / total.max(1) as f32));
            let features = NodeFeatures::new(&values, nodes, channels)?;
            let norms = node_colouring::l2_norms(features);
            let pca = node_colouring::first_principal_component(features);
            layers.push(LayerFeatures { values, norms, pca });
        }
        let prediction = out.prediction;
        Ok(Inference {
            model_id: self.model_id,
            model_title: self.model_title,
            run_dir: self.run_dir,
            prediction,
            nodes,
            channels,
            layers,
            secs: started.elapsed().as_secs_f32(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two layers of 3 nodes x 2 channels, with the overlay's inputs computed by the core.
    fn inference() -> Inference {
        let layer = |values: Vec<f32>| {
            let f = NodeFeatures::new(&values, 3, 2).unwrap();
            LayerFeatures {
                norms: node_colouring::l2_norms(f),
                pca: node_colouring::first_principal_component(f),
                values,
            }
        };
        Inference {
            model_id: 7,
            model_title: "m".into(),
            run_dir: PathBuf::new(),
            prediction: Prediction::Value(0.0),
            nodes: 3,
            channels: 2,
            layers: vec![layer(vec![1.0, 0.0, -2.0, 0.5, 4.0, 1.0]), layer(vec![3.0, 4.0, 0.0, 0.0, 0.6, 0.8])],
            secs: 0.0,
        }
    }

    #[test]
    fn overlays_pick_the_layer_and_colouring_and_clamp_out_of_range_settings() {
        let inf = inference();
        let channel = OverlaySettings { enabled: true, layer: 0, mode: OverlayMode::Channel, channel: 0 };
        let near = |a: &[f32], b: &[f32]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        let o = overlay_of(&inf, channel).unwrap();
        // Channel 0 of layer 0 is [1, -2, 4]: the 95% quantile of |v| is 2 + 0.9 * 2 = 3.8, so
        // the range is [-3.8, 3.8] and 4 saturates.
        assert!(near(&o.values, &[1.0 / 3.8, -2.0 / 3.8, 1.0]), "{:?}", o.values);
        assert!((o.range.hi - 3.8).abs() < 1e-6 && o.range.lo == -o.range.hi && o.range.clips());
        assert_eq!((o.model_id, o.layers, o.channels), (7, 2, 2));
        // Norms of layer 1 are [5, 0, 1]: quantiles 0.05 and 4.8, so 0.95 / 4.75 = 0.2; the ends clip.
        let norm = overlay_of(&inf, OverlaySettings { layer: 1, mode: OverlayMode::Norm, ..channel }).unwrap();
        assert!(near(&norm.values, &[1.0, 0.0, 0.2]), "{:?}", norm.values);
        assert!(norm.title.starts_with("layer 1 of 1") && norm.title.contains("L2 norm"), "{}", norm.title);
        // Out-of-range layer and channel are clamped to the last ones, and every overlay is new.
        let clamped = overlay_of(&inf, OverlaySettings { layer: 9, channel: 9, ..channel }).unwrap();
        assert_eq!((clamped.settings.layer, clamped.settings.channel), (1, 1));
        // Channel 1 of layer 1 is [4, 0, 0.8]: m = 0.8 + 0.9 * 3.2 = 3.68.
        assert!(near(&clamped.values, &[1.0, 0.0, 0.8 / 3.68]), "{:?}", clamped.values);
        assert_ne!(clamped.key, o.key);
        let pca = overlay_of(&inf, OverlaySettings { mode: OverlayMode::Pca, ..channel }).unwrap();
        let scores = &inf.layers[0].pca.scores;
        let range = ColourRange::robust(scores, true);
        assert!(near(&pca.values, &node_colouring::normalise_all(scores, range)));
        assert!(pca.title.starts_with("encoder"), "{}", pca.title);
    }
}
