//! The shape of the code, checked on every run: the files of a crate import each other one
//! way (no loop of imports), and records flow one way through the server's modules:
//! session -> store -> peers. The peers reach the store only through recipients they are
//! handed, so nothing under `peers/` imports the store, a session, or the wiring; and a
//! session is a client's only, so it imports nothing of the peers. And one
//! name is one type in the server's library: two `Limits` make every reader ask which.
//!
//! Imports are read from the `use crate::...` and `use super::...` lines of each file
//! (grouped ones too), resolved to the file of the module they name. Test files are left
//! out: they may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's source files, by module path (`peers::manager`), with the modules each imports.
struct Crate {
    root: PathBuf,
    imports: BTreeMap<String, BTreeSet<String>>,
}

impl Crate {
    fn read(root: &Path) -> Crate {
        let mut files = Vec::new();
        walk(root, &mut files);
        let mut c = Crate {
            root: root.to_owned(),
            imports: BTreeMap::new(),
        };
        let modules: Vec<(String, PathBuf)> = files
            .into_iter()
            .filter(|f| !is_test_file(f))
            .map(|f| (c.module_of(&f), f))
            .collect();
        let known: BTreeSet<String> = modules.iter().map(|(m, _)| m.clone()).collect();
        for (module, file) in &modules {
            let text = std::fs::read_to_string(file).expect("a source file");
            let targets = uses(&strip_tests(&text))
                .into_iter()
                .filter_map(|path| resolve(module, &path, &known))
                .filter(|target| target != module)
                .collect();
            c.imports.insert(module.clone(), targets);
        }
        c
    }

    /// `peers/manager.rs` -> `peers::manager`; `store/mod.rs` -> `store`; `lib.rs` -> ``.
    fn module_of(&self, file: &Path) -> String {
        let rel = file.strip_prefix(&self.root).expect("under the root");
        let mut parts: Vec<String> = rel
            .with_extension("")
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
            parts.pop();
        }
        parts.join("::")
    }

    /// A loop of imports, if there is one.
    fn cycle(&self) -> Option<Vec<String>> {
        fn visit(
            c: &Crate,
            m: &str,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(i) = path.iter().position(|p| p == m) {
                let mut cycle = path[i..].to_vec();
                cycle.push(m.to_owned());
                return Some(cycle);
            }
            if !done.insert(m.to_owned()) {
                return None;
            }
            path.push(m.to_owned());
            for next in c.imports.get(m).into_iter().flatten() {
                if let Some(cycle) = visit(c, next, path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            None
        }
        let mut done = BTreeSet::new();
        self.imports
            .keys()
            .find_map(|m| visit(self, m, &mut Vec::new(), &mut done))
    }

    /// Every import from a module under `from` of a module under `to`.
    fn imports_between(&self, from: &str, to: &str) -> Vec<(String, String)> {
        let under = |m: &str, top: &str| m == top || m.starts_with(&format!("{top}::"));
        self.imports
            .iter()
            .filter(|(m, _)| under(m, from))
            .flat_map(|(m, ts)| ts.iter().map(move |t| (m.clone(), t.clone())))
            .filter(|(_, t)| under(t, to))
            .collect()
    }
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

fn is_test_file(file: &Path) -> bool {
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    name == "tests" || name.ends_with("_tests") || name == "test_support"
}

/// The text before a file's `#[cfg(test)] mod tests { ... }` (always at its end here).
fn strip_tests(text: &str) -> String {
    match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => text[..i].to_owned(),
        None => text.to_owned(),
    }
}

/// The paths of every `use crate::`/`use super::` statement, groups expanded:
/// `use crate::store::{Flush, LocationStore};` gives `crate::store::Flush` and
/// `crate::store::LocationStore`.
fn uses(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("use ") {
        let at_line_start = i == 0 || rest[..i].ends_with('\n') || rest[..i].ends_with(' ');
        let stmt_end = rest[i..].find(';').map_or(rest.len(), |j| i + j);
        let stmt: String = rest[i + 4..stmt_end].split_whitespace().collect();
        rest = &rest[stmt_end.min(rest.len())..];
        if at_line_start && (stmt.starts_with("crate::") || stmt.starts_with("super::")) {
            expand(&stmt, &mut paths);
        }
    }
    paths
}

fn expand(stmt: &str, out: &mut Vec<String>) {
    let Some(open) = stmt.find('{') else {
        out.push(stmt.to_owned());
        return;
    };
    let prefix = &stmt[..open];
    let inner = &stmt[open + 1..stmt.rfind('}').unwrap_or(stmt.len())];
    let mut depth = 0;
    let mut start = 0;
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand(&format!("{prefix}{}", &inner[start..i]), out);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < inner.len() {
        expand(&format!("{prefix}{}", &inner[start..]), out);
    }
}

/// The module a `use` path names, the longest prefix that is a module of the crate.
fn resolve(from: &str, path: &str, known: &BTreeSet<String>) -> Option<String> {
    let mut segments: Vec<&str> = if let Some(rest) = path.strip_prefix("crate::") {
        rest.split("::").collect()
    } else {
        let mut base: Vec<&str> = from.split("::").filter(|s| !s.is_empty()).collect();
        let mut rest = path;
        while let Some(r) = rest.strip_prefix("super::") {
            base.pop();
            rest = r;
        }
        base.extend(rest.split("::"));
        base
    };
    while !segments.is_empty() {
        let candidate = segments.join("::");
        if known.contains(&candidate) {
            return Some(candidate);
        }
        segments.pop();
    }
    None
}

fn src(krate: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(krate)
        .join("src")
}

#[test]
fn no_two_files_of_the_server_library_import_each_other_in_a_loop() {
    let actors = Crate::read(&src("actors"));
    assert!(
        actors.imports.len() > 20,
        "read {} files",
        actors.imports.len()
    );
    assert_eq!(actors.cycle(), None);
}

#[test]
fn no_two_files_of_the_load_generator_import_each_other_in_a_loop() {
    let bench = Crate::read(&src("bench"));
    assert_eq!(bench.cycle(), None);
}

#[test]
fn records_flow_one_way_session_then_store_then_peers() {
    let actors = Crate::read(&src("actors"));
    for (from, to) in [
        ("peers", "store"),
        ("peers", "session"),
        ("peers", "server"),
        ("store", "session"),
        ("store", "server"),
        ("session", "server"),
        ("session", "listener"),
        // A session is a client's from its start: the door in front of it
        // (`listener::door`) sends neighbours to the peer side.
        ("session", "peers"),
    ] {
        assert_eq!(actors.imports_between(from, to), vec![], "{from} -> {to}");
    }
    // And the arrows that carry the records are there: the check above reads real imports.
    assert!(!actors.imports_between("session", "store").is_empty());
    assert!(!actors.imports_between("store", "peers").is_empty());
}

/// The types a file declares at its top level: `struct`, `enum`, `trait` and `type` items,
/// whatever their visibility (an `impl`'s associated types are indented, so not read).
fn declared_types(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if line.starts_with(char::is_whitespace) {
            continue;
        }
        let mut word = words.next();
        if word.is_some_and(|w| w.starts_with("pub")) {
            word = words.next();
        }
        if let (Some("struct" | "enum" | "trait" | "type"), Some(name)) = (word, words.next()) {
            let name: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.push(name);
        }
    }
    names
}

