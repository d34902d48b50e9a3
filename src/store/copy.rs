//! Copying every row of one database into another, empty one, whichever backend each is on
//! (`latchkey migrate-store`).
//!
//! Both are opened as stores first, so both have this binary's schema (the source is migrated
//! when opened, and a newer one refused). The copy runs in one transaction on the target,
//! while the source is held in a write transaction so that nobody writes it meanwhile; the
//! target commits only after its counts and a sample of its rows match the source.
//!
//! The tables go in foreign-key order, each read whole and inserted with its own values,
//! ids included. Columns are named, never hard-coded: each database says what it has. Flags
//! are 0/1 on SQLite and BOOLEAN on PostgreSQL: a [`Value`] binds itself as the type the
//! target's column has. PostgreSQL's identity columns are given their ids and their sequences
//! moved past them; `signing_keys.rowid` (PostgreSQL's stand-in for SQLite's implicit rowid,
//! generated always) is not copied: keys are inserted in rowid order, which gives the copy the
//! same order. The Proxmox triggers fill `proxmox_sync` as targets, rules and members are
//! inserted, so that table comes last, emptied first, and takes the source's rows as they are.

use super::db::{Param, Value};
use super::{Db, Store, StoreError};

/// Every table that holds data, parents before children. Schema bookkeeping
/// (`latchkey_schema`, SQLite's `user_version`) is not data.
const TABLES: &[&str] = &[
    "users",
    "groups",
    "group_members",
    "clients",
    "client_allowed_groups",
    "sessions",
    "login_links",
    "pending_authorizations",
    "grants",
    "authorization_codes",
    "access_tokens",
    "refresh_tokens",
    "signing_keys",
    "audit_events",
    "meta",
    "passkeys",
    "webauthn_ceremonies",
    "consents",
    "retired_usernames",
    "proxmox_targets",
    "proxmox_rules",
    FILLED_BY_TRIGGERS,
];

/// The table the Proxmox triggers write when the tables before it are filled.
const FILLED_BY_TRIGGERS: &str = "proxmox_sync";

/// PostgreSQL's table of the schema version.
const BOOKKEEPING: &str = "latchkey_schema";

/// Rows compared at each end of every table.
const SAMPLE: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the target is not empty ({table} holds {rows} rows): migrate-store copies into an \
         empty database only; nothing was changed"
    )]
    NotEmpty { table: &'static str, rows: i64 },
    #[error("{side} {detail}: is it a Latchkey database of this version?")]
    Tables { side: &'static str, detail: String },
    #[error(
        "the columns of {table} differ: the source has {source_columns}, the target {target_columns}"
    )]
    Columns {
        table: &'static str,
        source_columns: String,
        target_columns: String,
    },
    #[error("copying {table}: {source}")]
    Table {
        table: &'static str,
        source: StoreError,
    },
    #[error("the copy of {table} differs from the source ({detail}); nothing was written")]
    Differs { table: &'static str, detail: String },
}

