//! Labels on the graph: a caption over each column (the layer that fills it: name, kind, shape),
//! outlines around groups of layers (residual blocks, i.e. layers sharing a module prefix such as
//! `encoder.layer.3`, and attention layers), and search highlights (layers whose name or one of
//! whose tensors contains the search text, with the tensor that matched).
//!
//! What to label is computed once per graph on the loader's thread ([`Annotations::build`]);
//! painting is egui text and strokes over the wgpu canvas, at a fixed screen size so it reads at
//! every zoom. Captions are elided to their column's width (full text on hover) and, when columns
//! are narrower than a caption can be, every column whose caption would overlap the previous one
//! is skipped; group labels thin out the same way.

use egui::{Color32, Pos2, Rect, Sense, Stroke, vec2};

use super::Camera;
use crate::graph::{NodeRole, ParamGraph};
use crate::layout::GraphLayout;
use crate::text::shown;
use crate::ui::model::loader::LayerSummary;

/// Narrowest caption shown (points): when columns are narrower, captions of some columns are
/// skipped rather than every caption elided to a few letters.
const MIN_CAPTION_WIDTH: f32 = 96.0;
/// Widest caption (points), however far the view is zoomed in.
const MAX_CAPTION_WIDTH: f32 = 200.0;

/// One column's caption.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnCaption {
    pub column: usize,
    /// The architecture layer of the column's largest neuron block.
    pub layer: usize,
    /// Name relative to its group (`attention` for `encoder.layer.0.attention`).
    pub name: String,
    /// Kind and shape, e.g. `linear [1536×384]`.
    pub detail: String,
    /// Every layer with neurons in this column (branches side by side share a column), for hover.
    pub full: String,
}

/// What an outline encloses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// Consecutive layers sharing a module prefix (a residual block, a decoder layer).
    Block,
    /// One attention layer (q, k, v onto shared attention neurons, then its output projection).
    Attention,
}

/// A group of node blocks drawn with one outline.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub label: String,
    pub kind: GroupKind,
    /// Indices into the graph's node blocks.
    pub blocks: Vec<usize>,
}

/// Everything the graph view labels, computed once per graph.
#[derive(Clone, Debug, Default)]
pub struct Annotations {
    pub captions: Vec<ColumnCaption>,
    pub groups: Vec<Group>,
    /// Node blocks of each architecture layer (index = layer), for search highlights.
    pub layer_blocks: Vec<Vec<usize>>,
}

