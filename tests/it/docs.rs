//! ARCHITECTURE.md against the tree (issue 11: "every line of the code map
//! and every **Invariant:** line is true"): every `.rs` file under `src/`,
//! `sandbox/src/` and `benches/` is named by the code map (by its path, or by
//! a folder of it, `<name>` standing for any one folder), every path the code
//! map names exists, and the Invariant lines that a search of the product
//! code can check: only `src/ledger/` speaks SQL, no platform module imports
//! the ledger, a platform is named outside its folder only where its
//! Invariant line says, and admin-named files are opened by `local_file`.
//!
//! "Product code" is a file with its comments, `#[cfg(test)]` and `#[test]`
//! items removed; test files (`tests.rs`, `proptests.rs`, `test_server.rs`,
//! anything under a `tests/` folder) have none. String literals are kept:
//! a URL or an SQL statement in a string is code.

use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn architecture() -> String {
    std::fs::read_to_string(repo().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md")
}

/// The text under `## {title}`, up to the next `## ` heading.
fn section<'a>(doc: &'a str, title: &str) -> &'a str {
    let heading = format!("\n## {title}\n");
    let start = doc
        .find(&heading)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no {heading:?}"))
        + heading.len();
    let body = &doc[start..];
    &body[..body.find("\n## ").unwrap_or(body.len())]
}

/// The `code` spans of a piece of markdown.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// `src/cli/{run,sync}.rs` as `src/cli/run.rs`, `src/cli/sync.rs`.
fn expand(path: &str) -> Vec<String> {
    let Some(open) = path.find('{') else {
        return vec![path.to_owned()];
    };
    let Some(close) = path[open..].find('}').map(|i| open + i) else {
        return vec![path.to_owned()];
    };
    path[open + 1..close]
        .split(',')
        .flat_map(|alt| expand(&format!("{}{alt}{}", &path[..open], &path[close + 1..])))
        .collect()
}

