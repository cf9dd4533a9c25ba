//! The shape of the code, checked: the modules follow the data one way (ingest → store →
//! forecast/anomaly/scale, joined only by the step above them → snapshot → export), no two
//! files import each other through any chain, no function grows past a screenful and no
//! file past ~800 lines, and a model is its own file plus its line in the list (nothing
//! else names it). Each rule is also run on a planted violation, so a rule that stopped
//! seeing anything would fail.
//!
//! Imports are read from the source (`use` trees and inline `crate::`/`super::` paths, test
//! modules left out) and resolved to the file that defines the item, following `pub use`
//! re-exports, so a facade `mod.rs` does not hide or invent an edge.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Longest function allowed anywhere in `src/`, in lines.
const MAX_FN_LINES: usize = 120;
/// Longest file allowed in `src/` (unit-test files aside), in lines.
const MAX_FILE_LINES: usize = 800;

/// Modules that may import only the listed modules of the crate (a file importing its own
/// module is not counted): the bottom of the layers.
const ONLY: &[(&str, &[&str])] = &[
    // The lists (models, detectors) and the shared maths import nothing of the crate.
    ("models", &[]),
    ("stats", &[]),
    ("detectors", &[]),
    // The policies are maths on a band: config, scale and the offline tools read them.
    ("policy", &["stats"]),
];

/// Module prefixes and the module prefixes they must not import.
const FORBIDDEN: &[(&str, &[&str])] = &[
    // The models, the scorer and the targets produce parts of a snapshot; they never reach
    // into exporters, nor into each other: the step joins them.
    (
        "forecast",
        &["export", "server", "offline", "ingest", "scale", "step"],
    ),
    (
        "anomaly",
        &[
            "export", "server", "offline", "forecast", "ingest", "scale", "step",
        ],
    ),
    (
        "scale",
        &[
            "export", "server", "offline", "ingest", "anomaly", "forecast", "step",
        ],
    ),
    ("step", &["export", "server", "offline", "ingest"]),
    // Exporters read snapshots only.
    (
        "export",
        &["forecast", "anomaly", "scale", "step", "ingest", "offline"],
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

/// Every import against [`FORBIDDEN`] and [`ONLY`], as `a.rs imports b.rs`.
fn wrong_imports(srcs: &[Source]) -> Vec<String> {
    let index = Index::new(srcs);
    let edges = index.edges(srcs);
    let mut wrong = Vec::new();
    for (i, out) in edges.iter().enumerate() {
        let from = top(&srcs[i].module);
        let banned = FORBIDDEN.iter().find(|(m, _)| *m == from).map(|f| f.1);
        let only = ONLY.iter().find(|(m, _)| *m == from).map(|o| o.1);
        for &j in out {
            let to = top(&srcs[j].module);
            let wrong_here = banned.is_some_and(|b| b.contains(&to))
                || only.is_some_and(|o| to != from && !o.contains(&to));
            if wrong_here {
                wrong.push(format!("{} imports {}", srcs[i].file, srcs[j].file));
            }
        }
    }
    wrong
}

/// The sources with `line` added to the code of `file`.
fn planted(file: &str, line: &str) -> Vec<Source> {
    let mut srcs = sources();
    let s = srcs.iter_mut().find(|s| s.file == file).unwrap();
    s.code.push_str(line);
    srcs
}

#[test]
fn layers_point_one_way() {
    let srcs = sources();
    let wrong = wrong_imports(&srcs);
    assert!(
        wrong.is_empty(),
        "imports against the data flow:\n{}",
        wrong.join("\n")
    );
    // The check sees real edges: the step uses the models and publishes snapshots.
    let edges = Index::new(&srcs).edges(&srcs);
    let file = |name: &str| srcs.iter().position(|s| s.file == name).unwrap();
    let sched = &edges[file("step/mod.rs")];
    assert!(
        sched.contains(&file("snapshot.rs")) && sched.contains(&file("forecast/forecaster.rs"))
    );
}

/// Each of the step's rules fails on a planted violation.
#[test]
fn a_planted_import_against_the_layers_is_found() {
    for (file, line, want) in [
        (
            "forecast/auto.rs",
            "use crate::scale::Targets;",
            "scale/targets.rs",
        ),
        (
            "scale/scaler.rs",
            "use crate::forecast::Forecaster;",
            "forecast/forecaster.rs",
        ),
        (
            "anomaly/eif.rs",
            "use crate::forecast::model::Forecast;",
            "forecast/model.rs",
        ),
        ("anomaly/eif.rs", "use crate::scale::Hpa;", "scale/mod.rs"),
        (
            "forecast/naive.rs",
            "use crate::step::Scheduler;",
            "step/mod.rs",
        ),
        ("models.rs", "use crate::snapshot::Point;", "snapshot.rs"),
        (
            "detectors.rs",
            "use crate::config::Config;",
            "config/mod.rs",
        ),
        (
            "anomaly/forest.rs",
            "use crate::step::Scheduler;",
            "step/mod.rs",
        ),
        ("stats.rs", "use crate::config::Config;", "config/mod.rs"),
    ] {
        let wrong = wrong_imports(&planted(file, line));
        let expected = format!("{file} imports {want}");
        assert!(
            wrong.contains(&expected),
            "planted `{line}` in {file}: found {wrong:?}"
        );
    }
}

#[test]
fn no_import_cycle_between_files() {
    let found = cycles(&sources());
    assert!(
        found.is_empty(),
        "files importing each other:\n{}",
        found.join("\n")
    );
    // Planted: the registry importing `auto`, which imports the registry.
    let planted = planted("forecast/registry.rs", "use crate::forecast::auto::choose;");
    assert_eq!(
        cycles(&planted),
        ["forecast/auto.rs <-> forecast/registry.rs"]
    );
}

/// Every set of files that import each other through some chain.
fn cycles(srcs: &[Source]) -> Vec<String> {
    let edges = Index::new(srcs).edges(srcs);
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
    t.cycles
        .iter()
        .map(|c| {
            let names: BTreeSet<&str> = c.iter().map(|&i| srcs[i].file.as_str()).collect();
            names.into_iter().collect::<Vec<_>>().join(" <-> ")
        })
        .collect()
}

#[test]
fn no_function_longer_than_a_screenful() {
    let long = long_functions(&src_texts());
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines: {long:#?}"
    );
    let body = "    let x = 1;\n".repeat(MAX_FN_LINES);
    let planted = [("planted.rs".to_owned(), format!("fn long() {{\n{body}}}\n"))];
    assert_eq!(long_functions(&planted).len(), 1);
}

#[test]
fn no_file_longer_than_about_800_lines() {
    let long = long_files(&src_texts());
    assert!(
        long.is_empty(),
        "files over {MAX_FILE_LINES} lines: {long:#?}"
    );
    let planted = [("planted.rs".to_owned(), "\n".repeat(MAX_FILE_LINES + 1))];
    assert_eq!(long_files(&planted).len(), 1);
}

/// Every file under `src/`: its path relative to `src/` and its text.
fn src_texts() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(&root).unwrap().display().to_string();
            (rel, std::fs::read_to_string(p).unwrap())
        })
        .collect()
}

