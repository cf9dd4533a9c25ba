//! [`run_nab_eval`]: every detector over every file, and what the run writes (`anomaly.csv`,
//! `summary.csv`, the plots, NAB's results layout) and prints.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::load::{load, Series};
use super::options::{NabEvalOptions, DEFAULT_REFRACTORY};
use super::plot::plot_svg;
use super::replay::{
    agent_scores, band_scores, forest_scores, hold_points, likelihood_scores, mad_scores,
    pooled_scores,
};
use super::results::{evaluate, summaries, NabReport, ScoredFile};
use super::score::{debounce, NAB_PROFILES};

/// Runs the evaluation and writes `OUT/anomaly.csv`, `OUT/summary.csv`,
/// `OUT/plots/<category>_<name>.svg` and, in NAB's results layout,
/// `OUT/results/<detectorname>/<category>/<detectorname>_<name>.csv` (see [`write_results`]).
pub fn run_nab_eval(opts: &NabEvalOptions) -> Result<NabReport> {
    let series = load(opts)?;
    if series.is_empty() {
        bail!("no series found under {}", opts.nab_dir.display());
    }
    std::fs::create_dir_all(opts.out.join("plots"))?;
    let mut files = Vec::new();
    let mut scored = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let forest = forest_scores(s, opts.history, opts.retrain_every, opts.seed);
        let day = s.season.unwrap_or(DEFAULT_REFRACTORY);
        let verdict = opts.agent_verdict();
        let hold = hold_points(verdict.suppress, day);
        let band = band_scores(s);
        let mad = mad_scores(s);
        let likely = likelihood_scores(&forest, s.probation);
        let per_det: [(&str, Vec<f64>, f64, usize); 10] = [
            (
                "agent",
                agent_scores(s, opts, hold),
                verdict.threshold,
                hold,
            ),
            ("forest", forest.clone(), opts.forest_threshold(), 0),
            ("forest_debounced", forest, opts.forest_threshold(), day),
            ("likelihood", likely.clone(), opts.likelihood_threshold, 0),
            (
                "likelihood_debounced",
                likely,
                opts.likelihood_threshold,
                day,
            ),
            (
                "forest_pooled",
                pooled_scores(&series, i, opts.seed),
                opts.forest_threshold(),
                0,
            ),
            ("band", band.clone(), 0.5, 0),
            ("band_debounced", band, 0.5, day),
            ("mad", mad.clone(), 0.5, 0),
            ("mad_debounced", mad, 0.5, day),
        ];
        for (det, scores, th, refractory) in &per_det {
            files.push(evaluate(
                det,
                &s.key,
                &s.category,
                scores,
                &s.windows,
                s.probation,
                *th,
                *refractory,
            ));
            write_results(&opts.out, s, det, scores, *th, *refractory)?;
            scored.push(ScoredFile {
                detector: det.to_string(),
                file: s.key.clone(),
                category: s.category.clone(),
                probation: s.probation,
                windows: s.windows.clone(),
                scores: scores.clone(),
                refractory: *refractory,
            });
        }
        let svg = plot_svg(s, &per_det[1].1, opts.forest_threshold());
        std::fs::write(
            opts.out
                .join("plots")
                .join(format!("{}_{}.svg", s.category, s.name)),
            svg,
        )?;
    }
    let summary = summaries(&files);
    let mut report = NabReport {
        threshold: opts.forest_threshold(),
        files,
        summary,
        scored,
        optimize_secs: None,
        oracle: Vec::new(),
    };
    if opts.optimize {
        let t0 = std::time::Instant::now();
        report.apply_optimize();
        report.optimize_secs = Some(t0.elapsed().as_secs_f64());
    }
    write_csvs(&opts.out, &report)?;
    Ok(report)
}

/// NAB's name for a detector: no `_` (NAB splits result file names on `_`).
pub fn nab_detector_name(det: &str) -> String {
    det.replace('_', "")
}

/// Writes `OUT/results/<detectorname>/<category>/<detectorname>_<name>.csv` with NAB's
/// results header `timestamp,value,anomaly_score,label`: timestamps and values as in the
/// input file, the detector's raw score, label 1 inside a labelled window. Debounced
/// detectors: points the debounce suppresses at threshold `th` are written as 0, so NAB's
/// scorer at `th` sees exactly the detections scored here.
fn write_results(
    out: &Path,
    s: &Series,
    det: &str,
    scores: &[f64],
    th: f64,
    refractory: usize,
) -> Result<()> {
    let name = nab_detector_name(det);
    let dir = out.join("results").join(&name).join(&s.category);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let fired = debounce(scores, th, refractory);
    let mut label = vec![0u8; scores.len()];
    for &(l, r) in &s.windows {
        label[l..=r.min(scores.len() - 1)].fill(1);
    }
    let mut csv = String::with_capacity(scores.len() * 48);
    csv.push_str("timestamp,value,anomaly_score,label\n");
    for t in 0..scores.len() {
        let suppressed = refractory > 0 && scores[t] >= th && !fired[t];
        let sc = if suppressed { 0.0 } else { scores[t] };
        let _ = writeln!(
            csv,
            "{},{},{},{}",
            s.stamps[t], s.value_text[t], sc, label[t]
        );
    }
    let path = dir.join(format!("{name}_{}.csv", s.name));
    std::fs::write(&path, csv).with_context(|| format!("writing {}", path.display()))
}

