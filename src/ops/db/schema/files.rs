//! The schema opsh manages, as SQL: the files of migrations/ (embedded, so the binary works
//! wherever it is copied), split into statements and sorted by what each one makes. This is the
//! only definition of the tables: `opsh migrate` plans from it, the sandbox and the tests load
//! the same files.

use std::sync::LazyLock;

/// The deployment's own init.sql, as it is (its two seed channels included).
pub const DEPLOYMENT: &str = include_str!("../../../../migrations/deployment/init.sql");

/// opsh's additions, applied after the deployment's file in this order.
pub const OPSH: &[(&str, &str)] = &[
    (
        "opsh/01_job_columns.sql",
        include_str!("../../../../migrations/opsh/01_job_columns.sql"),
    ),
    (
        "opsh/02_indexes.sql",
        include_str!("../../../../migrations/opsh/02_indexes.sql"),
    ),
    (
        "opsh/03_audit.sql",
        include_str!("../../../../migrations/opsh/03_audit.sql"),
    ),
];

/// integrity::fix's bookkeeping table: made by fix on first use, not by `opsh migrate`.
pub const ORPHAN_CANDIDATES: &str =
    include_str!("../../../../migrations/opsh/orphan_candidates.sql");

/// One statement of a file, by what it makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Table {
        name: String,
        sql: String,
    },
    Index {
        name: String,
        table: String,
        /// After `ON table`: columns or expressions, predicate (whitespace collapsed).
        def: String,
        sql: String,
    },
    /// ALTER TABLE on one column; `adds` when it is the ADD COLUMN.
    Column {
        table: String,
        column: String,
        adds: bool,
        sql: String,
    },
    /// Rows (the deployment's seed channels): data, not schema; migrate never inserts them.
    Rows {
        sql: String,
    },
    Other {
        sql: String,
    },
}

/// A table: its CREATE TABLE statement, and whether it is opsh's own.
#[derive(Debug)]
pub struct Table {
    pub name: String,
    pub ddl: String,
    pub opsh: bool,
}

/// An index: name, table, definition after `ON table`, and whether it is one of opsh's.
#[derive(Debug)]
pub struct Index {
    pub name: String,
    pub table: String,
    pub def: String,
    pub opsh: bool,
}

/// A column that opsh adds to a deployment's table: its ALTER statements in order, the ADD
/// COLUMN first.
#[derive(Debug)]
pub struct Column {
    pub table: String,
    pub name: String,
    pub statements: Vec<String>,
}

/// What the files make, in their order.
#[derive(Debug)]
pub struct Wanted {
    pub tables: Vec<Table>,
    pub indexes: Vec<Index>,
    pub columns: Vec<Column>,
    /// Every statement that builds the schema (rows left out), in order.
    pub build: Vec<String>,
    /// Statements of a kind the planner does not know (none in the embedded files: a unit test
    /// says so).
    pub unknown: Vec<String>,
}

impl Wanted {
    pub fn parse(deployment: &str, opsh: &[&str]) -> Wanted {
        let mut wanted = Wanted {
            tables: Vec::new(),
            indexes: Vec::new(),
            columns: Vec::new(),
            build: Vec::new(),
            unknown: Vec::new(),
        };
        let files = std::iter::once((false, deployment)).chain(opsh.iter().map(|f| (true, *f)));
        for (own, file) in files {
            for statement in split(file).iter().map(|s| classify(s)) {
                match statement {
                    Statement::Table { name, sql } => {
                        wanted.build.push(sql.clone());
                        wanted.tables.push(Table {
                            name,
                            ddl: sql,
                            opsh: own,
                        });
                    }
                    Statement::Index {
                        name,
                        table,
                        def,
                        sql,
                    } => {
                        wanted.build.push(sql);
                        wanted.indexes.push(Index {
                            name,
                            table,
                            def,
                            opsh: own,
                        });
                    }
                    Statement::Column {
                        table,
                        column,
                        adds,
                        sql,
                    } => {
                        wanted.build.push(sql.clone());
                        match wanted
                            .columns
                            .iter_mut()
                            .find(|c| c.table == table && c.name == column)
                        {
                            Some(c) => c.statements.push(sql),
                            None if adds => wanted.columns.push(Column {
                                table,
                                name: column,
                                statements: vec![sql],
                            }),
                            None => {}
                        }
                    }
                    Statement::Rows { .. } => {}
                    Statement::Other { sql } => {
                        wanted.build.push(sql.clone());
                        wanted.unknown.push(sql);
                    }
                }
            }
        }
        wanted
    }