/// What was copied: each table and its rows, in the order copied.
#[derive(Debug)]
pub struct Copied {
    pub tables: Vec<(&'static str, i64)>,
}

/// Copies every row of `source` into `target`, which must hold none, and checks the copy
/// before committing it.
pub fn copy(source: &Store, target: &Store) -> Result<Copied, CopyError> {
    target.write(|to| source.write(|from| copy_into(from, to)))
}

fn copy_into(from: &Db, to: &Db) -> Result<Copied, CopyError> {
    check_tables("the source", from)?;
    check_tables("the target", to)?;
    for &table in TABLES {
        let rows = count(to, table)?;
        if rows > 0 {
            return Err(CopyError::NotEmpty { table, rows });
        }
    }
    let plans = TABLES
        .iter()
        .map(|&table| Plan::new(from, to, table))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tables = Vec::new();
    for plan in &plans {
        let rows = plan.copy(from, to).map_err(|source| CopyError::Table {
            table: plan.table,
            source,
        })?;
        tables.push((plan.table, rows));
    }
    for plan in &plans {
        plan.verify(from, to)?;
    }
    Ok(Copied { tables })
}

/// Refuses a database whose tables are not exactly the ones this binary copies.
fn check_tables(side: &'static str, db: &Db) -> Result<(), CopyError> {
    let sql = if db.is_postgres() {
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    };
    let found: Vec<String> = db.column(sql, crate::args![])?;
    let problem = |detail: String| Err(CopyError::Tables { side, detail });
    if let Some(extra) = found
        .iter()
        .find(|name| name.as_str() != BOOKKEEPING && !TABLES.contains(&name.as_str()))
    {
        return problem(format!("has a table this binary does not know, {extra}"));
    }
    if let Some(missing) = TABLES
        .iter()
        .find(|table| !found.iter().any(|n| n == *table))
    {
        return problem(format!("has no table {missing}"));
    }
    Ok(())
}

fn count(db: &Db, table: &str) -> Result<i64, StoreError> {
    db.value(&format!("SELECT count(*) FROM {table}"), crate::args![])
        .map(Option::unwrap_or_default)
}

/// One column as a database describes it.
struct Column {
    name: String,
    /// Part of the primary key.
    key: bool,
    /// A PostgreSQL identity column.
    identity: bool,
    /// Generated always (`signing_keys.rowid`): no value can be given, so it is not copied.
    generated: bool,
}

fn columns(db: &Db, table: &str) -> Result<Vec<Column>, StoreError> {
    if db.is_postgres() {
        db.query(
            "SELECT c.column_name::text, EXISTS (SELECT 1 \
                 FROM information_schema.key_column_usage k \
                 JOIN information_schema.table_constraints t \
                   ON t.constraint_schema = k.constraint_schema \
                  AND t.constraint_name = k.constraint_name \
                 WHERE t.constraint_type = 'PRIMARY KEY' AND k.table_schema = c.table_schema \
                   AND k.table_name = c.table_name AND k.column_name = c.column_name), \
                 c.is_identity = 'YES', COALESCE(c.identity_generation = 'ALWAYS', FALSE) \
             FROM information_schema.columns c \
             WHERE c.table_schema = current_schema() AND c.table_name::text = ?1::text \
             ORDER BY c.ordinal_position",
            crate::args![table],
            |row| {
                Ok(Column {
                    name: row.get(0)?,
                    key: row.get(1)?,
                    identity: row.get(2)?,
                    generated: row.get(3)?,
                })
            },
        )
    } else {
        db.query(
            "SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid",
            crate::args![table],
            |row| {
                Ok(Column {
                    name: row.get(0)?,
                    key: row.get::<i64>(1)? > 0,
                    identity: false,
                    generated: false,
                })
            },
        )
    }
}

/// How one table is copied: the columns both sides have, in the target's order.
struct Plan {
    table: &'static str,
    /// Quoted column names.
    columns: Vec<String>,
    /// Positions in the select list of the primary key's columns.
    key: Vec<usize>,
    /// The source's order: its rowid (or the stand-in for it), else the primary key.
    order: Vec<String>,
    /// The target's identity columns whose sequences must move past the copied ids.
    identities: Vec<String>,
}

impl Plan {
    fn new(from: &Db, to: &Db, table: &'static str) -> Result<Plan, CopyError> {
        let source = columns(from, table)?;
        let target = columns(to, table)?;
        let copied = |columns: &[Column]| -> Vec<String> {
            let mut names: Vec<String> = columns
                .iter()
                .filter(|c| !c.generated)
                .map(|c| c.name.clone())
                .collect();
            names.sort();
            names
        };
        if copied(&source) != copied(&target) {
            return Err(CopyError::Columns {
                table,
                source_columns: copied(&source).join(", "),
                target_columns: copied(&target).join(", "),
            });
        }
        let names: Vec<&Column> = target.iter().filter(|c| !c.generated).collect();
        let order = match source.iter().find(|c| c.generated) {
            Some(stand_in) => vec![quoted(&stand_in.name)],
            None if !from.is_postgres() => vec!["rowid".to_string()],
            None => source
                .iter()
                .filter(|c| c.key)
                .map(|c| quoted(&c.name))
                .collect(),
        };
        Ok(Plan {
            table,
            columns: names.iter().map(|c| quoted(&c.name)).collect(),
            key: names
                .iter()
                .enumerate()
                .filter(|(_, c)| c.key)
                .map(|(i, _)| i)
                .collect(),
            order,
            identities: target
                .iter()
                .filter(|c| c.identity && !c.generated)
                .map(|c| c.name.clone())
                .collect(),
        })
    }

    /// Copies the table's rows; how many.
    fn copy(&self, from: &Db, to: &Db) -> Result<i64, StoreError> {
        let rows = self.read(from, Slice::All)?;
        if self.table == FILLED_BY_TRIGGERS {
            to.execute(&format!("DELETE FROM {}", self.table), crate::args![])?;
        }
        let placeholders: Vec<String> = (1..=self.columns.len()).map(|i| format!("?{i}")).collect();
        let insert = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            self.table,
            self.columns.join(", "),
            placeholders.join(", ")
        );
        for row in &rows {
            to.execute(&insert, &params(row))?;
        }
        for column in &self.identities {
            to.query(
                &format!(
                    "SELECT setval(pg_get_serial_sequence(?1, ?2), m) \
                     FROM (SELECT max({}) AS m FROM {}) s WHERE m IS NOT NULL",
                    quoted(column),
                    self.table
                ),
                crate::args![self.table, column.as_str()],
                |_| Ok(()),
            )?;
        }
        Ok(rows.len() as i64)
    }

