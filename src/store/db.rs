//! The handle every rule gets on the database, whichever backend holds it.
//!
//! SQL is written once, in SQLite's numbered form (`?1`, `?2`, …); the PostgreSQL side turns
//! the placeholders into `$1`, `$2`, … when it first prepares a statement. Values go in as
//! [`Param`]s and come out through [`Row::get`], both of which each backend's client library
//! understands natively, so neither side converts through strings.

use super::StoreResult;
use super::postgres::PgConn;
use super::typed::read_error;

pub use super::param::{Column, Param};

/// The parameters of one statement: `args![a, b]`.
#[macro_export]
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$(&$value as &dyn $crate::store::db::Param),*] as &[&dyn $crate::store::db::Param]
    };
}

/// One connection (inside a transaction when the store's `write` gave it).
pub enum Db<'a> {
    Sqlite(&'a rusqlite::Connection),
    Postgres(PgConn<'a>),
}

/// One row of a result, read by column index.
pub enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r tokio_postgres::Row),
}

impl Row<'_> {
    /// Column `index`, decoded into `T`; a stored value that breaks `T`'s rule (a typed name
    /// or id) is [`super::StoreError::Malformed`].
    pub fn get<T: Column>(&self, index: usize) -> StoreResult<T> {
        match self {
            Row::Sqlite(row) => row.get(index).map_err(|e| read_error(index, e)),
            Row::Postgres(row) => row.try_get(index).map_err(|e| read_error(index, e)),
        }
    }
}

fn sqlite_params<'p>(
    params: &'p [&'p dyn Param],
) -> rusqlite::ParamsFromIter<impl Iterator<Item = &'p dyn rusqlite::ToSql>> {
    rusqlite::params_from_iter(params.iter().map(|p| *p as &dyn rusqlite::ToSql))
}

impl Db<'_> {
    /// Runs a statement that returns no rows; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn Param]) -> StoreResult<usize> {
        match self {
            Db::Sqlite(conn) => Ok(conn.prepare_cached(sql)?.execute(sqlite_params(params))?),
            Db::Postgres(conn) => Ok(conn.execute(sql, params)? as usize),
        }
    }

    /// Every row `sql` returns, each read by `read`.
    pub fn query<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut read: impl FnMut(&Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        match self {
            Db::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let mut rows = stmt.query(sqlite_params(params))?;
                let mut values = Vec::new();
                while let Some(row) = rows.next()? {
                    values.push(read(&Row::Sqlite(row))?);
                }
                Ok(values)
            }
            Db::Postgres(conn) => conn
                .query(sql, params)?
                .iter()
                .map(|row| read(&Row::Postgres(row)))
                .collect(),
        }
    }

    /// The first row `sql` returns, if any, read by `read`.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        read: impl FnOnce(&Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        match self {
            Db::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let mut rows = stmt.query(sqlite_params(params))?;
                rows.next()?.map(|row| read(&Row::Sqlite(row))).transpose()
            }
            Db::Postgres(conn) => conn
                .query(sql, params)?
                .first()
                .map(|row| read(&Row::Postgres(row)))
                .transpose(),
        }
    }

    /// The row `sql` returns; an error when it returns none.
    pub fn query_one<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        read: impl FnOnce(&Row) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.query_opt(sql, params, read)?
            .ok_or(super::StoreError::NoRow)
    }

    /// The first column of every row `sql` returns, in order.
    pub fn column<T: Column>(&self, sql: &str, params: &[&dyn Param]) -> StoreResult<Vec<T>> {
        self.query(sql, params, |row| row.get(0))
    }

    /// The first column of the first row `sql` returns, if any.
    pub fn value<T: Column>(&self, sql: &str, params: &[&dyn Param]) -> StoreResult<Option<T>> {
        self.query_opt(sql, params, |row| row.get(0))
    }

    /// Runs statements without parameters, as one batch (migrations).
    pub fn batch(&self, sql: &str) -> StoreResult<()> {
        match self {
            Db::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Db::Postgres(conn) => conn.batch(sql),
        }
    }

    /// Whether this is the PostgreSQL backend, for the few statements whose spelling differs.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }
}

/// A value of any column, read and written as it is: what copies a table from one backend to
/// the other without knowing its columns. Flags are 0/1 integers on SQLite and BOOLEAN on
/// PostgreSQL; binding converts one into the other where the target column wants it, and
/// [`Value::normalised`] makes the two compare equal.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Bool(bool),
}

impl Value {
    /// The value with a flag as SQLite keeps it (0 or 1), for comparing across backends.
    pub fn normalised(&self) -> Value {
        match self {
            Value::Bool(flag) => Value::Integer(i64::from(*flag)),
            other => other.clone(),
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(n) => ValueRef::Integer(*n),
            Value::Real(x) => ValueRef::Real(*x),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
            Value::Blob(bytes) => ValueRef::Blob(bytes),
            Value::Bool(flag) => ValueRef::Integer(i64::from(*flag)),
        }))
    }
}

impl rusqlite::types::FromSql for Value {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        use rusqlite::types::ValueRef;
        Ok(match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(n) => Value::Integer(n),
            ValueRef::Real(x) => Value::Real(x),
            ValueRef::Text(_) => Value::Text(String::column_result(value)?),
            ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
        })
    }
}

type PgError = Box<dyn std::error::Error + Sync + Send>;

impl tokio_postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, PgError> {
        use tokio_postgres::types::Type;
        match (self, ty) {
            (Value::Null, _) => Ok(tokio_postgres::types::IsNull::Yes),
            (Value::Integer(n), &Type::BOOL) => match n {
                0 | 1 => (*n == 1).to_sql(ty, out),
                _ => Err(format!("{n} is not a flag (0 or 1)").into()),
            },
            (Value::Integer(n), &Type::INT4) => i32::try_from(*n)?.to_sql(ty, out),
            (Value::Integer(n), _) => n.to_sql_checked(ty, out),
            (Value::Bool(flag), &Type::INT8) => i64::from(*flag).to_sql(ty, out),
            (Value::Bool(flag), _) => flag.to_sql_checked(ty, out),
            (Value::Real(x), _) => x.to_sql_checked(ty, out),
            (Value::Text(text), _) => text.to_sql_checked(ty, out),
            (Value::Blob(bytes), _) => bytes.to_sql_checked(ty, out),
        }
    }

    /// Each variant checks the column's type in `to_sql`.
    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> tokio_postgres::types::FromSql<'a> for Value {
    fn from_sql(ty: &tokio_postgres::types::Type, raw: &'a [u8]) -> Result<Self, PgError> {
        use tokio_postgres::types::Type;
        Ok(match *ty {
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Integer(i16::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::BYTEA => Value::Blob(Vec::from_sql(ty, raw)?),
            _ => Value::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &tokio_postgres::types::Type) -> Result<Self, PgError> {
        Ok(Value::Null)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        use tokio_postgres::types::Type;
        matches!(
            *ty,
            Type::BOOL | Type::INT8 | Type::INT4 | Type::INT2 | Type::FLOAT8 | Type::BYTEA
        ) || <String as tokio_postgres::types::FromSql>::accepts(ty)
    }
}
