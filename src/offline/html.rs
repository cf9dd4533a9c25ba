//! Self-contained HTML pages (`report.html`) for the offline tools: a title, what was run,
//! tables and the PNG plots inline as `data:` URIs. Nothing is fetched: no stylesheet, font
//! or script from elsewhere. The page reads the same without its one script, which only
//! counts the images the browser decoded (`data-images-loaded` on `<body>`, for tests).
//!
//! Generic: it knows pages, tables and images, not backtests; `report.rs` fills it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine as _;

/// `s` with `&`, `<`, `>`, `"` and `'` escaped, for text and attribute values alike.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `bytes` (a PNG) as a `data:image/png;base64,...` URI.
pub fn png_data_uri(bytes: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// One table cell: its text, and its value when it is a number (right-aligned, comparable).
#[derive(Debug, Clone)]
pub struct Cell {
    pub text: String,
    pub value: Option<f64>,
    pub best: bool,
}

impl Cell {
    /// A text cell.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell {
            text: s.into(),
            value: None,
            best: false,
        }
    }

    /// A number with `decimals` digits after the point; NaN and infinities as `–`.
    pub fn num(v: f64, decimals: usize) -> Cell {
        Cell {
            text: if v.is_finite() {
                format!("{v:.decimals$}")
            } else {
                "–".into()
            },
            value: Some(v),
            best: false,
        }
    }

    /// A count.
    pub fn int(v: u64) -> Cell {
        Cell {
            text: v.to_string(),
            value: Some(v as f64),
            best: false,
        }
    }
}

