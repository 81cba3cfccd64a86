//! Pictures for people who would rather look than read: ROC curves as PNG.

use crate::error::{Error, Result};
use crate::fsutil::write_png;
use crate::metrics::RocPoint;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

/// Registers the bundled DejaVu Sans (assets/fonts, Bitstream Vera licence) as "sans-serif".
pub(crate) fn ensure_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../assets/fonts/DejaVuSans.ttf"),
        );
    });
}

const COLORS: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];

/// Draws ROC curves (TAR against FAR on a log axis) into a PNG.
pub fn roc_png(path: &Path, title: &str, curves: &[(String, Vec<RocPoint>)]) -> Result<()> {
    ensure_font();
    let (w, h) = (900u32, 640u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let err =
        |e: &dyn std::fmt::Display| Error::Invalid(format!("drawing {}: {e}", path.display()));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let min_far = 1e-5f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(18)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((min_far..1f64).log_scale(), 0f64..1.0f64)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("false accept rate (impostors let in)")
            .y_desc("true accept rate (staff let in)")
            .x_label_formatter(&|v| format!("{v:.0e}"))
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (name, pts)) in curves.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    pts.iter()
                        .filter(|p| p.far > 0.0)
                        .map(|p| (p.far.max(min_far), p.tar)),
                    color.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).expect("buffer sized for the image");
    write_png(path, &img)
}