    /// The source's rows, in its order.
    fn read(&self, db: &Db, slice: Slice) -> Result<Vec<Vec<Value>>, StoreError> {
        let (direction, limit) = match slice {
            Slice::All => ("", String::new()),
            Slice::First => ("", format!(" LIMIT {SAMPLE}")),
            Slice::Last => (" DESC", format!(" LIMIT {SAMPLE}")),
        };
        let order: Vec<String> = self
            .order
            .iter()
            .map(|c| format!("{c}{direction}"))
            .collect();
        db.query(
            &format!(
                "SELECT {} FROM {} ORDER BY {}{limit}",
                self.columns.join(", "),
                self.table,
                order.join(", ")
            ),
            crate::args![],
            |row| self.values(row),
        )
    }

    fn values(&self, row: &super::Row) -> Result<Vec<Value>, StoreError> {
        (0..self.columns.len()).map(|i| row.get(i)).collect()
    }

    /// The same number of rows on both sides, and the first and last rows of the source found
    /// in the target with every column equal.
    fn verify(&self, from: &Db, to: &Db) -> Result<(), CopyError> {
        let differs = |detail: String| CopyError::Differs {
            table: self.table,
            detail,
        };
        let (source, copied) = (count(from, self.table)?, count(to, self.table)?);
        if source != copied {
            return Err(differs(format!(
                "{source} rows in the source, {copied} in the copy"
            )));
        }
        let mut sample = self.read(from, Slice::First)?;
        sample.extend(self.read(from, Slice::Last)?);
        let lookup = format!(
            "SELECT {} FROM {} WHERE {}",
            self.columns.join(", "),
            self.table,
            (1..=self.key.len())
                .zip(&self.key)
                .map(|(n, &i)| format!("{} = ?{n}", self.columns[i]))
                .collect::<Vec<_>>()
                .join(" AND ")
        );
        for row in &sample {
            let key: Vec<Value> = self.key.iter().map(|&i| row[i].clone()).collect();
            let found = to.query_opt(&lookup, &params(&key), |found| self.values(found))?;
            let same = found.is_some_and(|found: Vec<Value>| {
                found
                    .iter()
                    .map(Value::normalised)
                    .eq(row.iter().map(Value::normalised))
            });
            if !same {
                return Err(differs(format!("the row with key {key:?}")));
            }
        }
        Ok(())
    }
}

/// Which of a table's rows to read.
enum Slice {
    All,
    First,
    Last,
}

fn params(row: &[Value]) -> Vec<&dyn Param> {
    row.iter().map(|value| value as &dyn Param).collect()
}

/// A column name as an identifier (the names come from the databases' own catalogues).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn users(store: &Store) -> i64 {
        store.read(|db| count(db, "users")).unwrap()
    }

    #[test]
    fn every_table_is_copied_in_foreign_key_order() {
        let (_a, source) = store();
        let (_b, target) = store();
        source
            .write(|db| {
                db.batch(
                    "INSERT INTO users (id, username, created_at, updated_at, is_admin) \
                     VALUES ('u1', 'alice', 1, 1, 1); \
                     INSERT INTO groups (id, name, created_at) VALUES (5, 'admins', 1); \
                     INSERT INTO group_members (group_id, user_id) VALUES (5, 'u1');",
                )
            })
            .unwrap();
        let copied = copy(&source, &target).unwrap();
        let names: Vec<&str> = copied.tables.iter().map(|(table, _)| *table).collect();
        assert_eq!(names, TABLES);
        assert!(copied.tables.contains(&("group_members", 1)));
        assert_eq!(users(&target), 1);
    }

    #[test]
    fn a_copy_that_differs_from_the_source_is_rolled_back() {
        let (_a, source) = store();
        let (_b, target) = store();
        source
            .write(|db| {
                db.execute(
                    "INSERT INTO users (id, username, created_at, updated_at) \
                     VALUES ('u1', 'alice', 1, 1)",
                    crate::args![],
                )
            })
            .unwrap();
        target
            .write(|db| {
                db.batch(
                    "CREATE TRIGGER garble AFTER INSERT ON users \
                     BEGIN UPDATE users SET display_name = 'garbled' WHERE id = NEW.id; END",
                )
            })
            .unwrap();
        let error = copy(&source, &target).unwrap_err();
        assert!(
            matches!(error, CopyError::Differs { table: "users", .. }),
            "{error}"
        );
        assert_eq!(users(&target), 0, "nothing half-copied");
    }
}
