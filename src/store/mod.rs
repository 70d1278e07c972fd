//! Postgres persistence: every query orderd runs lives under this module.
//! Functions take a pool or an open transaction and never call out of the
//! process, so no external call can end up inside a transaction here.
//!
//! Every statement is a named constant (or, where it embeds a domain set,
//! a statement rendered once at first use) and is listed by its module's
//! `statements()`: [`statements`] gathers them, and a test prepares each
//! against the migrated schema, so a query that no longer fits the schema
//! fails the suite even if no other test runs it.

pub mod accounts;
pub mod activities;
pub mod console;
pub mod events;
pub mod executions;
pub mod idempotency;
pub mod instances;
pub mod operator;
pub mod orders;
pub mod quarantine;
pub mod readable;
pub mod reconcile;
pub mod recovery;
pub mod reference;
pub mod scans;
pub mod settlements;
pub mod trade_updates;
pub mod types;

/// Whether a sqlx error is a unique-constraint violation.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "23505")
}

/// A module's list of its statements, `(NAME, sql)`.
type StatementList = fn() -> Vec<(&'static str, &'static str)>;

/// Every statement orderd runs, as `(module::NAME, sql)`.
pub fn statements() -> Vec<(String, &'static str)> {
    let modules: &[(&str, StatementList)] = &[
        ("accounts", accounts::statements),
        ("activities", activities::statements),
        ("console", console::statements),
        ("events", events::statements),
        ("executions", executions::statements),
        ("idempotency", idempotency::statements),
        ("instances", instances::statements),
        ("operator", operator::statements),
        ("orders", orders::statements),
        ("quarantine", quarantine::statements),
        ("readable", readable::statements),
        ("reconcile", reconcile::statements),
        ("recovery", recovery::statements),
        ("reference", reference::statements),
        ("scans", scans::statements),
        ("settlements", settlements::statements),
        ("trade_updates", trade_updates::statements),
    ];
    modules
        .iter()
        .flat_map(|(module, list)| {
            list()
                .into_iter()
                .map(move |(name, sql)| (format!("{module}::{name}"), sql))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every `.rs` file under `dir`.
    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The registry is complete only if no statement escapes it: no query
    /// is written inline (outside `db/` and the harness), and every statement constant of a store module
    /// is listed by that module's `statements()`.
    #[test]
    fn every_statement_is_named_and_listed() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&root, &mut files);
        let listed: Vec<String> = super::statements().into_iter().map(|(n, _)| n).collect();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read source");
            let relative = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .display()
                .to_string();
            // The database's own housekeeping and the bench's measurement
            // queries (pg_stat_statements, commit counts) are not orderd's
            // statements.
            if relative.starts_with("db/") || relative.starts_with("harness/") {
                continue;
            }
            for (i, line) in text.lines().enumerate() {
                let code = line.trim_start();
                for call in [
                    "sqlx::query(\"",
                    "sqlx::query_as(\"",
                    "sqlx::query_scalar(\"",
                ] {
                    assert!(
                        !code.contains(call),
                        "{relative}:{}: an inline statement; name it and list it",
                        i + 1
                    );
                }
                if !relative.starts_with("store/") || relative == "store/types.rs" {
                    continue;
                }
                let module = relative
                    .trim_start_matches("store/")
                    .trim_end_matches(".rs")
                    .to_string();
                let declared = code
                    .strip_prefix("const ")
                    .or_else(|| code.strip_prefix("static "))
                    .and_then(|rest| rest.split_once(':'))
                    .map(|(name, ty)| (name.trim(), ty.trim()));
                if let Some((name, ty)) = declared
                    && (ty.starts_with("&str") || ty.starts_with("LazyLock<&'static str>"))
                    && name.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
                    // Pieces of statements, not statements.
                    && !name.ends_with("_TEMPLATE")
                    && !name.ends_with("_FRAGMENT")
                {
                    let full = format!("{module}::{name}");
                    assert!(
                        listed.contains(&full),
                        "{relative}:{}: {full} is not in {module}::statements()",
                        i + 1
                    );
                }
            }
        }
    }
}
