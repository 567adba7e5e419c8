//! Tidiness rules that rustfmt and clippy do not enforce, checked on every source file: no
//! trailing whitespace or tabs, no leftover debugging macro or fix-me marker, no source file
//! that no `mod` declares, no line over `LINE_COLUMNS_MAX` columns and no function over
//! `FUNCTION_LINES_MAX` lines — except where the ratchet lists below allow it, and those
//! lists may only shrink (rustfmt cannot wrap long strings; the debt was there first).
//! And the layering: what each top-level module may not import (`FORBIDDEN_IMPORTS`), and
//! no circle of imports between top-level modules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const LINE_COLUMNS_MAX: usize = 100;
const FUNCTION_LINES_MAX: usize = 100;

/// Functions longer than `FUNCTION_LINES_MAX` when this test was written, with their length
/// then. They may shrink (then lower or remove the entry); none may grow, none may join.
const LONG_FUNCTIONS: &[(&str, &str, usize)] = &[
    ("benches/storage_bench.rs", "run_one", 108),
    ("src/s3/error.rs", "message", 140),
    ("src/s3/sigv4.rs", "parse_forms_and_errors", 162),
    ("src/api/conn.rs", "read_aws", 119),
    ("src/api/s3/multipart.rs", "complete", 118),
    ("src/api/s3/objects.rs", "ingest", 104),
    ("src/api/s3/objects.rs", "get_object", 122),
    ("src/storage/store.rs", "open", 237),
    ("src/storage/store.rs", "data_loop", 111),
    ("src/storage/store.rs", "meta_loop", 141),
    ("src/storage/store.rs", "apply", 240),
    ("tests/storage_crash.rs", "crash_cycles", 144),
    ("tests/storage_powerloss.rs", "writer", 102),
    ("tests/storage_powerloss.rs", "power_loss_case", 111),
    (
        "tests/storage_basic.rs",
        "multipart_rows_and_global_tables",
        101,
    ),
];

/// Files with lines over `LINE_COLUMNS_MAX` when this test was written, and how many.
const LONG_LINES: &[(&str, usize)] = &[
    ("src/http/tests.rs", 4),
    ("src/s3/xml.rs", 20),
    ("src/storage/index.rs", 2),
    ("src/storage/mod.rs", 1),
    ("src/storage/record.rs", 1),
    ("src/storage/store/maint.rs", 1),
    ("src/storage/store.rs", 4),
    ("tests/storage_recovery.rs", 1),
    ("src/storage/mod.rs", 2),
    ("tests/storage_powerloss.rs", 1),
];

fn source_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["src", "tests", "benches"] {
        walk(&root.join(dir), &mut out);
    }
    out.sort();
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn relative(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn lines_are_short_clean_and_free_of_leftovers() {
    let allowed: BTreeMap<&str, usize> = LONG_LINES.iter().copied().collect();
    let mut problems = Vec::new();
    let mut over_budget = Vec::new();
    // Built from pieces so that this file does not trip its own rule.
    let leftovers = [
        concat!("dbg", "!("),
        concat!("todo", "!()"),
        concat!("FIX", "ME"),
    ];
    for path in source_files() {
        let file = relative(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut long = 0;
        for (i, line) in text.lines().enumerate() {
            let at = format!("{file}:{}", i + 1);
            if line.chars().count() > LINE_COLUMNS_MAX {
                long += 1;
            }
            if line.ends_with(' ') || line.contains('\t') {
                problems.push(format!("{at}: trailing whitespace or a tab"));
            }
            for leftover in leftovers {
                if line.contains(leftover) {
                    problems.push(format!("{at}: leftover {leftover}"));
                }
            }
        }
        if long > allowed.get(file.as_str()).copied().unwrap_or(0) {
            over_budget.push(format!("    (\"{file}\", {long}),"));
        }
    }
    if !over_budget.is_empty() {
        problems.push(format!(
            "lines over {LINE_COLUMNS_MAX} columns beyond the ratchet (wrap them):\n{}",
            over_budget.join("\n")
        ));
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Every file under `src/` is a module that some file declares (or a crate root).
#[test]
fn no_source_file_is_dead() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut declared = Vec::new();
    let files: Vec<PathBuf> = source_files()
        .into_iter()
        .filter(|p| p.starts_with(&root))
        .collect();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let dir = if path
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
        {
            path.parent().unwrap().to_path_buf()
        } else {
            path.with_extension("")
        };
        for line in text.lines() {
            let line = line.trim_start();
            let line = line.strip_prefix("pub ").unwrap_or(line);
            let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
            if let Some(name) = line.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                declared.push(dir.join(format!("{name}.rs")));
                declared.push(dir.join(name).join("mod.rs"));
            }
        }
    }
    let roots = [root.join("lib.rs"), root.join("main.rs")];
    let dead: Vec<String> = files
        .iter()
        .filter(|p| !roots.contains(p) && !declared.contains(p))
        .map(|p| relative(p))
        .collect();
    assert!(dead.is_empty(), "files no `mod` declares: {dead:?}");
}

/// Lengths of the functions of a file, by name (a brace-matching scan: good enough for
/// rustfmt-formatted code, where a function's closing brace is at its own indentation).
fn function_lengths(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let signature = [
            "fn ",
            "pub fn ",
            "async fn ",
            "pub async fn ",
            "pub(crate) fn ",
        ]
        .iter()
        .find_map(|p| trimmed.strip_prefix(p));
        let Some(rest) = signature else { continue };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let closing = " ".repeat(indent) + "}";
        if let Some(end) = lines[i..].iter().position(|l| *l == closing) {
            out.push((name, end + 1));
        }
    }
    out
}

