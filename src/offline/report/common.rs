//! What every report shares: the output folder and its files, one-panel PNGs and the
//! `plots` section of a page.

use std::path::Path;

use anyhow::{Context, Result};

use crate::offline::html::Page;
use crate::offline::plot::{panels_png, Line, Panel};

/// Creates `out` (and its parents).
pub(super) fn create_dir(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))
}

/// Writes `text` to `out/name`.
pub(super) fn write_file(out: &Path, name: &str, text: &str) -> Result<()> {
    let p = out.join(name);
    std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
}

/// Buckets a plot shows at most (the end of the test split), so the lines stay readable.
pub const PLOT_BUCKETS: i64 = 720;

/// Draws one panel of `lines` (no bands; points alone with `scatter`) titled `title` into
/// the PNG `path`, `width` pixels wide.
pub(super) fn one_panel_png(
    path: &Path,
    x_label: &str,
    title: &str,
    lines: Vec<Line>,
    scatter: bool,
    width: u32,
) -> Result<()> {
    let panel = Panel {
        title: title.into(),
        lines,
        bands: vec![],
        scatter,
    };
    panels_png(path, x_label, &[panel], width)
}

/// Opens the page's `plots` section, titled `title`, with the PNGs `out/<file>` inline,
/// each under its caption (`(caption, file)` in order).
pub(super) fn plots_section(
    page: &mut Page,
    title: &str,
    out: &Path,
    images: &[(&str, &str)],
) -> Result<()> {
    page.section("plots", title);
    for (caption, file) in images {
        page.image_file(caption, &out.join(file))?;
    }
    Ok(())
}
