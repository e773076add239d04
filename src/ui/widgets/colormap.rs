//! Colours shared by the CPU side (legend, heatmaps, block outlines) and the WGSL shaders (which
//! receive the same stops as uniforms), so the legend always matches the graph.
//!
//! Weights use a diverging map: blue for negative, a neutral grey at zero, red for positive, with
//! endpoints chosen per theme so both ends stay readable on the panel background.

use egui::Color32;

use crate::graph::{NodeRole, NodeType};

/// The three stops of the diverging map (negative, zero, positive) for a theme.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Diverging {
    pub negative: Color32,
    pub zero: Color32,
    pub positive: Color32,
}

impl Diverging {
    pub fn for_theme(dark: bool) -> Self {
        if dark {
            Self {
                negative: Color32::from_rgb(86, 160, 255),
                zero: Color32::from_rgb(120, 124, 132),
                positive: Color32::from_rgb(255, 110, 84),
            }
        } else {
            Self {
                negative: Color32::from_rgb(33, 102, 172),
                zero: Color32::from_rgb(200, 200, 204),
                positive: Color32::from_rgb(190, 30, 45),
            }
        }
    }

    /// Colour of `t` in `[-1, 1]` (clamped; NaN maps to zero).
    pub fn map(&self, t: f32) -> Color32 {
        let t = if t.is_nan() { 0.0 } else { t.clamp(-1.0, 1.0) };
        let (end, s) = if t < 0.0 { (self.negative, -t) } else { (self.positive, t) };
        lerp(self.zero, end, s)
    }

    /// Stops as linear-in-gamma `[r, g, b, a]` floats for the shader uniforms.
    pub fn stops(&self) -> [[f32; 4]; 3] {
        [gamma_f32(self.negative), gamma_f32(self.zero), gamma_f32(self.positive)]
    }
}

fn lerp(a: Color32, b: Color32, t: f32) -> Color32 {
    let mix = |x: u8, y: u8| (f32::from(x) + (f32::from(y) - f32::from(x)) * t).round() as u8;
    Color32::from_rgb(mix(a.r(), b.r()), mix(a.g(), b.g()), mix(a.b(), b.b()))
}

/// sRGB-encoded (gamma) components in 0..1: what egui's own shaders blend in.
pub fn gamma_f32(c: Color32) -> [f32; 4] {
    [f32::from(c.r()) / 255.0, f32::from(c.g()) / 255.0, f32::from(c.b()) / 255.0, f32::from(c.a()) / 255.0]
}

/// Node colours by palette index (see [`node_palette_index`]); the shader holds the same table.
pub const NODE_PALETTE: [Color32; 8] = [
    Color32::from_rgb(110, 140, 190), // 0 neuron / channel
    Color32::from_rgb(232, 170, 40),  // 1 bias
    Color32::from_rgb(150, 110, 220), // 2 gamma (scale)
    Color32::from_rgb(220, 100, 170), // 3 beta (shift)
    Color32::from_rgb(60, 180, 120),  // 4 attention neuron
    Color32::from_rgb(80, 190, 210),  // 5 input neuron
    Color32::from_rgb(235, 120, 60),  // 6 output neuron
    Color32::from_rgb(160, 160, 160), // 7 other
];

/// Palette index of a node: by type, with inputs and final outputs picked out.
pub fn node_palette_index(node_type: NodeType, role: NodeRole, ordered: bool) -> u32 {
    match (role, node_type) {
        (NodeRole::Input, _) => 5,
        (NodeRole::Neurons, _) if ordered => 6,
        (_, NodeType::Neuron | NodeType::Channel) => 0,
        (_, NodeType::Bias | NodeType::ChannelBias | NodeType::AttentionBias) => 1,
        (_, NodeType::BnGamma | NodeType::LnGamma | NodeType::GnGamma | NodeType::InGamma) => 2,
        (_, NodeType::BnBeta | NodeType::LnBeta | NodeType::GnBeta | NodeType::InBeta) => 3,
        (_, NodeType::AttentionNeuron) => 4,
        (_, NodeType::ChannelParam) => 7,
    }
}

/// Legend names of the palette entries.
pub const NODE_PALETTE_NAMES: [&str; 8] = ["neuron", "bias", "gamma", "beta", "attention", "input", "output", "other"];
