//! The reports' unit tests: each page's tables and inline plots, on real data.

use super::*;
use crate::offline::data::{nasa_days, Trace};
use crate::offline::simulate::SimOptions;
use base64::Engine as _;
use std::time::Duration;

/// The `<table id="id">` element of a page.
fn table<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<table id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no table {id}"));
    let end = start + html[start..].find("</table>").unwrap();
    &html[start..end]
}

/// The data rows of a table, each as its cells' text (tags removed).
fn rows(table: &str) -> Vec<Vec<String>> {
    let body = &table[table.find("<tbody>").unwrap()..];
    body.split("<tr>")
        .skip(1)
        .map(|tr| {
            tr.split("<td")
                .skip(1)
                .map(|td| {
                    let text = &td[td.find('>').unwrap() + 1..];
                    text[..text.find("</td>").unwrap()].to_string()
                })
                .collect()
        })
        .collect()
}

/// The decoded inline images of a page.
fn images(html: &str) -> Vec<Vec<u8>> {
    let prefix = "<img src=\"data:image/png;base64,";
    html.match_indices(prefix)
        .map(|(i, _)| {
            let enc = &html[i + prefix.len()..];
            let enc = &enc[..enc.find('"').unwrap()];
            base64::engine::general_purpose::STANDARD
                .decode(enc)
                .unwrap()
        })
        .collect()
}

/// Three real days of NASA traffic as three series, named with markup to escape.
fn three_days() -> Vec<Trace> {
    let t = nasa_days(3);
    (0..3)
        .map(|d| Trace {
            name: format!("nasa <day {}> & \"july\"", d + 1),
            times_ms: t.times_ms[d * 1440..(d + 1) * 1440].to_vec(),
            values: t.values[d * 1440..(d + 1) * 1440].to_vec(),
            calendar: t.calendar,
        })
        .collect()
}

#[test]
fn a_backtest_report_has_every_table_and_its_plots_inline() {
    let mut opts = crate::offline::backtest::BacktestOptions::new(Duration::from_secs(60));
    opts.models = vec!["naive".into(), "seasonal_naive".into()];
    opts.horizons = vec![Duration::from_secs(300), Duration::from_secs(900)];
    opts.retention = Duration::from_secs(4 * 3600);
    opts.seasons = vec![Duration::from_secs(3600)];
    opts.test_fraction = 0.1;
    opts.stride = 29;
    let bt = crate::offline::backtest::run(&three_days(), &opts, &|_, _, _| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_backtest(&bt, dir.path()).unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();

    let metrics = rows(table(&html, "metrics"));
    let keys: Vec<(&str, &str)> = metrics
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("naive", "5m"),
            ("naive", "15m"),
            ("seasonal_naive", "5m"),
            ("seasonal_naive", "15m")
        ]
    );
    // the numbers are metrics.csv's, at the printed precision (MASE: 3 decimals)
    let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    for (line, row) in csv.lines().skip(1).zip(&metrics) {
        let mase: f64 = line.split(',').nth(5).unwrap().parse().unwrap();
        assert_eq!(row[6], format!("{mase:.3}"), "{line}");
    }
    // one lowest MASE per horizon in bold (a tie would mark both)
    let best = table(&html, "metrics")
        .matches("class=\"num best\"")
        .count();
    assert!(best >= 2 * 5, "{best} best cells");
    // 3 traits x 3 buckets x 2 models x 2 horizons, as buckets.csv
    let buckets = rows(table(&html, "buckets"));
    let csv = std::fs::read_to_string(dir.path().join("buckets.csv")).unwrap();
    assert_eq!(buckets.len(), 36);
    assert_eq!(buckets.len(), csv.lines().count() - 1);
    // every series' plot, inline and byte for byte the PNG beside it
    let imgs = images(&html);
    assert_eq!(imgs.len(), 3);
    assert!(html.contains("data-images=\"3\""));
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("plots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for (img, file) in imgs.iter().zip(&files) {
        assert!(img.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(img, &std::fs::read(file).unwrap(), "{}", file.display());
    }
    // series names are text, never markup
    assert!(!html.contains("<day 1>"));
    assert!(html.contains("nasa &lt;day 1&gt; &amp; &quot;july&quot;"));
}

