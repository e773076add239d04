// Nodes of the parameter graph: ONE instanced draw, one instance per node, a screen-aligned quad
// shaded as an anti-aliased disc with an outline (signed distance in the fragment shader).
// Colour by palette index (see NODE_PALETTE in src/ui/colormap.rs; keep the two tables equal),
// or, for nodes with the OVERLAY flag, by a GMN activation already normalised on the CPU to the
// diverging map's [-1, 1] (the same stops as the edges; see src/ui/graph_view/overlay.rs).
// The `View` struct must match `ViewUniforms` in src/ui/graph_view/renderer.rs.

struct View {
    center: vec2<f32>,
    scale: f32,
    srgb_target: f32,
    viewport_px: vec2<f32>,
    node_radius_px: f32,
    edge_width_px: f32,
    weight_scale: f32,
    block_scale: f32,
    edge_alpha: f32,
    local_scale: f32,
    negative: vec4<f32>,
    zero: vec4<f32>,
    positive: vec4<f32>,
    outline: vec4<f32>,
};

@group(0) @binding(0) var<uniform> view: View;

struct NodeIn {
    @location(0) pos: vec2<f32>,
    @location(1) palette: u32,
    @location(2) flags: u32,
    @location(3) value: f32,
};

// Bit of NodeIn.flags (NODE_OVERLAY in src/ui/graph_view/renderer.rs).
const OVERLAY: u32 = 1u;

struct NodeOut {
    @builtin(position) position: vec4<f32>,
    @location(0) local: vec2<f32>,     // offset from the centre, in pixels
    @location(1) color: vec4<f32>,
};

fn palette_color(i: u32) -> vec3<f32> {
    var table = array<vec3<f32>, 8>(
        vec3<f32>(110.0, 140.0, 190.0),
        vec3<f32>(232.0, 170.0, 40.0),
        vec3<f32>(150.0, 110.0, 220.0),
        vec3<f32>(220.0, 100.0, 170.0),
        vec3<f32>(60.0, 180.0, 120.0),
        vec3<f32>(80.0, 190.0, 210.0),
        vec3<f32>(235.0, 120.0, 60.0),
        vec3<f32>(160.0, 160.0, 160.0),
    );
    return table[min(i, 7u)] / 255.0;
}

// Same map as `diverging` in edges.wgsl (and `Diverging::map` on the CPU, for the legend).
fn diverging(t: f32) -> vec3<f32> {
    let c = clamp(t, -1.0, 1.0);
    if (c < 0.0) {
        return mix(view.zero.rgb, view.negative.rgb, -c);
    }
    return mix(view.zero.rgb, view.positive.rgb, c);
}

@vertex
fn vs_node(@builtin(vertex_index) vi: u32, n: NodeIn) -> NodeOut {
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(-1.0, -1.0), vec2<f32>(1.0, -1.0), vec2<f32>(1.0, 1.0),
        vec2<f32>(-1.0, -1.0), vec2<f32>(1.0, 1.0), vec2<f32>(-1.0, 1.0),
    );
    let c = corners[vi % 6u];
    let extent = view.node_radius_px + 1.5;
    let p = (n.pos - view.center) * view.scale + c * extent;
    var out: NodeOut;
    out.position = vec4<f32>(p.x / (0.5 * view.viewport_px.x), -p.y / (0.5 * view.viewport_px.y), 0.0, 1.0);
    out.local = c * extent;
    let by_activation = (n.flags & OVERLAY) != 0u;
    out.color = vec4<f32>(select(palette_color(n.palette), diverging(n.value), by_activation), 1.0);
    return out;
}

fn output_rgb(c: vec3<f32>) -> vec3<f32> {
    if (view.srgb_target > 0.5) {
        return pow(c, vec3<f32>(2.2));
    }
    return c;
}

@fragment
fn fs_node(in: NodeOut) -> @location(0) vec4<f32> {
    let r = view.node_radius_px;
    let d = length(in.local);
    let coverage = clamp(r + 0.5 - d, 0.0, 1.0);
    // An outline ring on nodes big enough to show one.
    let ring = select(0.0, max(1.0, 0.18 * r), r >= 3.0);
    let inner = clamp(r - ring + 0.5 - d, 0.0, 1.0);
    let rgb = mix(view.outline.rgb, in.color.rgb, inner);
    let a = coverage;
    return vec4<f32>(output_rgb(rgb) * a, a);
}