/// The paths of the code map's first column, in order: files, and folders
/// ending in `/` (everything under them), `<name>` standing for one folder.
fn code_map_paths(doc: &str) -> Vec<String> {
    section(doc, "Code map")
        .lines()
        .filter_map(|row| row.strip_prefix("| `"))
        .filter_map(|row| row.split(" | ").next())
        .flat_map(|cell| {
            backticked(&format!("`{cell}"))
                .into_iter()
                .flat_map(expand)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether the code map's `entry` names `file` (both relative to the repo).
fn names(entry: &str, file: &str) -> bool {
    let folder = entry.ends_with('/');
    let entry: Vec<&str> = entry.trim_end_matches('/').split('/').collect();
    let file: Vec<&str> = file.split('/').collect();
    let fits = if folder {
        file.len() > entry.len()
    } else {
        file.len() == entry.len()
    };
    fits && entry
        .iter()
        .zip(&file)
        .all(|(e, f)| e == f || *e == "<name>")
}

/// Whether something exists where the code map's `entry` points (for a
/// `<name>` entry: in at least one folder).
fn exists(entry: &str) -> bool {
    match entry.split_once("<name>") {
        None => repo().join(entry).exists(),
        Some((parent, rest)) => std::fs::read_dir(repo().join(parent))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|d| d.path().is_dir())
            .any(|d| d.path().join(rest.trim_start_matches('/')).exists()),
    }
}

/// Every `.rs` file under `dir`, relative to the repo, sorted.
fn rust_files(dir: &str) -> Vec<String> {
    fn walk(path: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                && let Ok(relative) = path.strip_prefix(repo())
            {
                out.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join(dir), &mut out);
    out.sort();
    assert!(!out.is_empty(), "no .rs file under {dir}");
    out
}

#[test]
fn every_rust_file_is_named_by_the_code_map() {
    let map = code_map_paths(&architecture());
    let unnamed: Vec<String> = ["src", "sandbox/src", "benches"]
        .iter()
        .flat_map(|dir| rust_files(dir))
        .filter(|file| !map.iter().any(|entry| names(entry, file)))
        .collect();
    assert!(
        unnamed.is_empty(),
        "ARCHITECTURE.md's code map names neither these files nor a folder of theirs \
         (add a row, or name the file in its folder's row):\n{}",
        unnamed.join("\n")
    );
}

#[test]
fn every_path_in_the_code_map_exists() {
    let map = code_map_paths(&architecture());
    // The reading of the map itself: rows, braces and folders are understood.
    for expected in [
        "src/main.rs",
        "src/cli/sandbox.rs",
        "src/ledger/",
        "src/platforms/<name>/",
    ] {
        assert!(
            map.iter().any(|p| p == expected),
            "{expected} not read from {map:?}"
        );
    }
    assert!(names("src/platforms/<name>/", "src/platforms/yelp/wire.rs"));
    assert!(!names("src/platforms/<name>/", "src/platforms/mod.rs"));
    assert!(!names("src/cli/run.rs", "src/cli/run/mod.rs"));
    let missing: Vec<&String> = map.iter().filter(|entry| !exists(entry)).collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map names paths that do not exist: {missing:?}"
    );
}

// ----------------------------------------------------- the Invariant lines

/// The length of the string, raw string or char literal at `chars[i]`, if
/// one starts there (`'a` of a lifetime is none).
fn literal_len(chars: &[char], i: usize) -> Option<usize> {
    let after_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    match chars[i] {
        '"' => {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            Some((j + 1).min(chars.len()) - i)
        }
        'r' | 'b' if !after_ident => {
            let mut j = i + 1;
            if chars[i] == 'b' {
                if chars.get(j) != Some(&'r') {
                    return None;
                }
                j += 1;
            }
            let hashes = chars[j..].iter().take_while(|&&h| h == '#').count();
            j += hashes;
            if chars.get(j) != Some(&'"') {
                return None;
            }
            j += 1;
            while j < chars.len() {
                if chars[j] == '"'
                    && chars[j + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&h| h == '#')
                        .count()
                        == hashes
                {
                    return Some((j + 1 + hashes).min(chars.len()) - i);
                }
                j += 1;
            }
            Some(chars.len() - i)
        }
        '\'' if chars.get(i + 1) == Some(&'\\') => chars
            .get(i + 3..)
            .and_then(|rest| rest.iter().position(|&q| q == '\''))
            .map(|p| p + 4),
        '\'' => (chars.get(i + 2) == Some(&'\'')).then_some(3),
        _ => None,
    }
}

/// `source` without comments (string literals kept, lines where they were).
fn strip_comments(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let at = |i: usize, s: &str| {
        s.chars()
            .enumerate()
            .all(|(k, c)| chars.get(i + k) == Some(&c))
    };
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        if at(i, "//") {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if at(i, "/*") {
            let mut depth = 0;
            while i < chars.len() {
                if at(i, "/*") {
                    depth += 1;
                    i += 2;
                } else if at(i, "*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if let Some(len) = literal_len(&chars, i) {
            let end = (i + len).min(chars.len());
            out.extend(&chars[i..end]);
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// `code` (without comments) without the items under `#[cfg(test)]` or
/// `#[test]`: the attribute, the attributes after it, and the item up to
/// its `;` or its closing brace (braces in literals do not count); the
/// lines after it keep their numbers.
fn strip_test_items(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let at = |i: usize, s: &str| {
        s.chars()
            .enumerate()
            .all(|(k, c)| chars.get(i + k) == Some(&c))
    };
    let line_start = |i: usize| {
        chars[..i]
            .iter()
            .rev()
            .take_while(|&&c| c != '\n')
            .all(|c| c.is_whitespace())
    };
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < chars.len() {
        let test_only = ["#[cfg(test)]", "#[test]", "#[tokio::test"]
            .iter()
            .any(|a| at(i, a));
        if !(test_only && line_start(i)) {
            if let Some(len) = literal_len(&chars, i) {
                let end = (i + len).min(chars.len());
                out.extend(&chars[i..end]);
                i = end;
            } else {
                out.push(chars[i]);
                i += 1;
            }
            continue;
        }
        // The attributes (brackets matched), then the item: to a `;` outside
        // any bracket, or to the brace that closes its body.
        let mut depth = 0usize;
        let mut in_attributes = true;
        while i < chars.len() {
            if let Some(len) = literal_len(&chars, i) {
                let end = (i + len).min(chars.len());
                out.extend(chars[i..end].iter().filter(|&&c| c == '\n'));
                i = end;
                continue;
            }
            let c = chars[i];
            i += 1;
            if c == '\n' {
                out.push('\n');
            }
            if in_attributes && depth == 0 && !c.is_whitespace() && c != '#' && c != '[' {
                in_attributes = false;
            }
            match c {
                '{' | '[' | '(' => depth += 1,
                '}' | ']' | ')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 && c == '}' && !in_attributes {
                        break;
                    }
                }
                ';' if depth == 0 => break,
                _ => {}
            }
        }
    }
    out
}

/// Whether `file` holds only tests.
fn test_file(file: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file);
    matches!(name, "tests.rs" | "proptests.rs" | "test_server.rs") || file.contains("/tests/")
}

/// Every product file under `src/` with its product code.
fn product_code() -> Vec<(String, String)> {
    rust_files("src")
        .into_iter()
        .filter(|file| !test_file(file))
        .map(|file| {
            let source = std::fs::read_to_string(repo().join(&file)).expect("a source file");
            let code = strip_test_items(&strip_comments(&source));
            (file, code)
        })
        .collect()
}

/// The Invariant line (a `- **Invariant:**` item of the Invariants section)
/// that starts with `start`, its line breaks and indents as single spaces.
fn invariant(doc: &str, start: &str) -> String {
    let section = section(doc, "Invariants");
    let prefix = format!("- **Invariant:** {start}");
    let begin = section
        .find(&prefix)
        .unwrap_or_else(|| panic!("no Invariant line starts with {start:?}"));
    let item = &section[begin..];
    let item = &item[..item[2..].find("\n- ").map_or(item.len(), |i| i + 2)];
    item.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where each of `patterns` occurs in `code`: `file:line: match`.
fn occurrences(file: &str, code: &str, patterns: &[&str]) -> Vec<String> {
    code.lines()
        .enumerate()
        .flat_map(|(n, line)| {
            patterns
                .iter()
                .filter(|p| line.contains(*p))
                .map(move |p| format!("{file}:{}: {p}", n + 1))
        })
        .collect()
}

#[test]
fn the_comment_and_test_stripping_keeps_exactly_the_product_code() {
    let source = r##"//! doc
use a; // trailing
/* block /* nested */
still */ let url = "https://x.example/y"; // after
let raw = r#"a // b"#; let q = '"'; let e = '\''; fn f<'a>(x: &'a str) {}
#[cfg(test)]
mod tests;
#[cfg(test)]
mod inline {
    fn g() { let s = "{"; }
}
#[test]
fn t() {
    body();
}
fn kept() {}
"##;
    let code = strip_test_items(&strip_comments(source));
    for kept in [
        "use a;",
        "let url = \"https://x.example/y\";",
        "r#\"a // b\"#",
        "'\"'",
        "'\\''",
        "fn f<'a>(x: &'a str) {}",
        "fn kept() {}",
    ] {
        assert!(code.contains(kept), "{kept:?} lost:\n{code}");
    }
    assert_eq!(
        code.lines().position(|l| l.contains("fn kept")),
        source.lines().position(|l| l.contains("fn kept")),
        "line numbers moved:\n{code}"
    );
    for gone in [
        "doc",
        "trailing",
        "nested",
        "still",
        "after",
        "mod tests",
        "inline",
        "fn t()",
        "body()",
    ] {
        assert!(!code.contains(gone), "{gone:?} kept:\n{code}");
    }
}

/// **Invariant:** only `src/ledger/` runs SQL.
#[test]
fn only_the_ledger_speaks_sql() {
    let doc = architecture();
    assert!(
        invariant(&doc, "only `src/ledger/` runs SQL")
            .contains("Everything else calls its typed methods")
    );
    let sql = [
        "rusqlite",
        "postgres::",
        "tokio_postgres",
        "SELECT ",
        "INSERT INTO",
        "DELETE FROM",
        "CREATE TABLE",
    ];
    let found: Vec<String> = product_code()
        .iter()
        .filter(|(file, _)| !file.starts_with("src/ledger/"))
        .flat_map(|(file, code)| occurrences(file, code, &sql))
        .collect();
    assert!(
        found.is_empty(),
        "SQL outside src/ledger/:\n{}",
        found.join("\n")
    );
}

/// **Invariant:** platform clients know nothing of the ledger: no platform
/// module (tests included) imports `crate::ledger`.
#[test]
fn no_platform_module_imports_the_ledger() {
    let doc = architecture();
    assert!(
        invariant(
            &doc,
            "platform clients know nothing of delivery or the ledger"
        )
        .contains("no platform module imports `crate::ledger`")
    );
    let found: Vec<String> = rust_files("src/platforms")
        .iter()
        .flat_map(|file| {
            let source = std::fs::read_to_string(repo().join(file)).expect("a source file");
            occurrences(
                file,
                &strip_comments(&source),
                &["crate::ledger", "ledger::", "crate::{ledger"],
            )
        })
        .collect();
    assert!(
        found.is_empty(),
        "platform modules naming the ledger:\n{}",
        found.join("\n")
    );
}

/// **Invariant:** outside `src/platforms/<name>/`, a platform is named in
/// product code only by the files that line names. Both ways: a file that
/// names a platform must be listed, and a listed file must still name one
/// (else the line says more than is true).
#[test]
fn platforms_are_named_only_where_the_invariant_says() {
    let doc = architecture();
    let line = invariant(&doc, "outside `src/platforms/<name>/`, a platform is named");
    let allowed: Vec<&str> = backticked(&line)
        .into_iter()
        .filter(|p| p.starts_with("src/") && !p.contains("<name>"))
        .collect();
    assert!(allowed.contains(&"src/platforms/mod.rs"), "{line}");
    // Each platform's folder name as code spells it (`yelp`, `Yelp`, `YELP`,
    // not followed by a lower-case letter: `GooglePlaces` counts,
    // `googleapis` does not). `file` is too common a word to search for.
    let platforms: Vec<String> = std::fs::read_dir(repo().join("src/platforms"))
        .expect("src/platforms")
        .flatten()
        .filter(|d| d.path().is_dir())
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "file")
        .collect();
    assert!(platforms.len() >= 5, "{platforms:?}");
    let spellings = |name: &str| {
        let mut upper = name.to_owned();
        upper[..1].make_ascii_uppercase();
        [name.to_owned(), upper, name.to_ascii_uppercase()]
    };
    let names_a_platform = |code: &str| -> Vec<String> {
        let mut found: Vec<String> = platforms
            .iter()
            .filter(|platform| {
                spellings(platform).iter().any(|s| {
                    code.match_indices(s.as_str()).any(|(i, _)| {
                        !code[i + s.len()..].starts_with(|c: char| c.is_ascii_lowercase())
                    })
                })
            })
            .cloned()
            .collect();
        found.sort();
        found
    };
    let in_a_platform_folder = |file: &str| {
        file.strip_prefix("src/platforms/")
            .is_some_and(|rest| rest.contains('/'))
    };
    let is_allowed = |file: &str| {
        allowed
            .iter()
            .any(|a| file == *a || (a.ends_with('/') && file.starts_with(a)))
    };
    let mut unlisted = Vec::new();
    let mut naming = Vec::new();
    for (file, code) in product_code() {
        if in_a_platform_folder(&file) {
            continue;
        }
        let found = names_a_platform(&code);
        if found.is_empty() {
            continue;
        }
        if !is_allowed(&file) {
            unlisted.push(format!("{file}: {}", found.join(", ")));
        }
        naming.push(file);
    }
    assert!(
        unlisted.is_empty(),
        "product files outside the platform folders that name a platform, not listed by the Invariant line:\n{}\n(the line: {line})",
        unlisted.join("\n")
    );
    let stale: Vec<&&str> = allowed
        .iter()
        .filter(|a| {
            !naming
                .iter()
                .any(|f| f == *a || (a.ends_with('/') && f.starts_with(**a)))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "the Invariant line lists {stale:?}, which no longer name a platform: take them out\n(the line: {line})"
    );
}

/// **Invariant:** every local file an admin names is opened through
/// `local_file::open_regular`: no other product code opens a file to read it.
#[test]
fn admin_named_files_are_opened_by_local_file() {
    let doc = architecture();
    assert!(
        invariant(&doc, "every local file an admin names").contains("`local_file::open_regular`")
    );
    let opens = [
        "File::open",
        "fs::read(",
        "fs::read_to_string",
        ".read(true)",
        "read_to_end(",
    ];
    let found: Vec<String> = product_code()
        .iter()
        .filter(|(file, _)| file != "src/local_file.rs")
        .flat_map(|(file, code)| occurrences(file, code, &opens))
        .collect();
    assert!(
        found.is_empty(),
        "files opened outside src/local_file.rs:\n{}",
        found.join("\n")
    );
}

/// **Invariant:** rows of `reviews`, `attempts`, `requeues`, `quarantine`
/// and `purges` are never deleted; the poll log is the one record rows
/// leave (and `leases`, which is coordination state, not a record).
#[test]
fn only_the_poll_log_loses_rows() {
    let doc = architecture();
    assert!(
        invariant(&doc, "rows of `reviews`, `attempts`")
            .contains("The one table rows leave is the poll log (`polls`)")
    );
    assert!(
        invariant(&doc, "rows of `reviews`, `attempts`")
            .contains("`leases` is coordination state between daemons, not a record")
    );
    let mut deletes = 0;
    let mut found = Vec::new();
    for (file, code) in product_code() {
        for (n, line) in code.lines().enumerate() {
            for (i, _) in line.match_indices("DELETE FROM ") {
                deletes += 1;
                let table = &line[i + "DELETE FROM ".len()..];
                // `leases` is coordination state, not a record (the invariant says so).
                if !table.starts_with("polls ") && !table.starts_with("leases ") {
                    found.push(format!("{file}:{}: {}", n + 1, line.trim()));
                }
            }
            if line.contains("TRUNCATE") {
                found.push(format!("{file}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "rows deleted from tables other than `polls`:\n{}",
        found.join("\n")
    );
    assert!(
        deletes >= 2,
        "the poll log's retention (one DELETE per engine) was not found"
    );
}