/// A table with an `id` (for links and tests), a caption and a header row.
#[derive(Debug, Clone)]
pub struct Table {
    pub id: String,
    pub caption: String,
    pub head: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(id: &str, caption: &str, head: &[&str]) -> Table {
        Table {
            id: id.into(),
            caption: caption.into(),
            head: head.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Marks the best value of column `col` among rows that agree on the columns `group`
    /// (all rows when empty): the lowest, or the highest when `!lower`. Ties are all marked;
    /// non-finite values never are.
    pub fn mark_best(&mut self, col: usize, group: &[usize], lower: bool) {
        let key =
            |row: &[Cell]| -> Vec<String> { group.iter().map(|&g| row[g].text.clone()).collect() };
        let mut best: Vec<(Vec<String>, f64)> = Vec::new();
        for row in &self.rows {
            let Some(v) = row[col].value.filter(|v| v.is_finite()) else {
                continue;
            };
            let k = key(row);
            match best.iter_mut().find(|(g, _)| *g == k) {
                Some((_, b)) if (lower && v < *b) || (!lower && v > *b) => *b = v,
                Some(_) => {}
                None => best.push((k, v)),
            }
        }
        for row in &mut self.rows {
            let k = key(row);
            if let Some((_, b)) = best.iter().find(|(g, _)| *g == k) {
                if row[col].value == Some(*b) {
                    row[col].best = true;
                }
            }
        }
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "<table id=\"{}\">", escape(&self.id));
        let _ = writeln!(out, "<caption>{}</caption>", escape(&self.caption));
        out.push_str("<thead><tr>");
        for h in &self.head {
            let _ = write!(out, "<th scope=\"col\">{}</th>", escape(h));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for row in &self.rows {
            out.push_str("<tr>");
            for c in row {
                let class = match (c.value.is_some(), c.best) {
                    (true, true) => " class=\"num best\"",
                    (true, false) => " class=\"num\"",
                    (false, _) => "",
                };
                let _ = write!(out, "<td{class}>{}</td>", escape(&c.text));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
    }
}

const STYLE: &str = "\
:root { color-scheme: light; --line: #d0d7de; --muted: #57606a; --head: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1f2328; }
header { position: sticky; top: 0; z-index: 1; background: #fff; border-bottom: 1px solid var(--line);
  padding: .6rem 1.5rem; }
header h1 { margin: 0; font-size: 1.25rem; }
header nav { font-size: .9rem; color: var(--muted); }
header nav a { margin-right: .9rem; color: #0969da; text-decoration: none; }
main { padding: 0 1.5rem 3rem; max-width: 1500px; }
h2 { margin-top: 2rem; border-bottom: 1px solid var(--line); padding-bottom: .2rem; scroll-margin-top: 5rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; }
dt { color: var(--muted); }
dd { margin: 0; }
table { border-collapse: collapse; margin: .8rem 0 1.2rem; font-size: .9rem; }
caption { text-align: left; color: var(--muted); padding-bottom: .3rem; }
th, td { border: 1px solid var(--line); padding: .2rem .55rem; }
th { background: var(--head); text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: 700; }
tbody tr:nth-child(even) { background: #fbfcfd; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: .9rem; }
pre { background: var(--head); border: 1px solid var(--line); padding: .6rem; overflow-x: auto; }
details summary { cursor: pointer; color: #0969da; }
";

/// Counts the images the browser decoded once the page has loaded. Not needed to read
/// the page; tests read the count.
const SCRIPT: &str = "addEventListener('load', function () {
  var n = 0;
  for (var i = 0; i < document.images.length; i++) {
    if (document.images[i].naturalWidth > 0) n++;
  }
  document.body.setAttribute('data-images-loaded', String(n));
});";

/// A page being built: sections in order, each with an anchor in the sticky header.
pub struct Page {
    title: String,
    nav: Vec<(String, String)>,
    body: String,
    images: usize,
}

impl Page {
    pub fn new(title: &str) -> Page {
        Page {
            title: title.into(),
            nav: Vec::new(),
            body: String::new(),
            images: 0,
        }
    }

    /// A section heading, linked from the header.
    pub fn section(&mut self, id: &str, title: &str) {
        self.nav.push((id.into(), title.into()));
        let _ = writeln!(
            self.body,
            "<h2 id=\"{}\">{}</h2>",
            escape(id),
            escape(title)
        );
    }

    pub fn paragraph(&mut self, text: &str) {
        let _ = writeln!(self.body, "<p>{}</p>", escape(text));
    }

    /// Preformatted text (a configuration, a printed summary).
    pub fn pre(&mut self, text: &str) {
        let _ = writeln!(self.body, "<pre>{}</pre>", escape(text));
    }

    /// Name/value pairs (what was run).
    pub fn facts(&mut self, items: &[(&str, String)]) {
        self.body.push_str("<dl>\n");
        for (k, v) in items {
            let _ = writeln!(self.body, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(v));
        }
        self.body.push_str("</dl>\n");
    }

    pub fn table(&mut self, t: &Table) {
        t.render(&mut self.body);
    }

    /// A table folded away behind `summary` (long tables: every trial, every point).
    pub fn folded_table(&mut self, summary: &str, t: &Table) {
        let _ = writeln!(self.body, "<details><summary>{}</summary>", escape(summary));
        t.render(&mut self.body);
        self.body.push_str("</details>\n");
    }

    /// A PNG inline, with a caption.
    pub fn image(&mut self, caption: &str, png: &[u8]) {
        self.images += 1;
        let _ = writeln!(
            self.body,
            "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
            png_data_uri(png),
            escape(caption),
            escape(caption)
        );
    }

    /// The PNG at `path` inline.
    pub fn image_file(&mut self, caption: &str, path: &Path) -> Result<()> {
        let png = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        self.image(caption, &png);
        Ok(())
    }

    /// The whole document.
    pub fn finish(&self) -> String {
        let mut out = String::with_capacity(self.body.len() + 4096);
        let title = escape(&self.title);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n\
             <body id=\"report\" data-images=\"{}\">\n<header>\n<h1>{title}</h1>\n<nav>",
            self.images
        );
        for (id, name) in &self.nav {
            let _ = write!(out, "<a href=\"#{}\">{}</a>", escape(id), escape(name));
        }
        let _ = write!(
            out,
            "</nav>\n</header>\n<main>\n{}</main>\n<script>\n{SCRIPT}\n</script>\n</body>\n</html>\n",
            self.body
        );
        out
    }

    /// Writes the document to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.finish()).with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain — ünïcode"), "plain — ünïcode");
        // escaping is not idempotent: an already escaped entity is escaped again
        assert_eq!(escape("&amp;"), "&amp;amp;");
    }

    #[test]
    fn data_uris_are_standard_padded_base64() {
        // RFC 4648 test vectors
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(
                png_data_uri(raw.as_bytes()),
                format!("data:image/png;base64,{enc}")
            );
        }
        // the alphabet's last two characters are + and / (not URL-safe - and _)
        assert_eq!(
            png_data_uri(&[0xfb, 0xef, 0xbe, 0xff, 0xff, 0xff]),
            "data:image/png;base64,++++////"
        );
        // a PNG signature and a binary tail survive a round trip
        let bytes: Vec<u8> = b"\x89PNG\r\n\x1a\n"
            .iter()
            .copied()
            .chain(0..=255)
            .collect();
        let uri = png_data_uri(&bytes);
        let enc = uri.strip_prefix("data:image/png;base64,").unwrap();
        let back = base64::engine::general_purpose::STANDARD
            .decode(enc)
            .unwrap();
        assert_eq!(back, bytes);
    }

    #[test]
    fn tables_escape_align_and_mark_the_best_per_group() {
        let mut t = Table::new("t", "a <caption>", &["model", "h", "MASE", "R²"]);
        for (m, h, mase, r2) in [
            ("a&b", "5m", 1.2, 0.5),
            ("c", "5m", 0.9, f64::NAN),
            ("a&b", "15m", 1.5, 0.7),
            ("c", "15m", 1.5, 0.1),
        ] {
            t.rows.push(vec![
                Cell::text(m),
                Cell::text(h),
                Cell::num(mase, 3),
                Cell::num(r2, 2),
            ]);
        }
        t.mark_best(2, &[1], true);
        t.mark_best(3, &[], false);
        let mut s = String::new();
        t.render(&mut s);
        assert!(s.contains("<table id=\"t\">"), "{s}");
        assert!(s.contains("<caption>a &lt;caption&gt;</caption>"), "{s}");
        assert!(s.contains("<td>a&amp;b</td>"), "{s}");
        // 5m: c is best; 15m: a tie, both marked
        assert!(
            s.contains("<td>c</td><td>5m</td><td class=\"num best\">0.900</td>"),
            "{s}"
        );
        assert!(
            s.contains("<td>a&amp;b</td><td>5m</td><td class=\"num\">1.200</td>"),
            "{s}"
        );
        assert_eq!(s.matches("<td class=\"num best\">1.500</td>").count(), 2);
        // NaN shows as a dash and is never best; the highest R² is
        assert!(s.contains("<td class=\"num\">–</td>"), "{s}");
        assert!(s.contains("<td class=\"num best\">0.70</td>"), "{s}");
    }

    #[test]
    fn a_page_is_self_contained() {
        let mut p = Page::new("T <1>");
        p.section("s", "Section & more");
        p.facts(&[("input", "a\"b".into())]);
        p.image("plot", b"\x89PNG\r\n\x1a\n");
        p.pre("x < y");
        let html = p.finish();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>T &lt;1&gt;</title>"));
        assert!(html.contains("<a href=\"#s\">Section &amp; more</a>"));
        assert!(html.contains("<dd>a&quot;b</dd>"));
        assert!(html.contains("data-images=\"1\""));
        assert!(html.contains("<img src=\"data:image/png;base64,iVBORw0KGgo=\""));
        assert!(html.contains("<pre>x &lt; y</pre>"));
        // nothing from elsewhere: every src is a data: URI, no links, imports or urls
        for external in ["http:", "https:", "<link", "@import", "url("] {
            assert!(!html.contains(external), "{external} in the page");
        }
        for (i, _) in html.match_indices("src=\"") {
            assert!(html[i + 5..].starts_with("data:image/png;base64,"));
        }
    }
}