#[test]
fn a_backtest_of_one_series_says_why_there_are_no_buckets() {
    let mut opts = crate::offline::backtest::BacktestOptions::new(Duration::from_secs(60));
    opts.models = vec!["naive".into()];
    opts.horizons = vec![Duration::from_secs(300)];
    opts.retention = Duration::from_secs(3600);
    opts.test_fraction = 0.05;
    opts.stride = 30;
    let bt = crate::offline::backtest::run(&three_days()[..1], &opts, &|_, _, _| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_backtest(&bt, dir.path()).unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert_eq!(rows(table(&html, "metrics")).len(), 1);
    assert!(!html.contains("<table id=\"buckets\">"));
    assert!(html.contains("need at least 3 series, and this run evaluated 1"));
    assert_eq!(images(&html).len(), 1);
}

#[test]
fn a_simulation_report_has_the_summary_and_both_plots() {
    let t = nasa_days(1);
    let (b0, v) = t.bucketed(60_000);
    let mut opts = SimOptions::new(Duration::from_secs(60));
    opts.capacity = 10.0;
    opts.model = "seasonal_naive".into();
    opts.eval_fraction = 0.2;
    let sim = crate::offline::simulate::simulate(&v[300..900], b0 + 300, false, &opts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_simulation(&sim, "nasa.csv", dir.path()).unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let summary = rows(table(&html, "summary"));
    let policies: Vec<&str> = summary.iter().map(|r| r[0].as_str()).collect();
    let csv = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
    let expected: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(policies, expected);
    assert_eq!(policies.len(), 6);
    for (row, o) in summary.iter().zip(&sim.outcomes) {
        assert_eq!(row[3], format!("{:.1}", o.replica_minutes));
    }
    let imgs = images(&html);
    assert_eq!(imgs.len(), 2);
    assert_eq!(
        imgs[0],
        std::fs::read(dir.path().join("timeline.png")).unwrap()
    );
    assert!(html.contains("<dd>nasa.csv</dd>"));
}

#[test]
fn a_frontier_report_has_the_reference_and_the_efficient_points() {
    use crate::offline::frontier::{efficient, frontier, Grid};
    let t = nasa_days(1);
    let (b0, v) = t.bucketed(60_000);
    let mut opts = SimOptions::new(Duration::from_secs(60));
    opts.capacity = 10.0;
    opts.model = "naive".into();
    opts.policies = vec![crate::scale::Policy::Quantile(Default::default())];
    let grid = Grid {
        knobs: Some(
            [0.5, 0.9]
                .map(|q| crate::scale::Policy::Quantile(crate::policy::Quantile { q }))
                .to_vec(),
        ),
        utilizations: vec![0.6, 0.9],
        sizings: vec![crate::scale::Sizing::Peak],
        scale_ins: vec![(crate::scale::ScaleIn::Window, Duration::from_secs(300))],
        reactive_floors: vec![true],
        hpa_utilizations: vec![0.5, 0.7, 1.0],
        ..Grid::default()
    };
    let f = frontier(&v[300..900], b0 + 300, false, &opts, &grid).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_frontier(&f, &opts, "nasa.csv", dir.path()).unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let points = rows(table(&html, "frontier"));
    assert_eq!(points[0][0], "reactive (reference)");
    assert_eq!(points[0][1], "u=0.70");
    let shown: usize = ["reactive", "quantile", "oracle"]
        .iter()
        .map(|p| efficient(&f.rows, p).len())
        .sum();
    assert_eq!(points.len(), 1 + shown);
    assert_eq!(images(&html).len(), 1);
    let headline = f.headline();
    let first = headline.lines().next().unwrap();
    assert!(
        html.contains(&crate::offline::html::escape(first)),
        "{first}"
    );
}

#[test]
fn a_tuning_report_has_the_result_and_the_held_out_check() {
    use crate::offline::tune::{tune, TuneOptions};
    let t = nasa_days(2);
    let (b0, v) = t.bucketed(60_000);
    let mut sim = SimOptions::new(Duration::from_secs(60));
    sim.capacity = 10.0;
    sim.model = "seasonal_naive".into();
    let mut o = TuneOptions::new(sim);
    o.budget = 4;
    o.initial = 2;
    let tuning = tune(&v[..2400], b0, false, &o, &|_, _| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_tuning(&tuning, "nasa.csv", dir.path(), "web", "<your series>").unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    let result = rows(table(&html, "result"));
    assert_eq!(result[0][0], "Bayesian optimisation");
    assert_eq!(
        result[0][1],
        crate::offline::html::escape(&crate::offline::tune::describe(&tuning.winner().params))
    );
    let held_out = rows(table(&html, "held-out"));
    assert_eq!(held_out[0][0], "promcast, tuned");
    assert_eq!(
        held_out[0][1],
        format!("{:.1}", tuning.held_out.best.replica_minutes)
    );
    assert_eq!(held_out[1][0], "HPA at U=0.7");
    assert_eq!(rows(table(&html, "trials")).len(), 2 * 4);
    assert_eq!(images(&html).len(), 2);
    // best.yaml on the page, escaped, as written
    let yaml = std::fs::read_to_string(dir.path().join("best.yaml")).unwrap();
    assert!(html.contains(&crate::offline::html::escape(&yaml)));
    assert!(html.contains("<dd>web (series &lt;your series&gt;)</dd>"));
}