/// Files over [`MAX_FILE_LINES`] (unit-test files aside: `tests.rs`), with their lengths.
fn long_files(files: &[(String, String)]) -> BTreeMap<String, usize> {
    files
        .iter()
        .filter(|(rel, _)| !rel.ends_with("tests.rs"))
        .map(|(rel, text)| (rel.clone(), text.lines().count()))
        .filter(|(_, n)| *n > MAX_FILE_LINES)
        .collect()
}

/// Functions over [`MAX_FN_LINES`], as `file:line fn name`, with their lengths.
fn long_functions(files: &[(String, String)]) -> BTreeMap<String, usize> {
    let mut long = BTreeMap::new();
    for (rel, text) in files {
        let code = strip_strings_only(text);
        let lines: Vec<&str> = code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(name) = fn_name(line) else {
                continue;
            };
            let len = fn_end(&lines, i).saturating_sub(i) + 1;
            if len > MAX_FN_LINES {
                long.insert(format!("{rel}:{} fn {name}", i + 1), len);
            }
        }
    }
    long
}

/// The name of the function `line` starts, if it starts one.
fn fn_name(line: &str) -> Option<String> {
    let t = line.trim_start();
    let t = t
        .strip_prefix("pub ")
        .or_else(|| t.strip_prefix("pub(crate) "))
        .unwrap_or(t);
    let t = t.strip_prefix("pub(super) ").unwrap_or(t);
    let t = t.strip_prefix("async ").unwrap_or(t);
    let rest = t.strip_prefix("fn ")?;
    Some(rest.chars().take_while(|c| is_ident(*c)).collect())
}

