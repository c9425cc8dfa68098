//! Imports run one way: no module of the library or of the `brood` command
//! imports, directly or through others, a module that imports it back.
//!
//! The check reads the sources as text: a module is a file under `src/`, and it
//! depends on every module its code names through `crate::…` or `super::…`
//! (comments and `#[cfg(test)]` modules left out; a name re-exported at the
//! crate root counts as the module that defines it). A parent declaring its
//! submodules (`mod x;`, `pub use x::…`) is structure, not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `a::b` for `src/a/b.rs` and `src/a/b/mod.rs`; `` for lib.rs / main.rs.
fn module_name(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without comments and without its test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `prefix…` path in `code`, as its `::`-separated words (a `{a, b}`
/// group gives one path per member).
fn paths(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '{'))
            .unwrap_or(rest.len());
        let head = &rest[..end];
        if let Some(brace) = head.find('{') {
            let base: Vec<String> = words(&head[..brace]);
            let group_end = rest[brace..].find('}').map_or(rest.len(), |j| brace + j);
            for member in rest[brace + 1..group_end].split(',') {
                let mut p = base.clone();
                p.extend(words(member.split_whitespace().next().unwrap_or("")));
                out.push(p);
            }
        } else {
            out.push(words(head));
        }
    }
    out
}

fn words(s: &str) -> Vec<String> {
    s.split("::")
        .map(str::trim)
        .filter(|w| !w.is_empty() && *w != "self")
        .map(String::from)
        .collect()
}

/// The longest prefix of `path` that is a module.
fn resolve(path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains(m))
}

fn graph(crate_dir: &str) -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(crate_dir)
        .join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let texts: BTreeMap<String, String> = files
        .iter()
        .map(|f| {
            (
                module_name(&src, f),
                code(&std::fs::read_to_string(f).unwrap()),
            )
        })
        .collect();
    let modules: BTreeSet<String> = texts.keys().cloned().collect();
    // Names re-exported at the root (`pub use a::b::{X, Y};`), by defining module.
    let mut root = BTreeMap::new();
    for p in paths(texts.get("").map_or("", String::as_str), "pub use ") {
        if let (Some(name), Some(m)) = (p.last(), resolve(&p, &modules)) {
            root.insert(name.clone(), m);
        }
    }
    let mut edges = BTreeMap::new();
    for (module, text) in &texts {
        let mut deps = BTreeSet::new();
        for p in paths(text, "crate::") {
            let p = match p.first().and_then(|w| root.get(w)) {
                Some(m) if !modules.contains(&p[0]) => {
                    let mut full = words(m);
                    full.extend(p.iter().cloned());
                    full
                }
                _ => p,
            };
            deps.extend(resolve(&p, &modules));
        }
        let parent: Vec<String> = module.split("::").map(String::from).collect();
        let parent = &parent[..parent.len().saturating_sub(1)];
        for p in paths(text, "super::") {
            let mut full = parent.to_vec();
            full.extend(p);
            deps.extend(resolve(&full, &modules));
        }
        deps.remove(module);
        deps.remove("");
        edges.insert(module.clone(), deps);
    }
    edges
}

/// The strongly connected components with more than one module (Tarjan).
fn circles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                t.out.push(c);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn the_library_has_no_import_circle() {
    let g = graph(".");
    assert!(
        g.contains_key("child") && g["child"].contains("reaper"),
        "{g:?}"
    );
    assert_eq!(circles(&g), Vec::<Vec<String>>::new());
}

#[test]
fn the_command_has_no_import_circle() {
    let g = graph("../brood-cli");
    assert!(g.contains_key("lab_child::play"), "{g:?}");
    assert_eq!(circles(&g), Vec::<Vec<String>>::new());
}

#[test]
fn a_circle_is_found() {
    let mut g = BTreeMap::new();
    let set = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    g.insert("a".to_string(), set(&["b"]));
    g.insert("b".to_string(), set(&["c"]));
    g.insert("c".to_string(), set(&["a"]));
    g.insert("d".to_string(), set(&["a"]));
    assert_eq!(
        circles(&g),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
}

/// The checker sees the kind of circle the layering removed: a module that
/// imports its importer.
#[test]
fn the_parser_reads_use_groups_super_and_root_reexports() {
    let p = paths("use crate::{a::X, b};\nlet y = crate::c::d();", "crate::");
    assert_eq!(
        p,
        vec![
            vec!["a".to_string(), "X".into()],
            vec!["b".to_string()],
            vec!["c".to_string(), "d".into()]
        ]
    );
    let g = graph(".");
    // `use crate::{Error, Result}` through the root re-export is `error`.
    assert!(g["exit"].contains("error"), "{:?}", g["exit"]);
    // `use super::...` from a submodule of `process`.
    assert!(
        g["process::handle"].contains("process::method"),
        "{:?}",
        g["process::handle"]
    );
}
