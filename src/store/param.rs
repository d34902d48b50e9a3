//! What goes into a statement and what comes out of it: the types both backends' client
//! libraries understand natively.

/// A value bound to a placeholder: anything both client libraries can send.
pub trait Param: rusqlite::ToSql + tokio_postgres::types::ToSql + Sync {
    fn as_postgres(&self) -> &(dyn tokio_postgres::types::ToSql + Sync);
}

impl<T: rusqlite::ToSql + tokio_postgres::types::ToSql + Sync> Param for T {
    fn as_postgres(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        self
    }
}

/// A value read from a column: anything both client libraries can decode.
pub trait Column: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a> {}

impl<T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>> Column for T {}