    /// The deployment's tables, in dependency order.
    pub fn deployment_tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.iter().filter(|t| !t.opsh)
    }

    /// A column's default as the files write it (`'ko'`, `CURRENT_TIMESTAMP`): the last SET
    /// DEFAULT of opsh's ALTERs, else the DEFAULT of its ADD COLUMN or CREATE TABLE.
    pub fn default_text(&self, table: &str, column: &str) -> Option<String> {
        if let Some(c) = self
            .columns
            .iter()
            .find(|c| c.table == table && c.name == column)
        {
            return c.statements.iter().rev().find_map(|s| {
                let at = find_word(s, "default")?;
                until_constraint(&s[at + "default".len()..])
            });
        }
        let ddl = &self.tables.iter().find(|t| t.name == table)?.ddl;
        let body = &ddl[ddl.find('(')? + 1..ddl.rfind(')')?];
        top_level(body, ',').into_iter().find_map(|item| {
            let item = item.trim();
            let (name, rest) = item.split_once(char::is_whitespace)?;
            if !name.eq_ignore_ascii_case(column) {
                return None;
            }
            let at = find_word(rest, "default")?;
            until_constraint(&rest[at + "default".len()..])
        })
    }
}

/// The embedded files, parsed once.
pub fn wanted() -> &'static Wanted {
    static WANTED: LazyLock<Wanted> = LazyLock::new(|| {
        let opsh: Vec<&str> = OPSH.iter().map(|(_, sql)| *sql).collect();
        Wanted::parse(DEPLOYMENT, &opsh)
    });
    &WANTED
}

/// Where the scanner is: in plain SQL, a string, a quoted name or a comment.
#[derive(Clone, Copy, PartialEq)]
enum At {
    Code,
    Str,
    Ident,
    Line,
    Block,
}

/// Walks `sql` and calls `f(byte offset, char, depth)` for each character of plain SQL (outside
/// strings, quoted names and comments), with the parenthesis depth before it.
fn scan(sql: &str, mut f: impl FnMut(usize, char, usize)) {
    let mut at = At::Code;
    let mut depth = 0usize;
    let mut chars = sql.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|(_, n)| *n);
        match at {
            At::Code => match c {
                '\'' => at = At::Str,
                '"' => at = At::Ident,
                '-' if next == Some('-') => at = At::Line,
                '/' if next == Some('*') => at = At::Block,
                _ => {
                    f(i, c, depth);
                    match c {
                        '(' => depth += 1,
                        ')' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                }
            },
            // A doubled quote inside is its escape: leaving and entering again comes out right.
            At::Str if c == '\'' => at = At::Code,
            At::Ident if c == '"' => at = At::Code,
            At::Line if c == '\n' => at = At::Code,
            At::Block if c == '*' && next == Some('/') => {
                chars.next();
                at = At::Code;
            }
            _ => {}
        }
    }
}

/// `sql` cut at each `sep` at parenthesis depth 0 outside strings and comments.
fn top_level(sql: &str, sep: char) -> Vec<&str> {
    let mut cuts = Vec::new();
    scan(sql, |i, c, depth| {
        if c == sep && depth == 0 {
            cuts.push(i);
        }
    });
    let mut parts = Vec::new();
    let mut from = 0;
    for cut in cuts {
        parts.push(&sql[from..cut]);
        from = cut + sep.len_utf8();
    }
    parts.push(&sql[from..]);
    parts
}

