//! `report.html` of the offline tools, written by the real binary from real traces and
//! loaded from disk by a real headless Chromium (Debian package `chromium`;
//! `./scripts/test.sh` installs it): the tables the browser rendered hold the numbers of the
//! CSV files beside the page, every inline plot decoded, and a screenshot is a PNG.
#![cfg(feature = "offline")]

mod common;

use std::io::Read as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use common::browser;
use regex::Regex;

/// Virtual time Chromium gives the page to load (decoding a few inline PNGs).
const BUDGET: Duration = Duration::from_secs(10);

/// The header and the first `rows` rows of the real Azure VM CPU trace (5-minute steps), with
/// the first `vms` VMs: a few real series, so the backtest has per-bucket results.
fn azure_slice(rows: usize, vms: usize) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/azure_vm_v1_sample/microsoft_avg_100.csv.gz"
    );
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("{path}: {e}; the shared traces must sit beside the checkout"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .take(1 + rows)
        .map(|l| {
            let cols: Vec<&str> = l.split(',').take(1 + vms).collect();
            cols.join(",") + "\n"
        })
        .collect()
}

/// The header and the first `days` days of the real NASA requests-per-minute trace.
fn nasa_days(days: usize) -> String {
    common::traces::read(common::traces::NASA_CSV)
        .lines()
        .take(1 + days * 1440)
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Runs `promcast args`; panics with its output unless it succeeds; returns stdout.
fn promcast(args: &[&str], out: &Path) -> String {
    let run = Command::new(env!("CARGO_BIN_EXE_promcast"))
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("running promcast");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "promcast {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

/// The `file://` URL of the report in `out`, after checking the tool said it wrote it.
fn report_url(out: &Path, stdout: &str) -> String {
    let page = out.join("report.html");
    assert!(
        stdout.contains(&format!("wrote {}", page.display())),
        "no 'wrote {}' in:\n{stdout}",
        page.display()
    );
    let page = page.canonicalize().expect("report.html exists");
    format!("file://{}", page.display())
}

/// Text of an element's content: tags removed, the entities a serialiser writes decoded.
fn text(html: &str) -> String {
    let tags = Regex::new(r"<[^>]*>").unwrap();
    tags.replace_all(html, "")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .trim()
        .to_string()
}

/// The table `id` of a document: its header cells and its body rows, as text.
fn table(doc: &str, id: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let t = Regex::new(&format!(r#"(?s)<table id="{id}">(.*?)</table>"#)).unwrap();
    let inner = t
        .captures(doc)
        .unwrap_or_else(|| panic!("no <table id=\"{id}\"> in the document"))
        .get(1)
        .unwrap()
        .as_str();
    let tr = Regex::new(r"(?s)<tr[^>]*>(.*?)</tr>").unwrap();
    let cell = Regex::new(r"(?s)<t[hd][^>]*>(.*?)</t[hd]>").unwrap();
    let mut rows = tr.captures_iter(inner).map(|r| {
        cell.captures_iter(r.get(1).unwrap().as_str())
            .map(|c| text(c.get(1).unwrap().as_str()))
            .collect::<Vec<String>>()
    });
    let head = rows.next().unwrap_or_default();
    (head, rows.collect())
}

/// A CSV file's header and rows (no quoted fields in these files).
fn csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>());
    (lines.next().unwrap_or_default(), lines.collect())
}

/// Digits after the decimal point.
fn decimals(s: &str) -> i32 {
    s.split_once('.').map_or(0, |(_, f)| f.len() as i32)
}

/// Whether a rendered number and a CSV number agree within what both roundings allow
/// (`–` on the page stands for a CSV NaN).
fn same_number(shown: &str, written: &str) -> bool {
    let w: f64 = written
        .parse()
        .unwrap_or_else(|e| panic!("{written:?}: {e}"));
    if shown == "–" {
        return w.is_nan();
    }
    let s: f64 = shown.parse().unwrap_or_else(|e| panic!("{shown:?}: {e}"));
    let slack = 0.5 * 10f64.powi(-decimals(shown)) + 0.5 * 10f64.powi(-decimals(written));
    (s - w).abs() <= slack + 1e-9
}

/// Every row of the rendered table `page` equals the CSV row at the same place: the key
/// columns as text, the `numbers` (page column, CSV column) as numbers.
fn assert_table_matches_csv(
    what: &str,
    page: &(Vec<String>, Vec<Vec<String>>),
    file: &(Vec<String>, Vec<Vec<String>>),
    keys: &[(&str, &str)],
    numbers: &[(&str, &str)],
) {
    let col = |head: &[String], name: &str| {
        head.iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{what}: no column {name:?} in {head:?}"))
    };
    assert_eq!(
        page.1.len(),
        file.1.len(),
        "{what}: rows on the page vs in the CSV"
    );
    for (i, (p, f)) in page.1.iter().zip(&file.1).enumerate() {
        for (pc, fc) in keys {
            assert_eq!(
                p[col(&page.0, pc)],
                f[col(&file.0, fc)],
                "{what} row {i}: {pc}"
            );
        }
        for (pc, fc) in numbers {
            let (shown, written) = (&p[col(&page.0, pc)], &f[col(&file.0, fc)]);
            assert!(
                same_number(shown, written),
                "{what} row {i} ({:?}): {pc} is {shown} on the page, {written} in the CSV",
                &p[..2]
            );
        }
    }
}

/// Chromium decoded every `<img>` of the page (the count its script recorded), and they are
/// `pngs`, inline, byte for byte, in order.
fn assert_images_loaded(dom: &str, pngs: &[std::path::PathBuf]) {
    let imgs: Vec<&str> = Regex::new(r#"<img src="([^"]*)""#)
        .unwrap()
        .captures_iter(dom)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    assert_eq!(
        imgs.len(),
        pngs.len(),
        "<img> elements in the rendered page"
    );
    let loaded = browser::attr(dom, "report", "data-images-loaded")
        .expect("the page's script did not record data-images-loaded on <body>");
    assert_eq!(
        loaded,
        pngs.len().to_string(),
        "images Chromium decoded (naturalWidth > 0)"
    );
    assert_eq!(
        browser::attr(dom, "report", "data-images").as_deref(),
        Some(pngs.len().to_string().as_str())
    );
    for (src, png) in imgs.iter().zip(pngs) {
        let b64 = src
            .strip_prefix("data:image/png;base64,")
            .unwrap_or_else(|| {
                panic!(
                    "an image that is not an inline PNG: {}",
                    &src[..src.len().min(60)]
                )
            });
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("the data URI is base64");
        let file = std::fs::read(png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(
            bytes == file,
            "the inline image is not {} ({} bytes against {})",
            png.display(),
            bytes.len(),
            file.len()
        );
    }
}

const METRIC_NUMBERS: [(&str, &str); 8] = [
    ("MAE", "mae"),
    ("RMSE", "rmse"),
    ("sMAPE %", "smape"),
    ("MASE", "mase"),
    ("R²", "r2"),
    ("coverage", "coverage"),
    ("width", "width"),
    ("under-weighted", "under_weighted"),
];

/// `promcast backtest` on three real Azure VMs (three days at 5 minutes): Chromium renders a
/// metrics table with a row per model and horizon holding metrics.csv's numbers, the
/// per-bucket table holding buckets.csv's, and every series' plot.
#[test]
fn backtest_report_renders_tables_and_plots_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("azure.csv");
    std::fs::write(&input, azure_slice(3 * 288, 3)).unwrap();
    let out = dir.path().join("bt");
    let stdout = promcast(
        &[
            "backtest",
            "--input",
            input.to_str().unwrap(),
            "--column",
            "*",
            "--step",
            "5m",
            "--models",
            "seasonal_naive,mstl",
            "--horizons",
            "5m,15m,30m",
            "--stride",
            "3",
        ],
        &out,
    );
    assert!(stdout.contains("3 series evaluated"), "{stdout}");
    let url = report_url(&out, &stdout);
    let dom = browser::dump_dom(&url, BUDGET, &[]);

    let metrics = table(&dom, "metrics");
    let keys: Vec<(String, String)> = metrics
        .1
        .iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let mut expected = Vec::new();
    for m in ["seasonal_naive", "mstl"] {
        for h in ["5m", "15m", "30m"] {
            expected.push((m.to_string(), h.to_string()));
        }
    }
    assert_eq!(keys, expected, "one metrics row per model and horizon");
    assert_table_matches_csv(
        "metrics",
        &metrics,
        &csv(&out.join("metrics.csv")),
        &[("model", "model"), ("horizon", "horizon")],
        &METRIC_NUMBERS,
    );

    let buckets = table(&dom, "buckets");
    assert_eq!(
        buckets.1.len(),
        3 * 3 * 2 * 3,
        "traits x buckets x models x horizons"
    );
    let mut numbers = METRIC_NUMBERS.to_vec();
    numbers.push(("n", "n"));
    assert_table_matches_csv(
        "buckets",
        &buckets,
        &csv(&out.join("buckets.csv")),
        &[
            ("trait", "trait"),
            ("bucket", "bucket"),
            ("model", "model"),
            ("horizon", "horizon"),
        ],
        &numbers,
    );

    let mut plots: Vec<_> = std::fs::read_dir(out.join("plots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    plots.sort();
    assert_eq!(plots.len(), 3, "{plots:?}");
    assert_images_loaded(&dom, &plots);

    // The tables are in the file itself, not made by the script: the page reads the same
    // without it.
    let file = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(table(&file, "metrics"), metrics);
    assert_eq!(table(&file, "buckets"), buckets);

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report_html");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("backtest.png");
    browser::screenshot(&url, &shot, (1400, 2400), BUDGET, &[]);
    eprintln!("screenshot: {}", shot.display());
}

/// `promcast simulate` on a day of real NASA traffic: Chromium renders the summary table with
/// summary.csv's policies and numbers, and both plots.
#[test]
fn simulate_report_renders_the_summary_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("nasa.csv");
    std::fs::write(&input, nasa_days(1)).unwrap();
    let out = dir.path().join("sim");
    let stdout = promcast(
        &[
            "simulate",
            "--input",
            input.to_str().unwrap(),
            "--step",
            "1m",
            "--capacity",
            "10",
            "--startup",
            "2m",
            "--model",
            "seasonal_naive",
        ],
        &out,
    );
    let url = report_url(&out, &stdout);
    let dom = browser::dump_dom(&url, BUDGET, &[]);
    let summary = table(&dom, "summary");
    let file = csv(&out.join("summary.csv"));
    let policies: Vec<&str> = summary.1.iter().map(|r| r[0].as_str()).collect();
    let written: Vec<&str> = file.1.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(policies, written);
    assert!(
        policies.contains(&"reactive") && policies.len() >= 2,
        "{policies:?}"
    );
    assert_table_matches_csv(
        "summary",
        &summary,
        &file,
        &[("policy", "policy")],
        &[
            ("violation minutes", "violation_minutes"),
            ("unserved", "unserved"),
            ("replica-minutes", "replica_minutes"),
            ("over-provisioning", "overprovision"),
            ("scaling events", "scaling_events"),
        ],
    );
    assert_images_loaded(
        &dom,
        &[out.join("timeline.png"), out.join("cost_vs_violations.png")],
    );
}