/// The line where the function starting at line `i` ends (`i` for a declaration).
fn fn_end(lines: &[&str], i: usize) -> usize {
    let (mut depth, mut opened) = (0i32, false);
    for (j, l) in lines.iter().enumerate().skip(i) {
        for c in l.chars() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth -= 1,
                ';' if !opened => return i,
                _ => {}
            }
        }
        if opened && depth <= 0 {
            return j;
        }
    }
    i
}

/// The models in the list (`src/models.rs`): kind and name.
fn listed_models() -> Vec<(String, String)> {
    listed("src/models.rs")
}

/// The lines of a list (`src/models.rs`, `src/detectors.rs`): kind and name.
fn listed(file: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let start = text
        .find("\n        $then! {")
        .unwrap_or_else(|| panic!("the list in {file}"))
        + 1;
    text[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('}'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((
                words.next()?.to_owned(),
                words.next()?.trim_end_matches(',').to_owned(),
            ))
        })
        .collect()
}

/// Places outside a model's own file and the list that name a model's kind: a model
/// special-cased by name instead of by its capabilities.
fn models_named_elsewhere(srcs: &[Source], models: &[(String, String)]) -> Vec<String> {
    named_elsewhere(srcs, models, "ModelKind", "forecast", "models.rs")
}

/// Places outside an item's own file (`dir/<name>.rs`) and its list that name `Enum::Kind`.
fn named_elsewhere(
    srcs: &[Source],
    items: &[(String, String)],
    kind_enum: &str,
    dir: &str,
    list: &str,
) -> Vec<String> {
    let mut found = Vec::new();
    for s in srcs.iter().filter(|s| !s.file.ends_with("tests.rs")) {
        for (kind, name) in items {
            let own = s.file == format!("{dir}/{name}.rs") || s.file == list;
            let named = s
                .code
                .match_indices(&format!("{kind_enum}::{kind}"))
                .any(|(i, m)| !s.code[i + m.len()..].starts_with(|c: char| is_ident(c)));
            if named && !own {
                found.push(format!("{} names {kind_enum}::{kind}", s.file));
            }
        }
    }
    found
}

/// Every listed item has its file `src/<dir>/<name>.rs`, which implements `trait_name` for
/// the item's type.
fn each_in_its_file(items: &[(String, String)], dir: &str, trait_name: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    for (kind, name) in items {
        let text = std::fs::read_to_string(root.join(format!("{name}.rs")))
            .unwrap_or_else(|e| panic!("{kind}: src/{dir}/{name}.rs: {e}"));
        assert!(
            text.contains(&format!("impl {trait_name} for {kind} ")),
            "src/{dir}/{name}.rs must implement {trait_name} for {kind}"
        );
    }
}

/// A model is its own file and its line in the list: every listed model has its file in
/// `src/forecast/`, and no other code names it (the loop, `auto`, config and the offline
/// tools go by the list and the models' capabilities).
#[test]
fn a_model_is_one_file_and_one_line() {
    let models = listed_models();
    assert!(models.len() >= 4, "{models:?}");
    each_in_its_file(&models, "forecast", "Listed");
    let srcs = sources();
    let found = models_named_elsewhere(&srcs, &models);
    assert!(found.is_empty(), "models named by kind: {found:#?}");
    let planted = planted("forecast/forecaster.rs", "if k == ModelKind::Mstl {}");
    assert_eq!(
        models_named_elsewhere(&planted, &models),
        ["forecast/forecaster.rs names ModelKind::Mstl"]
    );
}

/// A detector is its own file and its line in the list: every listed detector has its file
/// in `src/anomaly/` implementing `Detector`, and no other code names it (the scorer, the
/// config and `anomaly-eval` go by the list).
#[test]
fn a_detector_is_one_file_and_one_line() {
    let detectors = listed("src/detectors.rs");
    assert!(!detectors.is_empty(), "no detectors listed");
    each_in_its_file(&detectors, "anomaly", "Detector");
    let srcs = sources();
    let found = named_elsewhere(&srcs, &detectors, "DetectorKind", "anomaly", "detectors.rs");
    assert!(found.is_empty(), "detectors named by kind: {found:#?}");
    let planted = planted(
        "anomaly/online.rs",
        "if spec.detector == DetectorKind::Forest {}",
    );
    assert_eq!(
        named_elsewhere(
            &planted,
            &detectors,
            "DetectorKind",
            "anomaly",
            "detectors.rs"
        ),
        ["anomaly/online.rs names DetectorKind::Forest"]
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
