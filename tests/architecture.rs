//! The shape of the code, checked: the modules follow the data one way (ingest → store →
//! forecast/anomaly/scale → snapshot → export), no two files import each other through any
//! chain, and no function grows past a screenful.
//!
//! Imports are read from the source (`use` trees and inline `crate::`/`super::` paths, test
//! modules left out) and resolved to the file that defines the item, following `pub use`
//! re-exports, so a facade `mod.rs` does not hide or invent an edge.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Longest function allowed anywhere in `src/`, in lines.
const MAX_FN_LINES: usize = 120;

/// Module prefixes and the module prefixes they must not import.
const FORBIDDEN: &[(&str, &[&str])] = &[
    // The models and the loop produce snapshots; they never reach into exporters.
    ("forecast", &["export", "server", "offline", "ingest"]),
    (
        "anomaly",
        &["export", "server", "offline", "forecast", "ingest"],
    ),
    (
        "scale",
        &["export", "server", "offline", "ingest", "anomaly"],
    ),
    // Exporters read snapshots only.
    (
        "export",
        &["forecast", "anomaly", "scale", "ingest", "offline"],
    ),
    // The step's products know nothing of who made or reads them.
    (
        "snapshot",
        &[
            "forecast",
            "anomaly",
            "scale",
            "export",
            "ingest",
            "server",
            "offline",
            "telemetry",
        ],
    ),
    (
        "store",
        &[
            "forecast", "anomaly", "scale", "export", "ingest", "server", "snapshot", "offline",
        ],
    ),
    (
        "ingest",
        &[
            "forecast", "anomaly", "scale", "export", "server", "offline",
        ],
    ),
    (
        "config",
        &[
            "forecast",
            "anomaly",
            "scale",
            "export",
            "ingest",
            "server",
            "snapshot",
            "store",
            "offline",
            "telemetry",
            "tls",
        ],
    ),
    (
        "telemetry",
        &[
            "forecast", "anomaly", "scale", "export", "ingest", "server", "offline", "tls",
        ],
    ),
    // The agent never depends on the offline tools or the demo's feed.
    ("server", &["offline", "demo"]),
    // The demo feeds the agent as Prometheus does: through ingest, never past it.
    (
        "demo",
        &[
            "forecast", "anomaly", "scale", "export", "snapshot", "server", "offline",
        ],
    ),
    ("tls", &["offline", "server", "export", "forecast"]),
    // The policies are maths on a band: config, scale and the offline tools read them.
    (
        "policy",
        &[
            "anomaly",
            "config",
            "demo",
            "export",
            "forecast",
            "ingest",
            "models",
            "offline",
            "proto",
            "rng",
            "scale",
            "server",
            "store",
            "telemetry",
            "tls",
        ],
    ),
];

struct Source {
    /// `a/b.rs` relative to `src/`.
    file: String,
    /// Module path (`["a", "b"]`); `mod.rs` and `lib.rs` name their directory.
    module: Vec<String>,
    /// Code without comments, string contents and test modules.
    code: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "main.rs"))
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let mut module: Vec<String> = rel
                .trim_end_matches(".rs")
                .split('/')
                .map(str::to_owned)
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            let text = std::fs::read_to_string(&p).unwrap();
            Source {
                file: rel,
                module,
                code: strip(&text),
            }
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Removes comments and the contents of string and char literals, and everything from a
/// `#[cfg(test)]` module on (test modules come last in this codebase).
fn strip(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'/', Some(b'/')) => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            (b'/', Some(b'*')) => {
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            (b'"', _) => {
                out.push('"');
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\n' {
                        out.push('\n');
                    }
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                out.push('"');
                i += 1;
            }
            (b'\'', _) if b.get(i + 2) == Some(&b'\'') || b.get(i + 1) == Some(&b'\\') => {
                // a char literal ('x' or '\n'); lifetimes pass through
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                out.push_str("' '");
                i += 1;
            }
            (c, _) => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a `use` tree names (`a::{b, c::d}` → `a::b`, `a::c::d`).
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.to_owned()];
    };
    let prefix = tree[..open].trim_end_matches(':').trim();
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let (mut parts, mut depth, mut cur) = (Vec::new(), 0, String::new());
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
        .iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| expand(p))
        .map(|p| {
            if prefix.is_empty() {
                p
            } else {
                format!("{prefix}::{p}")
            }
        })
        .collect()
}

