//! The web page at `/`: one HTML file, a script and a stylesheet of our own, and uPlot
//! (1.6.32, MIT, from the npm registry: `uPlot.iife.min.js`, `uPlot.min.css`), all embedded
//! in the binary and served from memory. The page reads the JSON API (forecasts, history,
//! forecast history, scaling) from the same listener, so it sits behind the same `auth:` and
//! `tls:`; nothing is fetched from anywhere else.
//!
//! uPlot over Chart.js (~200 KB minified) or ECharts (~1 MB): 51 KB, canvas, no dependencies,
//! and it draws 100k points in a few milliseconds; bands between two series are built in.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// `(path under /static/, content type, bytes)`.
pub const ASSETS: [(&str, &str, &[u8]); 4] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("web/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("web/app.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("web/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("web/uPlot.min.css"),
    ),
];

pub const INDEX_HTML: &str = include_str!("web/index.html");

/// Bytes the page adds to the binary (the HTML and every asset).
pub fn embedded_bytes() -> usize {
    INDEX_HTML.len() + ASSETS.iter().map(|(_, _, b)| b.len()).sum::<usize>()
}

/// `GET /`.
pub async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

/// `GET /static/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_references_only_embedded_assets_and_stays_small() {
        for (name, _, bytes) in ASSETS {
            assert!(!bytes.is_empty(), "{name}");
        }
        let referenced: Vec<&str> = INDEX_HTML
            .split("static/")
            .skip(1)
            .map(|s| &s[..s.find('"').unwrap()])
            .collect();
        assert_eq!(referenced.len(), ASSETS.len());
        for r in referenced {
            assert!(
                ASSETS.iter().any(|(n, _, _)| *n == r),
                "{r} is not embedded"
            );
        }
        assert!(!INDEX_HTML.contains("//cdn") && !INDEX_HTML.contains("https://"));
        assert!(embedded_bytes() < 300 * 1024, "{} bytes", embedded_bytes());
    }
}