/// `summary.csv` header: the original columns, NAB's other two profiles, then (with
/// `--optimize`) threshold and score per profile.
fn summary_header(optimize: bool) -> String {
    let mut h = String::from(
        "detector,scope,files,mean_precision,mean_recall,mean_f1,micro_precision,micro_recall,micro_f1,nab_standard,nab_low_fp,nab_low_fn",
    );
    if optimize {
        for p in NAB_PROFILES {
            let _ = write!(h, ",opt_threshold_{c},opt_{c}", c = p.column);
        }
    }
    h
}

fn write_csvs(out: &Path, report: &NabReport) -> Result<()> {
    let mut csv = String::from("detector,file,precision,recall,f1\n");
    for r in &report.files {
        let _ = writeln!(
            csv,
            "{},{},{:.4},{:.4},{:.4}",
            r.detector, r.file, r.precision, r.recall, r.f1
        );
    }
    for s in report.summary.iter().filter(|s| s.scope == "ALL") {
        let _ = writeln!(
            csv,
            "{},ALL,{:.4},{:.4},{:.4}",
            s.detector, s.micro_precision, s.micro_recall, s.micro_f1
        );
    }
    std::fs::write(out.join("anomaly.csv"), csv)?;
    let mut sc = summary_header(report.optimize_secs.is_some());
    sc.push('\n');
    for s in &report.summary {
        sc.push_str(&s.cells(true, 4, 2).join(","));
        if report.optimize_secs.is_some() {
            for o in s.opt.iter().flatten() {
                let _ = write!(sc, ",{},{:.2}", o.threshold, o.score);
            }
        }
        sc.push('\n');
    }
    std::fs::write(out.join("summary.csv"), sc)?;
    Ok(())
}

/// Prints, per forest detector, the figures over thresholds 0.30..0.90 and the score
/// quantiles outside and inside the labelled windows (for choosing a threshold).
pub fn print_sweep(report: &NabReport) {
    let ths: Vec<f64> = (30..=90).map(|i| i as f64 / 100.0).collect();
    for det in [
        "forest",
        "forest_debounced",
        "forest_pooled",
        "likelihood",
        "likelihood_debounced",
    ] {
        println!("sweep {det}: threshold mean_P mean_R mean_F1 micro_F1 NAB");
        for (th, s) in report.sweep(det, &ths) {
            println!(
                "  {th:.2} {:.3} {:.3} {:.3} {:.3} {:.1}",
                s.mean_precision, s.mean_recall, s.mean_f1, s.micro_f1, s.nab[0]
            );
        }
        let qs = [0.5, 0.9, 0.99, 0.999, 1.0];
        let (o, i) = report.score_quantiles(det, &qs);
        println!("  quantiles {qs:?}\n  outside windows {o:.3?}\n  inside windows  {i:.3?}");
    }
}

/// Prints the summary table (Markdown) to stdout, and with `optimize` the optimised one.
pub fn print_report(r: &NabReport) {
    println!("forest threshold {}", r.threshold);
    println!("| detector | scope | files | mean P | mean R | mean F1 | micro F1 | NAB standard | NAB low FP | NAB low FN |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for s in &r.summary {
        println!("| {} |", s.cells(false, 3, 1).join(" | "));
    }
    let Some(secs) = r.optimize_secs else {
        return;
    };
    println!(
        "\noptimised thresholds (per detector and profile, over all {} files; {secs:.2} s)",
        r.summary
            .iter()
            .find(|s| s.scope == "ALL")
            .map_or(0, |s| s.files)
    );
    println!("| detector | threshold standard | NAB standard | threshold low FP | NAB low FP | threshold low FN | NAB low FN |");
    println!("|---|---|---|---|---|---|---|");
    for s in r.summary.iter().filter(|s| s.scope == "ALL") {
        let Some(o) = &s.opt else { continue };
        println!(
            "| {} | {:.4} | {:.1} | {:.4} | {:.1} | {:.4} | {:.1} |",
            s.detector,
            o[0].threshold,
            o[0].score,
            o[1].threshold,
            o[1].score,
            o[2].threshold,
            o[2].score
        );
    }
    println!(
        "\nper-file oracle (each file at its own best threshold: a bound on threshold choice)"
    );
    println!("| detector | NAB standard | NAB low FP | NAB low FN |");
    println!("|---|---|---|---|");
    for (det, o) in &r.oracle {
        println!("| {det} | {:.1} | {:.1} | {:.1} |", o[0], o[1], o[2]);
    }
}
