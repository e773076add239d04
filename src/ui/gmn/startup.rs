//! `gmnscope --gmn RUN`: the start-up sequence that loads a trained GMN, runs it on the active
//! model and shows its activation overlay, so that a scripted `--screenshot` shows the overlay.
//!
//! It does nothing a user could not: it sends the commands the GMN tab's buttons send
//! (`LoadGmn`, `RunGmnOnModel`, `SetNodeOverlay`, `ShowTab`) and watches the trained-GMN state
//! for their outcome. [`StartupGmn::advance`] runs once per frame and never waits; a failure
//! (the GMN panel has already shown it as an error toast) ends the sequence like success does,
//! so scripted runs never hang on it.

use std::path::PathBuf;

use crate::ui::app::commands::{Command, CommandQueue, Tab};
use crate::ui::gmn::trained::TrainedGmn;
use crate::ui::model::graph_view::overlay::OverlaySettings;

/// Where the sequence stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Model-open jobs still run: the GMN must run on the model the user asked for.
    WaitingForModels,
    /// `LoadGmn` sent; waiting for the load job.
    Loading,
    /// `RunGmnOnModel` sent; waiting for the inference job.
    Running,
    /// The overlay is on.
    Done,
    /// Loading or running failed (reported as an error toast by the GMN panel).
    Failed,
}

pub struct StartupGmn {
    run: PathBuf,
    /// The tab to show at the end (`LoadGmn` switches to the GMN tab on the way).
    tab: Tab,
    stage: Stage,
}

impl StartupGmn {
    pub fn new(run: PathBuf, tab: Option<Tab>) -> Self {
        Self { run, tab: tab.unwrap_or(Tab::Model), stage: Stage::WaitingForModels }
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Done or failed: nothing more will be sent.
    pub fn finished(&self) -> bool {
        matches!(self.stage, Stage::Done | Stage::Failed)
    }

    /// One step. Call it after the frame's commands were applied and the GMN jobs polled: then a
    /// command this sent on the previous frame has taken effect (its job started, or it failed at
    /// once), so "not busy" means "that step is over".
    pub fn advance(&mut self, models_opening: bool, trained: &TrainedGmn, commands: &mut CommandQueue) {
        match self.stage {
            Stage::WaitingForModels if !models_opening => {
                commands.send(Command::LoadGmn(self.run.clone()));
                self.stage = Stage::Loading;
            }
            Stage::Loading if !trained.is_busy() => {
                if trained.loaded.is_some() {
                    // No active model is not checked here: the run reports it as a toast.
                    commands.send(Command::RunGmnOnModel);
                    self.stage = Stage::Running;
                } else {
                    self.finish(Stage::Failed, commands);
                }
            }
            Stage::Running if !trained.is_busy() => {
                if trained.inference.is_some() {
                    // Last GMN layer, PCA colouring (the settings' defaults), overlay on.
                    commands.send(Command::SetNodeOverlay(OverlaySettings::default()));
                    self.finish(Stage::Done, commands);
                } else {
                    self.finish(Stage::Failed, commands);
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, stage: Stage, commands: &mut CommandQueue) {
        commands.send(Command::ShowTab(self.tab));
        self.stage = stage;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_does_not_load_ends_the_sequence_on_the_requested_tab() {
        let mut s = StartupGmn::new(PathBuf::from("/runs/a"), Some(Tab::Cka));
        let (trained, mut q) = (TrainedGmn::default(), CommandQueue::default());
        s.advance(true, &trained, &mut q);
        assert_eq!((s.stage(), q.take()), (Stage::WaitingForModels, vec![]));
        s.advance(false, &trained, &mut q);
        assert_eq!((s.stage(), q.take()), (Stage::Loading, vec![Command::LoadGmn(PathBuf::from("/runs/a"))]));
        // The load job ended without a GMN (it failed): the sequence ends, back on the asked-for tab.
        s.advance(false, &trained, &mut q);
        assert_eq!((s.stage(), q.take()), (Stage::Failed, vec![Command::ShowTab(Tab::Cka)]));
        assert!(s.finished());
        s.advance(false, &trained, &mut q);
        assert!(q.is_empty(), "a finished sequence sends nothing");
    }
}