#[test]
fn functions_stay_short_and_the_long_ones_only_shrink() {
    let allowed: BTreeMap<(&str, &str), usize> = LONG_FUNCTIONS
        .iter()
        .map(|(f, n, l)| ((*f, *n), *l))
        .collect();
    let mut problems = Vec::new();
    for path in source_files() {
        let file = relative(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        for (name, length) in function_lengths(&text) {
            if length <= FUNCTION_LINES_MAX {
                continue;
            }
            match allowed.get(&(file.as_str(), name.as_str())) {
                Some(&max) if length <= max => {}
                Some(&max) => problems.push(format!("{file}: {name} grew to {length} (was {max})")),
                None => problems.push(format!("    (\"{file}\", \"{name}\", {length}),")),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "functions over {FUNCTION_LINES_MAX} lines (split them):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_function_scan_finds_lengths() {
    let text = "fn a() {\n    x();\n}\n\nimpl T {\n    pub async fn b(&self) {\n    }\n}\n";
    assert_eq!(
        function_lengths(text),
        vec![("a".to_string(), 3), ("b".to_string(), 2)]
    );
}

/// The layers, as import rules: (module, what it may not import, why). A name is a
/// top-level module of the crate (`crate::name`) or an external crate (`name::`). Together
/// with `no_import_circle_between_modules` this is the architecture `docs/architecture.md`
/// draws; `src/lib.rs` says the same in words.
const FORBIDDEN_IMPORTS: &[(&str, &[&str], &str)] = &[
    (
        "http",
        &[
            "s3", "meta", "storage", "runtime", "api", "model", "node", "glommio", "heed",
        ],
        "sans-IO HTTP: it knows no S3 and does no I/O",
    ),
    (
        "s3",
        &[
            "storage", "runtime", "api", "model", "node", "glommio", "heed",
        ],
        "sans-IO S3 protocol: SigV4, XML, errors, checksums, no I/O",
    ),
    (
        "meta",
        &[
            "s3", "storage", "runtime", "api", "model", "node", "glommio", "heed",
        ],
        "rows, keys and merges know no API and do no I/O",
    ),
    (
        "cluster",
        &[
            "http", "s3", "storage", "runtime", "api", "model", "node", "glommio", "heed",
        ],
        "the cluster's decisions are state machines: messages and time in, messages out",
    ),
    (
        "rpc",
        &["api", "model", "node", "storage", "s3", "http", "heed"],
        "node-to-node RPC's core is bytes in, values out: it knows no handler and no engine",
    ),
    (
        "storage",
        &["s3", "api", "model", "node", "runtime"],
        "the engine knows no API and no handler, and runs on any executor",
    ),
    (
        "runtime",
        &["api", "model", "node"],
        "executors, mesh and signals know no handler",
    ),
    (
        "model",
        &["api", "node"],
        "bucket and object rules know no handler and no wiring",
    ),
    (
        "api",
        &["node"],
        "handlers are wired by node, never the other way round",
    ),
];

/// The top-level modules `src/lib.rs` declares.
fn top_level_modules() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
    let text = std::fs::read_to_string(root).unwrap();
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("pub ").unwrap_or(line);
            line.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect()
}

/// The module path of a source file under `src/` (`src/api/s3/op.rs`: `[api, s3, op]`).
fn module_path(file: &Path) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let relative = file.strip_prefix(root).unwrap().with_extension("");
    let mut path: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if path.last().is_some_and(|l| l == "mod" || l == "lib") {
        path.pop();
    }
    path
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every name a line of code reaches at the crate's root: `crate::a`, `crate::{a, b::c}`,
/// and `super::` paths that climb out of the file's module (`depth`: its module path's
/// length, one more inside an inline `mod`). External crates are found as `name::`.
fn names_reached(line: &str, depth: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            names.extend(group[..end].split(',').map(|p| identifier(p.trim())));
        } else {
            names.push(identifier(after));
        }
        rest = after;
    }
    let mut rest = line;
    while let Some(at) = rest.find("super::") {
        let before = rest[..at].chars().last();
        let mut after = &rest[at..];
        let mut ups = 0;
        while let Some(next) = after.strip_prefix("super::") {
            ups += 1;
            after = next;
        }
        if before.is_none_or(|c| !c.is_alphanumeric() && c != '_') && ups >= depth {
            names.push(identifier(after));
        }
        rest = after;
    }
    for external in ["glommio", "heed"] {
        let found = line.match_indices(external).any(|(at, _)| {
            let before = line[..at].chars().last();
            line[at + external.len()..].starts_with("::")
                && before.is_none_or(|c| !c.is_alphanumeric() && c != '_' && c != ':')
        });
        if found {
            names.push(external.to_string());
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// Per top-level module, the names its files reach, each with a place that does.
fn imports_by_module() -> BTreeMap<String, BTreeMap<String, String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let tops = top_level_modules();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for path in source_files().into_iter().filter(|p| p.starts_with(&root)) {
        let module = module_path(&path);
        let Some(top) = module.first().filter(|t| tops.contains(t)).cloned() else {
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut inline_ends: Vec<usize> = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            inline_ends.retain(|end| *end > i);
            let code = line.trim_start();
            let indent = line.len() - code.len();
            let bare = code.strip_prefix("pub ").unwrap_or(code);
            if bare.starts_with("mod ") && bare.ends_with(" {") {
                let closing = " ".repeat(indent) + "}";
                if let Some(end) = lines[i..].iter().position(|l| *l == closing) {
                    inline_ends.push(i + end);
                }
            }
            if code.starts_with("//") {
                continue;
            }
            let depth = module.len() + inline_ends.len();
            let at = format!("{}:{}", relative(&path), i + 1);
            let entry = graph.entry(top.clone()).or_default();
            for name in names_reached(line, depth) {
                let known = tops.contains(&name) || ["glommio", "heed"].contains(&name.as_str());
                if known && name != top {
                    entry.entry(name).or_insert_with(|| at.clone());
                }
            }
        }
    }
    graph
}

#[test]
fn layers_import_only_what_they_may() {
    let graph = imports_by_module();
    let mut problems = Vec::new();
    for (module, forbidden, why) in FORBIDDEN_IMPORTS {
        let imports = graph.get(*module).cloned().unwrap_or_default();
        for name in *forbidden {
            if let Some(at) = imports.get(*name) {
                problems.push(format!("{module} imports {name} ({at}): {why}"));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn no_import_circle_between_modules() {
    let graph = imports_by_module();
    let edges = |m: &str| -> Vec<String> {
        graph
            .get(m)
            .map(|i| {
                i.keys()
                    .filter(|k| graph.contains_key(*k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    // Depth-first search; a module met again on the current path closes a circle.
    fn visit(
        m: &str,
        edges: &dyn Fn(&str) -> Vec<String>,
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut circle = path[at..].to_vec();
            circle.push(m.to_string());
            return Some(circle);
        }
        if done.iter().any(|d| d == m) {
            return None;
        }
        path.push(m.to_string());
        for next in edges(m) {
            if let Some(circle) = visit(&next, edges, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.push(m.to_string());
        None
    }
    let mut done = Vec::new();
    for module in graph.keys() {
        if let Some(circle) = visit(module, &edges, &mut Vec::new(), &mut done) {
            let places: Vec<String> = circle
                .windows(2)
                .map(|w| format!("{} -> {} ({})", w[0], w[1], graph[&w[0]][&w[1]]))
                .collect();
            panic!(
                "import circle: {}\n{}",
                circle.join(" -> "),
                places.join("\n")
            );
        }
    }
}

#[test]
fn the_import_scan_finds_paths() {
    let names = |line: &str, depth: usize| names_reached(line, depth);
    assert_eq!(names("use crate::model::Shard;", 2), ["model"]);
    assert_eq!(names("use crate::{api, node::run};", 1), ["api", "node"]);
    assert_eq!(names("    x = crate::runtime::stopping();", 1), ["runtime"]);
    assert_eq!(names("use super::super::model::ops;", 2), ["model"]);
    assert!(names("use super::ops;", 2).is_empty());
    assert_eq!(names("let f = glommio::spawn_local(x);", 1), ["glommio"]);
    assert!(names("let f = my_glommio::x();", 1).is_empty());
}