impl Annotations {
    pub fn build(graph: &ParamGraph, layout: &GraphLayout, layers: &[LayerSummary]) -> Self {
        let blocks = graph.node_blocks();
        let mut layer_blocks = vec![Vec::new(); layers.len()];
        // Per column: (nodes, block) of the largest neuron block, and the layers present.
        let mut main: Vec<Option<(usize, usize)>> = vec![None; layout.columns.len()];
        let mut present: Vec<Vec<usize>> = vec![Vec::new(); layout.columns.len()];
        for (i, (b, e)) in blocks.iter().zip(&layout.blocks).enumerate() {
            if let Some(list) = layer_blocks.get_mut(b.layer) {
                list.push(i);
            }
            if b.role == NodeRole::Parameter {
                continue;
            }
            // The column's caption names its largest block of a layer's own neurons; a column
            // of inputs alone (the network input, embedding rows) is captioned as such.
            let rank = (usize::from(b.role != NodeRole::Input) << 60) | b.len.min(1 << 59);
            if let Some(m) = main.get_mut(e.column)
                && m.is_none_or(|(n, _)| rank > n)
            {
                *m = Some((rank, i));
            }
            if let Some(p) = present.get_mut(e.column)
                && !p.contains(&b.layer)
            {
                p.push(b.layer);
            }
        }
        let captions = main
            .iter()
            .enumerate()
            .filter_map(|(column, m)| {
                let (_, block) = (*m)?;
                let block = blocks.get(block)?;
                let layer = layers.get(block.layer)?;
                let (name, detail) = if block.role == NodeRole::Input {
                    let rows = if layer.kind == "embedding" { "rows" } else { "inputs" };
                    let name = if layer.kind == "embedding" { short_name(&layer.name) } else { "input" };
                    (name.to_string(), format!("{} {rows}", block.len))
                } else {
                    (short_name(&layer.name).to_string(), detail(layer))
                };
                let names: Vec<String> =
                    present[column].iter().filter_map(|&l| layers.get(l)).map(|l| shown(&l.name).to_string()).collect();
                let full = format!("{}\n{detail}", names.join("\n"));
                Some(ColumnCaption { column, layer: block.layer, name, detail, full })
            })
            .collect();
        let mut groups = Vec::new();
        let mut i = 0;
        while i < layers.len() {
            let Some(prefix) = group_prefix(&layers[i].name) else {
                i += 1;
                continue;
            };
            let start = i;
            while i < layers.len() && group_prefix(&layers[i].name) == Some(prefix) {
                i += 1;
            }
            // The outline encloses the group's neurons; its bias and norm nodes sit beside the
            // columns, often over the neighbouring group.
            let members: Vec<usize> = (start..i)
                .flat_map(|l| layer_blocks[l].iter().copied())
                .filter(|&b| blocks.get(b).is_some_and(|b| b.role != NodeRole::Parameter))
                .collect();
            if i - start > 1 && !members.is_empty() {
                groups.push(Group { label: shown(prefix).to_string(), kind: GroupKind::Block, blocks: members });
            }
        }
        for (l, layer) in layers.iter().enumerate() {
            let neurons: Vec<usize> = layer_blocks[l]
                .iter()
                .copied()
                .filter(|&b| blocks.get(b).is_some_and(|b| b.role != NodeRole::Parameter))
                .collect();
            if layer.kind == "attention" && !neurons.is_empty() {
                let label = format!("{} (attention)", short_name(&layer.name));
                groups.push(Group { label, kind: GroupKind::Attention, blocks: neurons });
            }
        }
        Self { captions, groups, layer_blocks }
    }
}

/// `kind [out×in]` from the layer's first parameter tensor.
fn detail(layer: &LayerSummary) -> String {
    let shape = layer.tensors.iter().find(|t| t.is_parameter).map(|t| {
        let dims: Vec<String> = t.shape.iter().map(usize::to_string).collect();
        format!(" [{}]", dims.join("×"))
    });
    format!("{}{}", layer.kind, shape.unwrap_or_default())
}

/// The module path up to its last numeric component when something follows it
/// (`encoder.layer.3.attention` -> `encoder.layer.3`), as the layer tree groups rows; for ONNX
/// node names (`/model.2/cv1/conv/Conv`), the first path component (`/model.2`).
pub fn group_prefix(name: &str) -> Option<&str> {
    if let Some(rest) = name.strip_prefix('/') {
        let end = rest.find('/')?;
        return (end > 0 && end + 1 < rest.len()).then(|| &name[..end + 1]);
    }
    let parts: Vec<&str> = name.split('.').collect();
    let (_, inner) = parts.split_last()?;
    let k = inner.iter().rposition(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))?;
    let len = parts.iter().take(k + 1).map(|p| p.len()).sum::<usize>() + k;
    name.get(..len)
}

/// The layer's name without its group prefix.
fn short_name(name: &str) -> &str {
    let short = group_prefix(name).and_then(|p| name.get(p.len() + 1..)).filter(|s| !s.is_empty()).unwrap_or(name);
    // ONNX: `cv1/conv/Conv` -> `cv1/conv` (the op type is the caption's kind).
    match short.rsplit_once('/') {
        Some((head, _)) if name.starts_with('/') && !head.is_empty() => head,
        _ => short,
    }
}

/// Screen rectangle around a set of node blocks (`None` when none is placed).
fn blocks_rect(layout: &GraphLayout, camera: Camera, rect: Rect, blocks: &[usize]) -> Option<Rect> {
    let mut out: Option<Rect> = None;
    for e in blocks.iter().filter_map(|&b| layout.blocks.get(b)) {
        let r = Rect::from_two_pos(camera.to_screen(rect, [e.x, e.y0]), camera.to_screen(rect, [e.x, e.y1]));
        out = Some(out.map_or(r, |o| o.union(r)));
    }
    out
}