/// `use` statements (`pub` or not) of a file: (is a re-export, path).
fn uses(code: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        let stmt_start = before.is_none_or(|c| !is_ident(c));
        let head = rest[..i].trim_end();
        let public = head.ends_with("pub") || head.ends_with(')') && head.contains("pub(");
        let end = rest[i..].find(';').map_or(rest.len(), |e| i + e);
        if stmt_start {
            for p in expand(&rest[i + 4..end]) {
                let p = p.split(" as ").next().unwrap().trim().to_owned();
                out.push((public, p));
            }
        }
        rest = &rest[end.min(rest.len() - 1) + 1..];
    }
    out
}

struct Index {
    by_module: HashMap<Vec<String>, usize>,
    defs: Vec<BTreeSet<String>>,
    reexports: Vec<HashMap<String, String>>,
    modules: Vec<Vec<String>>,
    children: Vec<BTreeSet<String>>,
}

impl Index {
    fn new(srcs: &[Source]) -> Self {
        let mut defs = Vec::new();
        let mut reexports = Vec::new();
        let mut children = Vec::new();
        for s in srcs {
            let mut d = BTreeSet::new();
            let mut kids = BTreeSet::new();
            let words: Vec<&str> = s
                .code
                .split(|c: char| !is_ident(c) && c != '!')
                .filter(|w| !w.is_empty())
                .collect();
            for w in words.windows(2) {
                if matches!(
                    w[0],
                    "fn" | "struct"
                        | "enum"
                        | "const"
                        | "static"
                        | "type"
                        | "trait"
                        | "macro_rules!"
                ) {
                    d.insert(w[1].to_owned());
                }
                if w[0] == "mod" {
                    kids.insert(w[1].to_owned());
                }
            }
            let mut r = HashMap::new();
            for (public, p) in uses(&s.code) {
                if public {
                    let name = p.rsplit("::").next().unwrap().to_owned();
                    r.insert(name, p);
                }
            }
            defs.push(d);
            reexports.push(r);
            children.push(kids);
        }
        Index {
            by_module: srcs
                .iter()
                .enumerate()
                .map(|(i, s)| (s.module.clone(), i))
                .collect(),
            defs,
            reexports,
            modules: srcs.iter().map(|s| s.module.clone()).collect(),
            children,
        }
    }

    /// The absolute module path of `path` as written in module `me`.
    fn absolute(&self, me: &[String], path: &str) -> Vec<String> {
        let mut segs: Vec<String> = path.split("::").map(|s| s.trim().to_owned()).collect();
        let mut base: Vec<String> = me.to_vec();
        match segs[0].as_str() {
            "crate" => {
                base.clear();
                segs.remove(0);
            }
            "self" => {
                segs.remove(0);
            }
            "super" => {
                while segs.first().is_some_and(|s| s == "super") {
                    base.pop();
                    segs.remove(0);
                }
            }
            _ => {}
        }
        base.extend(segs);
        base
    }

    /// The file defining what `path` names, following re-exports.
    fn resolve(&self, path: &[String], depth: usize) -> Option<usize> {
        if depth > 16 {
            return None;
        }
        for k in (0..=path.len()).rev() {
            let Some(&f) = self.by_module.get(&path[..k]) else {
                continue;
            };
            let Some(name) = path.get(k) else {
                return Some(f);
            };
            if name == "*" || self.defs[f].contains(name) {
                return Some(f);
            }
            if let Some(target) = self.reexports[f].get(name) {
                let abs = self.absolute(&self.modules[f], target);
                return self.resolve(&abs, depth + 1).or(Some(f));
            }
            return Some(f);
        }
        None
    }

    /// Files each file depends on (re-exports are not dependencies).
    fn edges(&self, srcs: &[Source]) -> Vec<BTreeSet<usize>> {
        srcs.iter()
            .enumerate()
            .map(|(i, s)| {
                let mut out = BTreeSet::new();
                let mut add = |p: &str| {
                    let first = p.split("::").next().unwrap_or("");
                    let relative = self.children[i].contains(first);
                    if !matches!(first, "crate" | "super" | "self") && !relative {
                        return;
                    }
                    let abs = self.absolute(&s.module, p.trim_end_matches("::self"));
                    if let Some(t) = self.resolve(&abs, 0).filter(|t| *t != i) {
                        out.insert(t);
                    }
                };
                for (public, p) in uses(&s.code) {
                    if !public {
                        add(&p);
                    }
                }
                // Inline paths outside `use` statements.
                let code = &s.code;
                for start in ["crate::", "super::"] {
                    let mut at = 0;
                    while let Some(j) = code[at..].find(start) {
                        let j = at + j;
                        let before = code[..j].chars().last();
                        let end = code[j..]
                            .find(|c: char| !is_ident(c) && c != ':')
                            .map_or(code.len(), |e| j + e);
                        let line_start = code[..j].rfind('\n').map_or(0, |n| n + 1);
                        let in_use = code[line_start..j].trim_start().starts_with("use ")
                            || code[line_start..j].trim_start().starts_with("pub use ");
                        if before.is_none_or(|c| !is_ident(c)) && !in_use {
                            add(code[j..end].trim_end_matches(':'));
                        }
                        at = end.max(j + 1);
                    }
                }
                out
            })
            .collect()
    }
}

