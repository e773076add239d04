//! Seed studies in the app (feature `burn`): the study view the CKA explorer hosts
//! (`view`: run-pair heatmaps, seed and agreement charts) and "Run study…" (`run`: the window and
//! the job whose run pairs stream into the view).

#[cfg(feature = "burn")]
pub mod run;
#[cfg(feature = "burn")]
pub mod view;