/// What the painter put on screen this frame (read by tests).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Drawn {
    /// Column captions shown, as `name` lines (elided text is the widget's business).
    pub captions: Vec<String>,
    /// Group labels shown.
    pub groups: Vec<String>,
    /// Layers highlighted by the search, with the tensor that matched.
    pub matches: Vec<(usize, String)>,
}

/// Paints group outlines, column captions and search highlights; returns what was drawn and the
/// layer a caption click selected.
#[allow(clippy::too_many_arguments)]
pub fn paint(
    ui: &mut egui::Ui,
    rect: Rect,
    camera: Camera,
    layout: &GraphLayout,
    annotations: &Annotations,
    layers: &[LayerSummary],
    search: &str,
) -> (Drawn, Option<usize>) {
    let mut drawn = Drawn::default();
    let mut clicked = None;
    let painter = ui.painter_at(rect);
    let dark = ui.visuals().dark_mode;
    let weak = ui.visuals().weak_text_color();
    let block_colour = if dark { Color32::from_rgba_unmultiplied(160, 170, 190, 70) } else { Color32::from_gray(170) };
    let attention_colour = Color32::from_rgb(70, 170, 120);
    let spacing_px = layout.column_spacing * camera.zoom;
    let caption_width = spacing_px.clamp(MIN_CAPTION_WIDTH, MAX_CAPTION_WIDTH) - 6.0;
    let line = 13.0;

    // Group outlines first (under the captions); labels thin out left to right.
    let mut next_free = f32::NEG_INFINITY;
    for g in &annotations.groups {
        let Some(r) = blocks_rect(layout, camera, rect, &g.blocks) else { continue };
        let (stroke, pad) = match g.kind {
            GroupKind::Block => (Stroke::new(1.0, block_colour), 10.0f32),
            GroupKind::Attention => (Stroke::new(1.0, attention_colour.gamma_multiply(0.7)), 6.0),
        };
        // Horizontally at most a fifth of the column gap, so neighbouring groups do not overlap.
        let r = r.expand2(vec2(pad.min(0.2 * spacing_px), pad));
        if !r.intersects(rect) {
            continue;
        }
        // Outlines narrower than this are a row of rounded dots at overview zoom; the labels
        // below still name the groups there.
        if r.width() >= 16.0 {
            painter.rect_stroke(r, 6.0, stroke, egui::StrokeKind::Outside);
        }
        if g.kind == GroupKind::Block && r.left() >= next_free {
            let galley = painter.layout_no_wrap(g.label.clone(), egui::FontId::proportional(11.0), weak);
            let at = Pos2::new(r.left() + 4.0, r.bottom() + 2.0);
            next_free = at.x + galley.size().x + 8.0;
            painter.galley(at, galley, weak);
            drawn.groups.push(g.label.clone());
        }
    }

    // Column captions in one row above the graph (kept on screen when the top scrolls away),
    // skipped where they would overlap.
    let row_bottom = (camera.to_screen(rect, [0.0, layout.bounds.min[1]]).y - 10.0).max(rect.top() + 2.0 * line + 8.0);
    let mut next_free = f32::NEG_INFINITY;
    let text = ui.visuals().text_color();
    for c in &annotations.captions {
        let Some(col) = layout.columns.get(c.column) else { continue };
        let anchor = camera.to_screen(rect, [col.x, 0.0]);
        // Kept inside the view, so the first and last columns' captions are not cut.
        // Centred on its column and narrowed at the view's edges rather than cut off.
        let width = caption_width.min(2.0 * (anchor.x - rect.left() - 2.0)).min(2.0 * (rect.right() - 2.0 - anchor.x));
        let left = anchor.x - width * 0.5;
        if width < 40.0 || left < next_free {
            continue;
        }
        let bottom = row_bottom;
        let r = Rect::from_min_size(Pos2::new(left, bottom - 2.0 * line - 2.0), vec2(width, 2.0 * line + 2.0));
        if !r.intersects(rect) {
            continue;
        }
        next_free = r.right() + 6.0;
        // Painted text, elided to the caption's width; one widget per caption for hover, click
        // and the accessibility tree (labelled `caption NAME: KIND [SHAPE]`, so it never
        // duplicates the layer tree's row of the same layer).
        let name = elided(&painter, &c.name, 11.5, width, text);
        let detail = elided(&painter, &c.detail, 10.5, width, weak);
        let name_at = Pos2::new(r.center().x - name.size().x * 0.5, r.top());
        let detail_at = Pos2::new(r.center().x - detail.size().x * 0.5, r.top() + line + 1.0);
        painter.galley(name_at, name, text);
        painter.galley(detail_at, detail, weak);
        let id = egui::Id::unique(("gmnscope_column_caption", c.column));
        let response = ui.interact(r, id, Sense::click());
        let label = format!("caption {}: {}", c.name, c.detail);
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, &label));
        if response.clicked() {
            clicked = Some(c.layer);
        }
        response.on_hover_text(&c.full);
        drawn.captions.push(c.name.clone());
    }

    // Search: outline the matching layers' blocks and name the tensor that matched.
    let needle = search.trim().to_lowercase();
    if !needle.is_empty() {
        let accent = Color32::from_rgb(250, 200, 40);
        for (l, layer) in layers.iter().enumerate() {
            let Some(tensor) = matched_tensor(layer, &needle) else { continue };
            let Some(r) = annotations.layer_blocks.get(l).and_then(|b| blocks_rect(layout, camera, rect, b)) else {
                continue;
            };
            let r = r.expand(6.0);
            drawn.matches.push((l, tensor.clone()));
            if !r.intersects(rect) {
                continue;
            }
            painter.rect_stroke(r, 4.0, Stroke::new(2.0, accent), egui::StrokeKind::Outside);
            let galley = painter.layout_no_wrap(shown(&tensor).to_string(), egui::FontId::monospace(10.5), accent);
            painter.galley(Pos2::new(r.left(), r.bottom() + 2.0), galley, accent);
        }
    }
    (drawn, clicked)
}