/// A file's statements, each without the comments before it and without its semicolon.
pub fn split(file: &str) -> Vec<String> {
    top_level(file, ';')
        .into_iter()
        .map(strip_leading_comments)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn strip_leading_comments(mut s: &str) -> &str {
    loop {
        s = s.trim();
        if let Some(rest) = s.strip_prefix("--") {
            s = rest.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(rest) = s.strip_prefix("/*") {
            s = rest.split_once("*/").map_or("", |(_, r)| r);
        } else {
            return s;
        }
    }
}

/// The first words of a statement, lower case (names unquoted as written), with the byte
/// offset where each ends. Punctuation is a word of its own.
fn words(sql: &str, max: usize) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() && out.len() < max {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((sql[start..i].to_ascii_lowercase(), i));
        } else if c == b'"' {
            let start = i + 1;
            i = start;
            while i < bytes.len() && bytes[i] != b'"' {
                i += 1;
            }
            out.push((
                sql[start..i.min(bytes.len())].to_string(),
                (i + 1).min(bytes.len()),
            ));
            i += 1;
        } else {
            let len = sql[i..].chars().next().map_or(1, char::len_utf8);
            out.push((sql[i..i + len].to_string(), i + len));
            i += len;
        }
    }
    out
}

/// What a statement makes.
pub fn classify(sql: &str) -> Statement {
    let w = words(sql, 16);
    let word = |i: usize| w.get(i).map(|(s, _)| s.as_str()).unwrap_or("");
    let mut i;
    // Skips the words of `seq` when they come next.
    let skip = |i: &mut usize, seq: &[&str]| {
        if seq.iter().enumerate().all(|(k, s)| word(*i + k) == *s) {
            *i += seq.len();
        }
    };
    let other = || Statement::Other {
        sql: sql.to_string(),
    };
    match (word(0), word(1)) {
        ("create", "table") => {
            i = 2;
            skip(&mut i, &["if", "not", "exists"]);
            Statement::Table {
                name: word(i).to_string(),
                sql: sql.to_string(),
            }
        }
        // A UNIQUE index is left to Other: the planner would make it as a plain one.
        ("create", "index") => {
            i = 2;
            skip(&mut i, &["concurrently"]);
            skip(&mut i, &["if", "not", "exists"]);
            let name = word(i).to_string();
            i += 1;
            if word(i) != "on" {
                return other();
            }
            i += 1;
            skip(&mut i, &["only"]);
            let Some((table, end)) = w.get(i) else {
                return other();
            };
            let def = collapse(sql[*end..].trim());
            Statement::Index {
                sql: format!("CREATE INDEX IF NOT EXISTS {name} ON {table} {def}"),
                name,
                table: table.clone(),
                def,
            }
        }
        ("alter", "table") => {
            i = 2;
            skip(&mut i, &["if", "exists"]);
            skip(&mut i, &["only"]);
            let table = word(i).to_string();
            i += 1;
            let adds = match word(i) {
                "add" => true,
                "alter" => false,
                _ => return other(),
            };
            i += 1;
            skip(&mut i, &["column"]);
            skip(&mut i, &["if", "not", "exists"]);
            Statement::Column {
                table,
                column: word(i).to_string(),
                adds,
                sql: sql.to_string(),
            }
        }
        ("insert", _) => Statement::Rows {
            sql: sql.to_string(),
        },
        _ => other(),
    }
}

