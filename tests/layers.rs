//! The crate's layers point down only: reads every `src/**/*.rs`, builds the
//! graph of top-level modules from their `crate::x` (and `super::` paths that
//! climb to the crate root), and checks it against the layer table below.
//!
//! Comment and doc-comment lines are skipped: a doc link to a higher module
//! is documentation, not a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Every top-level module with its layer; an edge may only point to a lower
/// layer. A new module gets a row here.
const LAYERS: &[(&str, u32)] = &[
    ("time", 0),
    ("defer", 1),
    ("threads", 2),
    ("reactor", 3),
    ("protocol", 4),
    ("task", 5),
    ("endpoints", 5),
    ("utils", 5),
    ("application", 5),
    ("web", 6),
    ("redis", 6),
    ("testing", 6),
];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to and its module depth (1 for
/// `src/x.rs` and `src/x/mod.rs`), or `None` for `lib.rs`.
fn module_of(src: &Path, file: &Path) -> Option<(String, usize)> {
    let rel = file.strip_prefix(src).expect("a file under src");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts == ["lib.rs"] {
        return None;
    }
    let top = parts[0].trim_end_matches(".rs").to_string();
    let last = parts.last().expect("a file name");
    let depth = if last == "mod.rs" {
        parts.len() - 1
    } else {
        parts.len()
    };
    Some((top, depth))
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifiers right after `prefix` in `line`; `crate::{a, b::c}` gives
/// `a` and `b`.
fn after(line: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find(prefix) {
        let starts_word = rest[..i].chars().next_back().is_none_or(|c| !is_ident(c));
        let tail = &rest[i + prefix.len()..];
        if starts_word {
            if let Some(group) = tail.strip_prefix('{') {
                let mut depth = 0;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    item.push(c);
                }
                let group = item;
                let mut item = String::new();
                for c in group.chars().chain(std::iter::once(',')) {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            let name: String =
                                item.trim().chars().take_while(|&c| is_ident(c)).collect();
                            if !name.is_empty() {
                                found.push(name);
                            }
                            item.clear();
                        }
                        _ if depth == 0 => item.push(c),
                        _ => {}
                    }
                }
            } else {
                let name: String = tail.chars().take_while(|&c| is_ident(c)).collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        }
        rest = &rest[i + prefix.len()..];
    }
    found
}

/// Top-level modules a line of a file at `depth` names.
fn references(line: &str, depth: usize) -> Vec<String> {
    let mut names = after(line, "crate::");
    // `super::super::x` from depth 2 is `crate::x`.
    let root = "super::".repeat(depth);
    for name in after(line, &root) {
        if name != "super" {
            names.push(name);
        }
    }
    names
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let known: BTreeSet<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    let mut graph = Graph::new();
    for file in &files {
        let Some((top, depth)) = module_of(&src, file) else {
            continue;
        };
        assert!(
            known.contains(top.as_str()),
            "module `{top}` ({}) has no row in the layer table of tests/layers.rs",
            file.display()
        );
        let text = fs::read_to_string(file).expect("a readable source file");
        let edges = graph.entry(top.clone()).or_default();
        for line in text.lines() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for name in references(code, depth) {
                if name != top && known.contains(name.as_str()) {
                    edges.insert(name);
                }
            }
        }
    }
    graph
}

fn layer(module: &str) -> u32 {
    LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, l)| *l)
        .unwrap_or_else(|| panic!("module `{module}` has no layer"))
}

#[test]
fn the_parser_sees_what_it_should() {
    assert_eq!(
        references("use crate::defer::{Deferred, Failure};", 1),
        ["defer"]
    );
    assert_eq!(
        references("use crate::{defer::Failure, time::{self, Current}};", 1),
        ["defer", "time"]
    );
    assert_eq!(
        references("let t = crate::time::thread_timers();", 2),
        ["time"]
    );
    assert_eq!(
        references("use super::super::reactor::Handle;", 2),
        ["reactor"]
    );
    assert!(references("use super::chain::Chain;", 2).is_empty());
    assert!(references("let x = notcrate::defer::y;", 1).is_empty());
}

#[test]
fn every_module_has_its_row() {
    let graph = graph();
    for module in graph.keys() {
        layer(module);
    }
    assert!(graph.contains_key("defer") && graph.contains_key("time"));
}

#[test]
fn no_two_modules_import_each_other() {
    let graph = graph();
    for (from, tos) in &graph {
        for to in tos {
            let back = graph.get(to).is_some_and(|t| t.contains(from));
            assert!(!back, "`{from}` and `{to}` import each other");
        }
    }
}

#[test]
fn there_is_no_cycle() {
    fn visit<'a>(
        graph: &'a Graph,
        node: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(i) = path.iter().position(|&n| n == node) {
            panic!("import cycle: {} -> {node}", path[i..].join(" -> "));
        }
        if done.contains(node) {
            return;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            visit(graph, next, path, done);
        }
        path.pop();
        done.insert(node);
    }
    let graph = graph();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(&graph, node, &mut Vec::new(), &mut done);
    }
}

#[test]
fn every_import_points_down() {
    for (from, tos) in &graph() {
        for to in tos {
            assert!(
                layer(to) < layer(from),
                "`{from}` (layer {}) imports `{to}` (layer {}): layers point down only",
                layer(from),
                layer(to)
            );
        }
    }
}

#[test]
fn defer_knows_only_time_and_time_knows_nothing() {
    let graph = graph();
    let defer: Vec<&String> = graph["defer"].iter().collect();
    assert!(
        defer.iter().all(|m| *m == "time"),
        "defer imports {defer:?}; it may import only `time`"
    );
    assert!(
        graph["time"].is_empty(),
        "time imports {:?}; it is the bottom layer",
        graph["time"]
    );
}