/// `text` on one line, cut with "…" to `width` points.
fn elided(painter: &egui::Painter, text: &str, size: f32, width: f32, colour: Color32) -> std::sync::Arc<egui::Galley> {
    let mut job = egui::text::LayoutJob::single_section(
        text.to_string(),
        egui::TextFormat { font_id: egui::FontId::proportional(size), color: colour, ..Default::default() },
    );
    job.wrap = egui::text::TextWrapping::truncate_at_width(width);
    painter.layout_job(job)
}

/// The name that matched the search: the first parameter tensor containing it, else the layer's
/// own name (`None`: no match).
pub fn matched_tensor(layer: &LayerSummary, needle: &str) -> Option<String> {
    if needle.is_empty() {
        return None;
    }
    let tensor = layer.tensors.iter().find(|t| t.name.to_lowercase().contains(needle)).map(|t| t.name.clone());
    tensor.or_else(|| layer.name.to_lowercase().contains(needle).then(|| layer.name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_grouped_by_their_last_numbered_module() {
        assert_eq!(group_prefix("encoder.layer.3.attention"), Some("encoder.layer.3"));
        assert_eq!(group_prefix("model.layers.0.mlp.up_proj"), Some("model.layers.0"));
        assert_eq!(group_prefix("seq.0"), None);
        assert_eq!(group_prefix("fc"), None);
        assert_eq!(short_name("encoder.layer.3.attention"), "attention");
        assert_eq!(short_name("seq.0"), "seq.0");
        assert_eq!(group_prefix("/model.2/cv1/conv/Conv"), Some("/model.2"));
        assert_eq!(short_name("/model.2/cv1/conv/Conv"), "cv1/conv");
        assert_eq!(group_prefix("/Conv"), None);
    }
}
