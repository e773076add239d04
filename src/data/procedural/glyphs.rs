//! The ten digits as vector strokes: polylines in a unit box (x right, y down, both in [0, 1]),
//! shaped like a quick handwritten digit rather than a typeface. Curves are sampled arcs.

use std::f32::consts::PI;

/// A stroke: points joined by straight segments.
pub type Stroke = Vec<[f32; 2]>;

/// Points on the ellipse arc around `c` with radii `r`, from angle `a0` to `a1` in degrees
/// (y down, so -90 is the top and 90 the bottom), `n` segments.
fn arc(c: [f32; 2], r: [f32; 2], a0: f32, a1: f32, n: usize) -> Stroke {
    (0..=n)
        .map(|i| {
            let a = (a0 + (a1 - a0) * i as f32 / n as f32) * PI / 180.0;
            [c[0] + r[0] * a.cos(), c[1] + r[1] * a.sin()]
        })
        .collect()
}

fn line(points: &[[f32; 2]]) -> Stroke {
    points.to_vec()
}

/// Appends the points of `b` to `a` (one continuous stroke).
fn join(mut a: Stroke, b: Stroke) -> Stroke {
    a.extend(b);
    a
}

/// The strokes of `digit` (0-9; anything else gives no strokes).
pub fn strokes(digit: u8) -> Vec<Stroke> {
    match digit {
        0 => vec![arc([0.5, 0.5], [0.2, 0.31], -100.0, 265.0, 28)],
        1 => vec![line(&[[0.38, 0.3], [0.53, 0.17], [0.51, 0.83]])],
        2 => vec![join(arc([0.5, 0.36], [0.19, 0.18], -165.0, 30.0, 14), line(&[[0.29, 0.82], [0.74, 0.81]]))],
        3 => vec![join(
            arc([0.49, 0.33], [0.17, 0.15], -160.0, 90.0, 14),
            arc([0.49, 0.65], [0.2, 0.17], -90.0, 155.0, 14),
        )],
        4 => vec![line(&[[0.46, 0.17], [0.27, 0.6], [0.76, 0.6]]), line(&[[0.63, 0.36], [0.62, 0.84]])],
        5 => vec![join(
            line(&[[0.71, 0.18], [0.37, 0.18], [0.34, 0.47]]),
            arc([0.5, 0.63], [0.2, 0.19], -125.0, 150.0, 16),
        )],
        6 => vec![join(
            line(&[[0.66, 0.17], [0.5, 0.27], [0.37, 0.45]]),
            arc([0.51, 0.65], [0.17, 0.17], 195.0, 555.0, 22),
        )],
        7 => vec![line(&[[0.27, 0.2], [0.73, 0.18], [0.44, 0.83]])],
        8 => vec![arc([0.5, 0.33], [0.15, 0.15], 90.0, 450.0, 20), arc([0.5, 0.66], [0.19, 0.18], -90.0, 270.0, 22)],
        9 => vec![join(arc([0.49, 0.36], [0.17, 0.17], 0.0, 360.0, 22), line(&[[0.64, 0.55], [0.58, 0.84]]))],
        _ => Vec::new(),
    }
}