#[test]
fn one_name_is_one_type_in_the_server_library() {
    let root = src("actors");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files.iter().filter(|f| !is_test_file(f)) {
        let text = std::fs::read_to_string(file).expect("a source file");
        for name in declared_types(&strip_tests(&text)) {
            let rel = file.strip_prefix(&root).expect("under the root");
            seen.entry(name)
                .or_default()
                .push(rel.display().to_string());
        }
    }
    assert!(seen.len() > 100, "read {} types", seen.len());
    let twice: Vec<_> = seen.iter().filter(|(_, files)| files.len() > 1).collect();
    assert_eq!(twice, Vec::<(&String, &Vec<String>)>::new());
}

#[test]
fn the_type_reader_sees_top_level_declarations_only() {
    let text = "pub(crate) struct Spread {\n    pub(crate) record: Record,\n}\n\
                enum Ending {}\npub trait Named<T> {}\npub(super) type Lines = ();\n\
                impl Handler<Spread> for Store {\n    type Result = ();\n}\n\
                fn f() {\n    struct Local;\n}\n";
    assert_eq!(declared_types(text), ["Spread", "Ending", "Named", "Lines"]);
}

#[test]
fn the_reader_resolves_grouped_and_relative_imports() {
    let known: BTreeSet<String> = ["store", "peers", "peers::manager"]
        .into_iter()
        .map(String::from)
        .collect();
    let mut paths = Vec::new();
    expand(
        "crate::peers::{manager::Handoff,records::{Records,Reconcile}}",
        &mut paths,
    );
    assert_eq!(
        paths,
        [
            "crate::peers::manager::Handoff",
            "crate::peers::records::Records",
            "crate::peers::records::Reconcile"
        ]
    );
    assert_eq!(
        resolve("store", "crate::peers::manager::Handoff", &known).as_deref(),
        Some("peers::manager")
    );
    assert_eq!(
        resolve("peers::manager", "super::records::Records", &known).as_deref(),
        Some("peers")
    );
}
