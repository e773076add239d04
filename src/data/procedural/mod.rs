//! A procedural 10-class digit image set (28x28, u8), deterministic by seed, needing no files:
//! the embedded default the app fits its demo INR zoo on.
//!
//! Each image draws one digit's vector strokes ([`glyphs`]) through a random smooth warp (a
//! low-frequency sine displacement, like a hand's wobble) and a random affine map (rotation
//! +-15 deg, italic shear, anisotropic scale, translation), with a random pen radius, anti-aliased
//! by distance to the nearest segment, then adds Gaussian pixel noise. Labels cycle 0..9 so the
//! classes are balanced; image `i` depends only on `(seed, i)`, so a set of `n` images is a
//! prefix of a set of `n + k`.

pub mod glyphs;

use crate::rng::SplitMix64;

use super::ImageSet;

/// Side of the generated images (MNIST's).
pub const SIDE: usize = 28;

/// `count` images with labels `i % 10`; the same `(count, seed)` always gives the same set.
pub fn generate(count: usize, seed: u64) -> ImageSet {
    let mut images = Vec::with_capacity(count * SIDE * SIDE);
    let mut labels = Vec::with_capacity(count);
    for i in 0..count {
        let digit = (i % 10) as u8;
        let mut rng = SplitMix64::new(seed ^ (i as u64).wrapping_mul(0xA076_1D64_78BD_642F) ^ 0x7072_6f63);
        images.extend(render(digit, &mut rng).iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8));
        labels.push(digit);
    }
    ImageSet { images, labels, rows: SIDE, cols: SIDE, source: format!("procedural:seed={seed}") }
}

/// A random pose and pen for one image.
struct Style {
    /// Unit-box point -> pixel coordinates: `[a, b, c, d]` matrix and translation.
    affine: [f32; 4],
    shift: [f32; 2],
    /// Smooth warp: amplitude, frequency and phase for x and y.
    warp: [[f32; 3]; 2],
    /// Pen radius in pixels and peak ink.
    radius: f32,
    ink: f32,
    noise: f32,
}

impl Style {
    fn random(rng: &mut SplitMix64) -> Self {
        let angle = rng.uniform(-15.0, 15.0).to_radians();
        let shear = rng.uniform(-0.3, 0.3);
        let scale = rng.uniform(0.88, 1.12);
        let (sx, sy) = (scale * rng.uniform(0.8, 1.1), scale * rng.uniform(0.92, 1.05));
        let (sin, cos) = angle.sin_cos();
        // rotation * shear * scale, then to pixels.
        let m = [cos * sx, (cos * shear - sin) * sy, sin * sx, (sin * shear + cos) * sy];
        let px = SIDE as f32;
        let affine = [m[0] * px, m[1] * px, m[2] * px, m[3] * px];
        let centre = px / 2.0;
        let shift = [centre + rng.uniform(-1.8, 1.8), centre + rng.uniform(-1.8, 1.8)];
        let mut wave = || [rng.uniform(0.0, 0.035), rng.uniform(0.5, 1.6), rng.uniform(0.0, std::f32::consts::TAU)];
        let warp = [wave(), wave()];
        Self {
            affine,
            shift,
            warp,
            radius: rng.uniform(0.85, 1.7),
            ink: rng.uniform(0.8, 1.0),
            noise: rng.uniform(0.0, 0.05),
        }
    }

    /// A unit-box glyph point in pixel coordinates (x = column, y = row).
    fn place(&self, p: [f32; 2]) -> [f32; 2] {
        let tau = std::f32::consts::TAU;
        let [wx, wy] = self.warp;
        let x = p[0] + wx[0] * (tau * wx[1] * p[1] + wx[2]).sin() - 0.5;
        let y = p[1] + wy[0] * (tau * wy[1] * p[0] + wy[2]).sin() - 0.5;
        let a = self.affine;
        [a[0] * x + a[1] * y + self.shift[0], a[2] * x + a[3] * y + self.shift[1]]
    }
}

/// Renders one digit into `SIDE * SIDE` intensities (about 0 = background, 1 = ink).
pub fn render(digit: u8, rng: &mut SplitMix64) -> Vec<f32> {
    let style = Style::random(rng);
    let segments: Vec<[[f32; 2]; 2]> = glyphs::strokes(digit)
        .iter()
        .flat_map(|stroke| {
            let placed: Vec<[f32; 2]> = stroke.iter().map(|&p| style.place(p)).collect();
            placed.windows(2).map(|w| [w[0], w[1]]).collect::<Vec<_>>()
        })
        .collect();
    let mut out = vec![0.0f32; SIDE * SIDE];
    for (k, value) in out.iter_mut().enumerate() {
        // Pixel centres at integer + 0.5.
        let p = [(k % SIDE) as f32 + 0.5, (k / SIDE) as f32 + 0.5];
        let d = segments.iter().map(|s| segment_distance(p, s[0], s[1])).fold(f32::INFINITY, f32::min);
        // Coverage of a pen of this radius, smoothed over about one pixel (anti-aliasing).
        let coverage = ((style.radius + 0.6 - d) / 1.2).clamp(0.0, 1.0);
        let smooth = coverage * coverage * (3.0 - 2.0 * coverage);
        *value = (style.ink * smooth + style.noise * rng.normal()).clamp(0.0, 1.0);
    }
    out
}