fn top(module: &[String]) -> &str {
    module.first().map_or("lib", String::as_str)
}

#[test]
fn layers_point_one_way() {
    let srcs = sources();
    let index = Index::new(&srcs);
    let edges = index.edges(&srcs);
    let mut wrong = Vec::new();
    for (i, out) in edges.iter().enumerate() {
        let from = top(&srcs[i].module);
        let Some((_, banned)) = FORBIDDEN.iter().find(|(m, _)| *m == from) else {
            continue;
        };
        for &j in out {
            let to = top(&srcs[j].module);
            if banned.contains(&to) {
                wrong.push(format!("{} imports {}", srcs[i].file, srcs[j].file));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the data flow:\n{}",
        wrong.join("\n")
    );
    // The check sees real edges: the loop uses the models and publishes snapshots.
    let file = |name: &str| srcs.iter().position(|s| s.file == name).unwrap();
    let sched = &edges[file("forecast/scheduler/mod.rs")];
    assert!(
        sched.contains(&file("snapshot.rs")) && sched.contains(&file("forecast/forecaster.rs"))
    );
}

#[test]
fn no_import_cycle_between_files() {
    let srcs = sources();
    let edges = Index::new(&srcs).edges(&srcs);
    // Tarjan's strongly connected components.
    struct Tarjan<'a> {
        edges: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on: Vec<bool>,
        next: usize,
        cycles: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on[v] = true;
            for &w in self.edges[v].clone().iter() {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(iw) if self.on[w] => self.low[v] = self.low[v].min(iw),
                    _ => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    self.cycles.push(comp);
                }
            }
        }
    }
    let n = srcs.len();
    let mut t = Tarjan {
        edges: &edges,
        index: vec![None; n],
        low: vec![0; n],
        stack: Vec::new(),
        on: vec![false; n],
        next: 0,
        cycles: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    let cycles: Vec<String> = t
        .cycles
        .iter()
        .map(|c| {
            let names: BTreeSet<&str> = c.iter().map(|&i| srcs[i].file.as_str()).collect();
            names.into_iter().collect::<Vec<_>>().join(" <-> ")
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "files importing each other:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn no_function_longer_than_a_screenful() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut long = BTreeMap::new();
    for p in files {
        let code = strip_strings_only(&std::fs::read_to_string(&p).unwrap());
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            let t = t
                .strip_prefix("pub ")
                .or_else(|| t.strip_prefix("pub(crate) "))
                .unwrap_or(t);
            let t = t.strip_prefix("pub(super) ").unwrap_or(t);
            let t = t.strip_prefix("async ").unwrap_or(t);
            let Some(rest) = t.strip_prefix("fn ") else {
                continue;
            };
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            let (mut depth, mut opened) = (0i32, false);
            let mut end = i;
            'scan: for (j, l) in lines.iter().enumerate().skip(i) {
                for c in l.chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        ';' if !opened => break 'scan,
                        _ => {}
                    }
                }
                if opened && depth <= 0 {
                    end = j;
                    break;
                }
            }
            let len = end.saturating_sub(i) + 1;
            if len > MAX_FN_LINES {
                let rel = p.strip_prefix(&root).unwrap().display().to_string();
                long.insert(format!("{rel}:{} fn {name}", i + 1), len);
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines: {long:#?}"
    );
}

/// Comments and string contents removed, test modules kept.
fn strip_strings_only(text: &str) -> String {
    let mut with_tests = text.replace("#[cfg(test)]\nmod tests", "#[cfg(test)]\nmod tests_");
    with_tests = strip(&with_tests);
    with_tests
}

#[test]
fn the_reader_finds_uses_through_groups_and_reexports() {
    assert_eq!(
        expand("crate::a::{b, c::{d, e as f}}"),
        ["crate::a::b", "crate::a::c::d", "crate::a::c::e as f"]
    );
    let u = uses("pub use x::Y;\nuse super::{a, b};\nfn used() {}");
    assert_eq!(u[0], (true, "x::Y".to_owned()));
    assert_eq!(u[1], (false, "super::a".to_owned()));
    assert_eq!(
        strip("let s = \"use crate::x;\"; // crate::y\n"),
        "let s = \"\"; \n"
    );
}
