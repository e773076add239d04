// Edges of the parameter graph: ONE instanced draw per frame.
//   vs_edge:  one instance per neuron-level edge, a screen-space line quad from src to dst,
//             coloured by its weight through the diverging map (stops come from the uniforms).
//   vs_block: level of detail, one instance per edge block, a band from the source block's
//             extent to the target block's, coloured by the mean weight, alpha by density.
// Only the `View` uniform changes per frame; instance buffers are uploaded once per graph.
// The `View` struct must match `ViewUniforms` in src/ui/graph_view/renderer.rs.

struct View {
    center: vec2<f32>,        // world point at the viewport centre
    scale: f32,               // physical pixels per world unit
    srgb_target: f32,         // 1 when the render target is sRGB (we then output linear values)
    viewport_px: vec2<f32>,   // viewport size in physical pixels
    node_radius_px: f32,
    edge_width_px: f32,
    weight_scale: f32,        // 1 / |weight| at the ends of the colour map
    block_scale: f32,         // the same for block means
    edge_alpha: f32,
    local_scale: f32,         // 1: colour by the per-layer value
    negative: vec4<f32>,      // diverging map stops (gamma-space rgb)
    zero: vec4<f32>,
    positive: vec4<f32>,
    outline: vec4<f32>,
};

@group(0) @binding(0) var<uniform> view: View;

struct VsOut {
    @builtin(position) position: vec4<f32>,
    @location(0) color: vec4<f32>,
    @location(1) across: f32,       // signed distance from the line's centre, in pixels
    @location(2) half_width: f32,
};

fn to_px(p: vec2<f32>) -> vec2<f32> {
    return (p - view.center) * view.scale;
}

fn px_to_clip(p: vec2<f32>) -> vec4<f32> {
    return vec4<f32>(p.x / (0.5 * view.viewport_px.x), -p.y / (0.5 * view.viewport_px.y), 0.0, 1.0);
}

fn diverging(t: f32) -> vec3<f32> {
    let c = clamp(t, -1.0, 1.0);
    if (c < 0.0) {
        return mix(view.zero.rgb, view.negative.rgb, -c);
    }
    return mix(view.zero.rgb, view.positive.rgb, c);
}

fn output_rgb(c: vec3<f32>) -> vec3<f32> {
    if (view.srgb_target > 0.5) {
        return pow(c, vec3<f32>(2.2));
    }
    return c;
}

struct EdgeIn {
    @location(0) src: vec2<f32>,
    @location(1) dst: vec2<f32>,
    @location(2) weight: f32,
    @location(3) local: f32,      // weight / its tensor's p98 |w|
};

@vertex
fn vs_edge(@builtin(vertex_index) vi: u32, e: EdgeIn) -> VsOut {
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(0.0, -1.0), vec2<f32>(1.0, -1.0), vec2<f32>(1.0, 1.0),
        vec2<f32>(0.0, -1.0), vec2<f32>(1.0, 1.0), vec2<f32>(0.0, 1.0),
    );
    let c = corners[vi % 6u];
    let a = to_px(e.src);
    let b = to_px(e.dst);
    var d = b - a;
    let len = length(d);
    if (len > 1e-4) {
        d = d / len;
    } else {
        d = vec2<f32>(1.0, 0.0);
    }
    let n = vec2<f32>(-d.y, d.x);
    let hw = 0.5 * view.edge_width_px + 1.0; // one extra pixel for the anti-aliased rim
    let p = mix(a, b, c.x) + n * (c.y * hw);
    let t = select(e.weight * view.weight_scale, e.local, view.local_scale > 0.5);
    let strength = clamp(abs(t), 0.0, 1.0);
    var out: VsOut;
    out.position = px_to_clip(p);
    out.color = vec4<f32>(diverging(t), view.edge_alpha * (0.06 + 0.94 * strength));
    out.across = c.y * hw;
    out.half_width = 0.5 * view.edge_width_px;
    return out;
}

struct BlockIn {
    @location(0) a: vec4<f32>,   // src_x, src_y0, src_y1, dst_x
    @location(1) b: vec4<f32>,   // dst_y0, dst_y1, mean weight, density
    @location(2) c: vec4<f32>,   // mean / mean |w|, unused x3
    @location(3) d: vec4<f32>,   // solid colour (gamma rgb, a > 0), for node-block bars
};

@vertex
fn vs_block(@builtin(vertex_index) vi: u32, q: BlockIn) -> VsOut {
    var corners = array<vec2<f32>, 6>(
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 0.0), vec2<f32>(1.0, 1.0),
        vec2<f32>(0.0, 0.0), vec2<f32>(1.0, 1.0), vec2<f32>(0.0, 1.0),
    );
    let c = corners[vi % 6u];
    let x = mix(q.a.x, q.a.w, c.x);
    let y0 = mix(q.a.y, q.b.x, c.x);
    let y1 = mix(q.a.z, q.b.y, c.x);
    // Bands at least one pixel thick, so single-node ends stay visible.
    // Solid bars (node blocks) are also at least two pixels wide.
    let solid = q.d.a > 0.0;
    let widen = select(0.0, 2.0 * c.x - 1.0, solid);
    let top = to_px(vec2<f32>(x, y0)) + vec2<f32>(widen, -0.75);
    let bottom = to_px(vec2<f32>(x, y1)) + vec2<f32>(widen, 0.75);
    var out: VsOut;
    out.position = px_to_clip(mix(top, bottom, c.y));
    let density = clamp(q.b.w, 0.0, 1.0);
    let t = select(q.b.z * view.block_scale, q.c.x, view.local_scale > 0.5);
    out.color = vec4<f32>(diverging(t), view.edge_alpha * (0.12 + 0.4 * density));
    if (solid) {
        out.color = q.d;
    }
    out.across = 0.0;
    out.half_width = 1.0e6;
    return out;
}

@fragment
fn fs_edge(in: VsOut) -> @location(0) vec4<f32> {
    let coverage = clamp(in.half_width + 0.5 - abs(in.across), 0.0, 1.0);
    let a = in.color.a * coverage;
    // Premultiplied alpha, as egui's blend state expects.
    return vec4<f32>(output_rgb(in.color.rgb) * a, a);
}
