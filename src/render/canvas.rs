//! An RGB pixel buffer with the few drawing operations figures need: filled rectangles, lines and
//! anti-aliased text (horizontal or rotated a quarter turn), encoded as PNG.

use ab_glyph::{Font as _, FontRef, PxScale, ScaleFont as _, point};

use super::Error;

pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [0, 0, 0];
pub const INK: Rgb = [40, 40, 40];

/// Largest image side we agree to allocate.
const MAX_SIDE: usize = 16_384;

pub struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
    font: FontRef<'static>,
}

/// Size (pixels), colour and anchoring of a line of text.
#[derive(Clone, Copy, Debug)]
pub struct TextStyle {
    pub size: f32,
    pub color: Rgb,
    pub halign: Align,
    pub valign: Align,
}

impl TextStyle {
    pub fn new(size: f32, color: Rgb, halign: Align, valign: Align) -> Self {
        Self { size, color, halign, valign }
    }
}

/// Where a text's anchor point sits relative to the text box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Start,
    Centre,
    End,
}

impl Canvas {
    pub fn new(width: usize, height: usize) -> Result<Self, Error> {
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(Error::TooLarge { width, height });
        }
        // The font is compiled in; failing to parse it is a build defect, not an input error.
        let font = FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT).expect("embedded font parses");
        Ok(Self { width, height, pixels: vec![255; width * height * 3], font })
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn pixel(&self, x: usize, y: usize) -> Option<Rgb> {
        (x < self.width && y < self.height).then(|| {
            let i = (y * self.width + x) * 3;
            [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
        })
    }

    /// Mixes `color` into pixel (x, y) with opacity `alpha` (0..1); outside pixels are ignored.
    pub fn blend(&mut self, x: i64, y: i64, color: Rgb, alpha: f32) {
        if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height {
            return;
        }
        let a = alpha.clamp(0.0, 1.0);
        let i = (y as usize * self.width + x as usize) * 3;
        for (px, &target) in self.pixels[i..i + 3].iter_mut().zip(&color) {
            let old = *px as f32;
            *px = (old + (target as f32 - old) * a).round() as u8;
        }
    }

    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, color: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.blend(xx, yy, color, 1.0);
            }
        }
    }

    /// A one-pixel rectangle outline.
    pub fn stroke_rect(&mut self, x: i64, y: i64, w: i64, h: i64, color: Rgb) {
        self.fill_rect(x, y, w, 1, color);
        self.fill_rect(x, y + h - 1, w, 1, color);
        self.fill_rect(x, y, 1, h, color);
        self.fill_rect(x + w - 1, y, 1, h, color);
    }

    /// Width and height (ascent + descent) of `text` at `size` pixels.
    pub fn text_size(&self, text: &str, size: f32) -> (f32, f32) {
        let font = self.font.as_scaled(PxScale::from(size));
        let mut width = 0.0;
        let mut prev = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                width += font.kern(p, id);
            }
            width += font.h_advance(id);
            prev = Some(id);
        }
        (width, font.ascent() - font.descent())
    }

    /// Draws `text` horizontally; (x, y) is the anchor: `halign` along the text, `valign` on the
    /// box from ascent (Start) to descent (End).
    pub fn text(&mut self, text: &str, x: f32, y: f32, style: TextStyle) {
        let (mask, w, h) = self.rasterise(text, style.size);
        let (ox, oy) = (offset(x, w as f32, style.halign), offset(y, h as f32, style.valign));
        for yy in 0..h {
            for xx in 0..w {
                let a = mask[yy * w + xx];
                if a > 0.0 {
                    self.blend(ox as i64 + xx as i64, oy as i64 + yy as i64, style.color, a);
                }
            }
        }
    }

    /// Draws `text` rotated a quarter turn counter-clockwise (reading bottom to top); `halign`
    /// applies along the (now vertical) text, `valign` across it.
    pub fn text_vertical(&mut self, text: &str, x: f32, y: f32, style: TextStyle) {
        let (mask, w, h) = self.rasterise(text, style.size);
        // After rotation the box is h wide and w tall; the text starts at the bottom.
        let bottom = match style.halign {
            Align::Start => y,
            Align::Centre => y + w as f32 / 2.0,
            Align::End => y + w as f32,
        };
        let left = offset(x, h as f32, style.valign);
        for yy in 0..h {
            for xx in 0..w {
                let a = mask[yy * w + xx];
                if a > 0.0 {
                    self.blend(left as i64 + yy as i64, bottom as i64 - xx as i64, style.color, a);
                }
            }
        }
    }

    /// Coverage mask (row-major, w x h) of a line of text, baseline at the font's ascent.
    fn rasterise(&self, text: &str, size: f32) -> (Vec<f32>, usize, usize) {
        let (tw, th) = self.text_size(text, size);
        let (w, h) = (tw.ceil() as usize + 2, th.ceil() as usize + 2);
        let mut mask = vec![0.0f32; w * h];
        let font = self.font.as_scaled(PxScale::from(size));
        let mut caret = 1.0;
        let mut prev = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                caret += font.kern(p, id);
            }
            let glyph = id.with_scale_and_position(PxScale::from(size), point(caret, 1.0 + font.ascent()));
            caret += font.h_advance(id);
            prev = Some(id);
            let Some(outline) = self.font.outline_glyph(glyph) else { continue };
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                let px = bounds.min.x as i64 + gx as i64;
                let py = bounds.min.y as i64 + gy as i64;
                if px >= 0 && py >= 0 && (px as usize) < w && (py as usize) < h {
                    let m = &mut mask[py as usize * w + px as usize];
                    *m = (*m + coverage).min(1.0);
                }
            });
        }
        (mask, w, h)
    }

    /// PNG bytes (8-bit RGB).
    pub fn to_png(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.pixels)?;
        writer.finish()?;
        Ok(out)
    }
}

fn offset(anchor: f32, extent: f32, align: Align) -> f32 {
    match align {
        Align::Start => anchor,
        Align::Centre => anchor - extent / 2.0,
        Align::End => anchor - extent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_leaves_ink_inside_its_box() {
        let mut c = Canvas::new(200, 60).unwrap();
        c.text("CKA 0.93", 10.0, 10.0, TextStyle::new(20.0, BLACK, Align::Start, Align::Start));
        let (w, h) = c.text_size("CKA 0.93", 20.0);
        let mut inked = 0;
        for y in 0..60 {
            for x in 0..200 {
                if c.pixel(x, y).unwrap() != WHITE {
                    inked += 1;
                    assert!(x >= 9 && (x as f32) < 12.0 + w && y >= 9 && (y as f32) < 12.0 + h, "ink at {x},{y}");
                }
            }
        }
        assert!(inked > 50);
    }

    #[test]
    fn png_round_trips_dimensions() {
        let c = Canvas::new(31, 17).unwrap();
        let bytes = c.to_png().unwrap();
        let reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (31, 17));
        assert!(Canvas::new(0, 5).is_err());
    }
}