/// Distance from `p` to the segment `a`-`b`.
fn segment_distance(p: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
    let ab = [b[0] - a[0], b[1] - a[1]];
    let ap = [p[0] - a[0], p[1] - a[1]];
    let len2 = ab[0] * ab[0] + ab[1] * ab[1];
    let t = if len2 > 0.0 { ((ap[0] * ab[0] + ap[1] * ab[1]) / len2).clamp(0.0, 1.0) } else { 0.0 };
    let d = [ap[0] - t * ab[0], ap[1] - t * ab[1]];
    (d[0] * d[0] + d[1] * d[1]).sqrt()
}

/// Writes a grid of images (`cols` per row, 1-pixel gaps) as an 8-bit grayscale PNG, for
/// looking at a set.
pub fn write_grid_png(set: &ImageSet, indices: &[usize], cols: usize, path: &std::path::Path) -> std::io::Result<()> {
    let cols = cols.max(1);
    let rows = indices.len().div_ceil(cols).max(1);
    let (cell_w, cell_h) = (set.cols + 1, set.rows + 1);
    let (w, h) = (cols * cell_w + 1, rows * cell_h + 1);
    let mut pixels = vec![64u8; w * h];
    for (slot, &i) in indices.iter().enumerate() {
        let Some(img) = set.image(i) else { continue };
        let (ox, oy) = ((slot % cols) * cell_w + 1, (slot / cols) * cell_h + 1);
        for r in 0..set.rows {
            let row = &img[r * set.cols..(r + 1) * set.cols];
            pixels[(oy + r) * w + ox..(oy + r) * w + ox + set.cols].copy_from_slice(row);
        }
    }
    crate::atomic_write::write_atomically(path, |file| {
        let mut encoder = png::Encoder::new(file, w as u32, h as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        writer.write_image_data(&pixels).map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_prefix_stable_and_balanced() {
        let a = generate(30, 5);
        assert_eq!(a, generate(30, 5));
        let longer = generate(40, 5);
        assert_eq!(a.images[..], longer.images[..a.images.len()], "n images are a prefix of n + k");
        assert_ne!(a.images, generate(30, 6).images);
        assert_eq!(a.labels[..10], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        // Every image has ink, and most pixels are background (like MNIST: ~19% ink).
        for i in 0..a.len() {
            let img = a.image(i).unwrap();
            let ink = img.iter().filter(|&&p| p > 128).count();
            assert!((25..350).contains(&ink), "image {i} has {ink} ink pixels");
        }
    }

    /// Writes a sample grid to /tmp for a visual check: `cargo test ... procedural -- --ignored`.
    #[test]
    #[ignore]
    fn write_sample_grid() {
        let set = generate(200, 0);
        let order: Vec<usize> = (0..10).flat_map(|d| (0..20).map(move |k| k * 10 + d)).collect();
        write_grid_png(&set, &order, 20, std::path::Path::new("/tmp/procedural_digits.png")).unwrap();
    }

    /// Nearest-centroid classification on raw pixels: a weak learner that still must clearly beat
    /// chance (10%) if the classes are distinct and consistent.
    #[test]
    fn nearest_centroid_beats_chance_by_a_wide_margin() {
        let set = generate(2000, 1);
        let dim = SIDE * SIDE;
        let splits = set.splits(0);
        let mut centroids = vec![vec![0.0f64; dim]; 10];
        let mut counts = [0usize; 10];
        for i in (0..set.len()).filter(|&i| splits[i] == super::super::Split::Train) {
            let c = set.labels[i] as usize;
            counts[c] += 1;
            for (acc, &p) in centroids[c].iter_mut().zip(set.image(i).unwrap()) {
                *acc += p as f64;
            }
        }
        for (c, centroid) in centroids.iter_mut().enumerate() {
            centroid.iter_mut().for_each(|v| *v /= counts[c] as f64);
        }
        let test: Vec<usize> = (0..set.len()).filter(|&i| splits[i] == super::super::Split::Test).collect();
        let correct = test
            .iter()
            .filter(|&&i| {
                let img = set.image(i).unwrap();
                let dist = |c: &Vec<f64>| c.iter().zip(img).map(|(m, &p)| (m - p as f64).powi(2)).sum::<f64>();
                let best = (0..10).min_by(|&a, &b| dist(&centroids[a]).total_cmp(&dist(&centroids[b]))).unwrap();
                best == set.labels[i] as usize
            })
            .count();
        let accuracy = correct as f64 / test.len() as f64;
        assert!(accuracy > 0.6, "nearest-centroid accuracy {accuracy:.3}");
    }
}
