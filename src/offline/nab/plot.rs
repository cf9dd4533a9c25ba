//! One SVG per file: the values over the labelled windows and the probation, and the forest's
//! score against its threshold.

use std::fmt::Write as _;

use super::load::Series;

pub(super) fn plot_svg(s: &Series, score: &[f64], threshold: f64) -> String {
    const W: f64 = 1200.0;
    const L: f64 = 50.0;
    const PW: f64 = W - L - 10.0;
    const VT: f64 = 30.0;
    const VH: f64 = 220.0;
    const ST: f64 = 280.0;
    const SH: f64 = 110.0;
    let n = s.values.len().max(2);
    let x = |i: usize| L + PW * i as f64 / (n - 1) as f64;
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in s.values.iter().filter(|v| v.is_finite()) {
        lo = lo.min(v as f64);
        hi = hi.max(v as f64);
    }
    if !(hi > lo) {
        hi = lo + 1.0;
    }
    let vy = |v: f64| VT + VH * (1.0 - (v - lo) / (hi - lo));
    let sy = |v: f64| ST + SH * (1.0 - v.clamp(0.0, 1.0));
    let mut o = String::new();
    let _ = writeln!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="420" viewBox="0 0 {W} 420" font-family="sans-serif" font-size="11">"##
    );
    let _ = writeln!(o, r##"<rect width="{W}" height="420" fill="white"/>"##);
    let _ = writeln!(
        o,
        r##"<text x="{L}" y="18" font-size="13">{} — value (top), forest score (bottom); red: labelled windows, grey: probation</text>"##,
        s.key
    );
    let _ = writeln!(
        o,
        r##"<rect x="{L}" y="{VT}" width="{:.1}" height="{:.1}" fill="#ddd" opacity="0.6"/>"##,
        x(s.probation) - L,
        ST + SH - VT
    );
    for &(l, r) in &s.windows {
        let _ = writeln!(
            o,
            r##"<rect x="{:.1}" y="{VT}" width="{:.1}" height="{:.1}" fill="#f4a6a6" opacity="0.5"/>"##,
            x(l),
            (x(r) - x(l)).max(1.0),
            ST + SH - VT
        );
    }
    // min/max per pixel column
    let cols = PW as usize;
    let mut line = |vals: &dyn Fn(usize) -> Option<f64>, map: &dyn Fn(f64) -> f64, colour: &str| {
        let mut pts = String::new();
        for c in 0..cols {
            let a = c * n / cols;
            let b = ((c + 1) * n / cols).max(a + 1).min(n);
            let (mut mn, mut mx) = (f64::INFINITY, f64::NEG_INFINITY);
            for i in a..b.min(s.values.len()) {
                if let Some(v) = vals(i) {
                    mn = mn.min(v);
                    mx = mx.max(v);
                }
            }
            if mn.is_finite() {
                let px = L + c as f64;
                let _ = write!(pts, "{px:.1},{:.1} {px:.1},{:.1} ", map(mn), map(mx));
            }
        }
        let _ = writeln!(
            o,
            r##"<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1"/>"##
        );
    };
    line(
        &|i| {
            let v = s.values[i];
            v.is_finite().then_some(v as f64)
        },
        &vy,
        "#1f4e9c",
    );
    line(&|i| Some(score[i]), &sy, "#333");
    let _ = writeln!(
        o,
        r##"<line x1="{L}" x2="{:.1}" y1="{t:.1}" y2="{t:.1}" stroke="#c00" stroke-dasharray="4 3"/>"##,
        L + PW,
        t = sy(threshold)
    );
    for (i, &sc) in score.iter().enumerate() {
        if sc >= threshold {
            let _ = writeln!(
                o,
                r##"<line x1="{p:.1}" x2="{p:.1}" y1="{:.1}" y2="{:.1}" stroke="#c00"/>"##,
                ST - 8.0,
                ST - 2.0,
                p = x(i)
            );
        }
    }
    let _ = writeln!(o, r##"<text x="4" y="{:.1}">{hi:.3}</text>"##, VT + 10.0);
    let _ = writeln!(o, r##"<text x="4" y="{:.1}">{lo:.3}</text>"##, VT + VH);
    let _ = writeln!(
        o,
        r##"<text x="4" y="{:.1}">1</text><text x="4" y="{:.1}">0</text>"##,
        ST + 8.0,
        ST + SH
    );
    let _ = writeln!(
        o,
        r##"<text x="{:.1}" y="{:.1}" fill="#c00">threshold {threshold}</text>"##,
        L + PW - 110.0,
        sy(threshold) - 3.0
    );
    o.push_str("</svg>\n");
    o
}
