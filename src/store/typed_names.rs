//! Group names and client ids go into a statement and come out of a column as their types:
//! a stored value that breaks the rule is a damaged row, reported with the rule it breaks.

use crate::names::{ClientId, GroupName};

type PgError = Box<dyn std::error::Error + Sync + Send>;

/// Column and parameter impls for a name type made by `parse` and read by `as_str`, stored
/// as text on both backends.
macro_rules! name_column {
    ($name:ty) => {
        impl rusqlite::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                self.as_str().to_sql()
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                <$name>::parse(value.as_str()?)
                    .map_err(|invalid| rusqlite::types::FromSqlError::Other(Box::new(invalid)))
            }
        }

        impl tokio_postgres::types::ToSql for $name {
            fn to_sql(
                &self,
                ty: &tokio_postgres::types::Type,
                out: &mut bytes::BytesMut,
            ) -> Result<tokio_postgres::types::IsNull, PgError> {
                self.as_str().to_sql(ty, out)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::ToSql>::accepts(ty)
            }

            tokio_postgres::types::to_sql_checked!();
        }

        impl<'a> tokio_postgres::types::FromSql<'a> for $name {
            fn from_sql(ty: &tokio_postgres::types::Type, raw: &'a [u8]) -> Result<Self, PgError> {
                let text = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
                Ok(<$name>::parse(text)?)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::FromSql>::accepts(ty)
            }
        }
    };
}

name_column!(GroupName);
name_column!(ClientId);

#[cfg(test)]
mod tests {
    use crate::args;
    use crate::names::Invalid;
    use crate::store::{Store, StoreError, clients, groups};

    /// The rule the error names, when it is a column that broke its rule.
    fn broken_rule(error: &StoreError) -> Option<&Invalid> {
        match error {
            StoreError::Sqlite(rusqlite::Error::FromSqlConversionFailure(_, _, cause)) => {
                cause.downcast_ref::<Invalid>()
            }
            _ => None,
        }
    }

    /// A store whose group and client rows were written past the rules (by hand, or by an
    /// older or damaged copy).
    fn store_with_damaged_rows() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .write(|db| {
                db.execute(
                    "INSERT INTO groups (name, declared, created_at) VALUES (?1, FALSE, 0)",
                    args!["ops team"],
                )?;
                db.execute(
                    "INSERT INTO clients (client_id, name, public, redirect_uris, \
                     post_logout_redirect_uris, created_at, updated_at) \
                     VALUES (?1, 'App', FALSE, '[]', '[]', 0, 0)",
                    args!["my/app"],
                )?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        (dir, store)
    }

    #[test]
    fn a_stored_group_name_or_client_id_that_breaks_its_rule_is_a_damaged_row() {
        let (_dir, store) = store_with_damaged_rows();
        let group = store.read(groups::list).unwrap_err();
        let why = broken_rule(&group).expect("the group name's rule");
        assert!(
            why.0.starts_with("invalid group name \"ops team\""),
            "{why}"
        );
        let client = store.read(clients::list).unwrap_err();
        let why = broken_rule(&client).expect("the client id's rule");
        assert!(why.0.starts_with("invalid client id \"my/app\""), "{why}");
    }
}