/// Runs of whitespace as one space, outside strings.
fn collapse(sql: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    let mut space = false;
    for c in sql.chars() {
        if c == '\'' {
            in_str = !in_str;
        }
        if c.is_whitespace() && !in_str {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(c);
    }
    out
}

/// Where `word` stands as a word of plain SQL (any case) at depth 0.
fn find_word(sql: &str, word: &str) -> Option<usize> {
    let mut found = None;
    let lower = sql.to_ascii_lowercase();
    scan(sql, |i, _, depth| {
        if found.is_none()
            && depth == 0
            && lower[i..].starts_with(word)
            && (i == 0 || !is_word(lower.as_bytes()[i - 1]))
            && lower
                .as_bytes()
                .get(i + word.len())
                .is_none_or(|b| !is_word(*b))
        {
            found = Some(i);
        }
    });
    found
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A DEFAULT's expression: what follows, up to the column's next constraint.
fn until_constraint(rest: &str) -> Option<String> {
    let end = [
        "not",
        "null",
        "unique",
        "primary",
        "references",
        "check",
        "constraint",
        "generated",
        "collate",
    ]
    .iter()
    .filter_map(|k| find_word(rest, k))
    .min()
    .unwrap_or(rest.len());
    let expr = collapse(rest[..end].trim());
    (!expr.is_empty()).then_some(expr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_split_outside_strings_and_comments() {
        let file = "-- a; comment\nCREATE TABLE t (a text DEFAULT ';', b int); /* x; */\n\
                    INSERT INTO t VALUES ('it''s; fine');\n-- trailing\n";
        assert_eq!(
            split(file),
            [
                "CREATE TABLE t (a text DEFAULT ';', b int)",
                "INSERT INTO t VALUES ('it''s; fine')"
            ]
        );
    }

    #[test]
    fn each_statement_is_known_by_what_it_makes() {
        assert_eq!(
            classify("CREATE INDEX IF NOT EXISTS idx_a ON t(a,  b)"),
            Statement::Index {
                name: "idx_a".into(),
                table: "t".into(),
                def: "(a, b)".into(),
                sql: "CREATE INDEX IF NOT EXISTS idx_a ON t (a, b)".into(),
            }
        );
        assert_eq!(
            classify("ALTER TABLE t ALTER COLUMN c SET DEFAULT 1"),
            Statement::Column {
                table: "t".into(),
                column: "c".into(),
                adds: false,
                sql: "ALTER TABLE t ALTER COLUMN c SET DEFAULT 1".into(),
            }
        );
        assert!(matches!(
            classify("GRANT ALL ON t TO x"),
            Statement::Other { .. }
        ));
    }

    #[test]
    fn the_embedded_files_make_the_deployments_tables_and_opshs_additions() {
        let w = wanted();
        assert_eq!(w.unknown, Vec::<String>::new());
        let tables: Vec<(&str, bool)> =
            w.tables.iter().map(|t| (t.name.as_str(), t.opsh)).collect();
        assert_eq!(
            tables,
            [
                ("channels", false),
                ("content", false),
                ("transcripts", false),
                ("processing_jobs", false),
                ("vector_mappings", false),
                ("opsh_audit", true)
            ]
        );
        let columns: Vec<String> = w
            .columns
            .iter()
            .map(|c| format!("{}.{} {}", c.table, c.name, c.statements.len()))
            .collect();
        assert_eq!(
            columns,
            [
                "processing_jobs.retry_count 1",
                "processing_jobs.updated_at 2"
            ]
        );
        let opsh: Vec<&str> = w
            .indexes
            .iter()
            .filter(|i| i.opsh)
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(
            opsh,
            [
                "idx_processing_jobs_stuck",
                "idx_vector_mappings_chunk_id",
                "opsh_audit_at"
            ]
        );
        assert_eq!(w.indexes.iter().filter(|i| !i.opsh).count(), 10);
        // Every index is on a table the files make.
        for index in &w.indexes {
            assert!(
                w.tables.iter().any(|t| t.name == index.table),
                "{}",
                index.name
            );
        }
        // The seed rows are the deployment's data: never built or planned.
        assert!(!w.build.iter().any(|s| s.starts_with("INSERT")));
    }

    #[test]
    fn every_file_of_migrations_opsh_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/opsh");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| format!("opsh/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = OPSH.iter().map(|(n, _)| n.to_string()).collect();
        embedded.push("opsh/orphan_candidates.sql".into());
        embedded.sort();
        assert_eq!(on_disk, embedded);
        // In the order the files sort in.
        let names: Vec<&str> = OPSH.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn defaults_are_read_as_the_files_write_them() {
        let w = wanted();
        assert_eq!(
            w.default_text("content", "language").as_deref(),
            Some("'ko'")
        );
        assert_eq!(w.default_text("content", "url"), None);
        assert_eq!(
            w.default_text("processing_jobs", "updated_at").as_deref(),
            Some("CURRENT_TIMESTAMP")
        );
        assert_eq!(
            w.default_text("processing_jobs", "retry_count").as_deref(),
            Some("0")
        );
        assert_eq!(
            w.default_text("opsh_audit", "arguments").as_deref(),
            Some("'{}'")
        );
        assert_eq!(
            w.default_text("channels", "is_active").as_deref(),
            Some("true")
        );
    }
}
