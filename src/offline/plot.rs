//! PNG plots (plotters, bitmap backend) for the offline reports. Text uses DejaVu Sans Mono,
//! embedded in the binary (`assets/fonts/`), so no system font library is needed.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");
const FAMILY: &str = "sans-serif";

fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is valid; a failure would only lose the text.
        let _ = register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// A line of a chart: label, points `(x, y)` (NaN y breaks the line), colour index.
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: usize,
}

/// A shaded band `(x, lower, upper)`.
pub struct Band {
    pub points: Vec<(f64, f64, f64)>,
    pub color: usize,
}

/// One panel of a chart.
pub struct Panel {
    pub title: String,
    pub lines: Vec<Line>,
    pub bands: Vec<Band>,
    /// Draw points instead of lines (scatter).
    pub scatter: bool,
}

pub fn color(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    PALETTE[i % PALETTE.len()]
}

fn range(panel: &Panel) -> Option<((f64, f64), (f64, f64))> {
    let mut xs = (f64::INFINITY, f64::NEG_INFINITY);
    let mut ys = (f64::INFINITY, f64::NEG_INFINITY);
    let mut add = |x: f64, y: f64| {
        if x.is_finite() && y.is_finite() {
            xs = (xs.0.min(x), xs.1.max(x));
            ys = (ys.0.min(y), ys.1.max(y));
        }
    };
    for l in &panel.lines {
        for &(x, y) in &l.points {
            add(x, y);
        }
    }
    for b in &panel.bands {
        for &(x, lo, hi) in &b.points {
            add(x, lo);
            add(x, hi);
        }
    }
    if !xs.0.is_finite() {
        return None;
    }
    if xs.1 <= xs.0 {
        xs.1 = xs.0 + 1.0;
    }
    let pad = ((ys.1 - ys.0) * 0.05).max(1e-9);
    Some((xs, (ys.0 - pad, ys.1 + pad)))
}

/// Writes the panels stacked vertically into one PNG.
pub fn panels_png(path: &Path, x_label: &str, panels: &[Panel], width: u32) -> Result<()> {
    fonts();
    let height = 320 * panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (area, panel) in areas.iter().zip(panels) {
        let Some(((x0, x1), (y0, y1))) = range(panel) else {
            continue;
        };
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FAMILY, 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .label_style((FAMILY, 12))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| err(&e))?;
        for b in &panel.bands {
            let c = color(b.color).mix(0.2);
            // One polygon per run of finite points.
            for run in b
                .points
                .split(|(_, lo, hi)| !lo.is_finite() || !hi.is_finite())
            {
                if run.len() < 2 {
                    continue;
                }
                let mut poly: Vec<(f64, f64)> = run.iter().map(|p| (p.0, p.2)).collect();
                poly.extend(run.iter().rev().map(|p| (p.0, p.1)));
                chart
                    .draw_series(std::iter::once(Polygon::new(poly, c.filled())))
                    .map_err(|e| err(&e))?;
            }
        }
        for l in &panel.lines {
            let c = color(l.color);
            let style = c.stroke_width(1);
            let mut first = true;
            if panel.scatter {
                let pts = l.points.iter().filter(|p| p.1.is_finite()).copied();
                let s = chart
                    .draw_series(pts.map(|p| Circle::new(p, 4, c.filled())))
                    .map_err(|e| err(&e))?;
                s.label(&l.label)
                    .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
                continue;
            }
            for run in l.points.split(|p| !p.1.is_finite()) {
                if run.is_empty() {
                    continue;
                }
                let s = chart
                    .draw_series(LineSeries::new(run.iter().copied(), style))
                    .map_err(|e| err(&e))?;
                if first {
                    s.label(&l.label).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                    });
                    first = false;
                }
            }
        }
        chart
            .configure_series_labels()
            .label_font((FAMILY, 12))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_with_lines_and_a_band() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        let xs: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let mut points: Vec<(f64, f64)> = xs.iter().map(|&x| (x, (x / 10.0).sin())).collect();
        points[50].1 = f64::NAN; // a gap breaks the line
        let panel = Panel {
            title: "test".into(),
            lines: vec![Line {
                label: "actual".into(),
                points,
                color: 0,
            }],
            bands: vec![Band {
                points: xs.iter().map(|&x| (x, -1.0, 1.0)).collect(),
                color: 1,
            }],
            scatter: false,
        };
        panels_png(&path, "step", &[panel], 600).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        assert!(bytes.len() > 1000);
    }
}
