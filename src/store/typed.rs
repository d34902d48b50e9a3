//! Columns that hold a typed string (a name or an id made only by its rule): written as the
//! text they are, and read back through the same rule, so that a row decodes straight into
//! the type. A stored value that breaks the rule is a damaged record
//! ([`StoreError::Malformed`]), never a panic and never "not found".

use super::StoreError;
use crate::names::Invalid;

/// Makes `$type` a statement parameter and a column of both backends. The type needs
/// `parse(&str) -> Result<Self, names::Invalid>` and `as_str(&self) -> &str`.
macro_rules! text_column {
    ($type:ty) => {
        impl rusqlite::ToSql for $type {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        impl rusqlite::types::FromSql for $type {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                <$type>::parse(value.as_str()?)
                    .map_err(|broken| rusqlite::types::FromSqlError::Other(Box::new(broken)))
            }
        }

        impl tokio_postgres::types::ToSql for $type {
            fn to_sql(
                &self,
                ty: &tokio_postgres::types::Type,
                out: &mut bytes::BytesMut,
            ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
            {
                <&str as tokio_postgres::types::ToSql>::to_sql(&self.as_str(), ty, out)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::ToSql>::accepts(ty)
            }

            tokio_postgres::types::to_sql_checked!();
        }

        impl<'a> tokio_postgres::types::FromSql<'a> for $type {
            fn from_sql(
                ty: &tokio_postgres::types::Type,
                raw: &'a [u8],
            ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                Ok(<$type>::parse(
                    <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?,
                )?)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::FromSql>::accepts(ty)
            }
        }
    };
}

text_column!(crate::names::UserId);
text_column!(crate::names::Username);
text_column!(crate::names::GroupName);
text_column!(crate::names::ClientId);

/// The error of reading column `column`: [`StoreError::Malformed`] when the value broke its
/// type's rule, else the client library's own.
pub(super) fn read_error<E>(column: usize, error: E) -> StoreError
where
    E: std::error::Error + 'static,
    StoreError: From<E>,
{
    match error
        .source()
        .and_then(|cause| cause.downcast_ref::<Invalid>())
    {
        Some(broken) => StoreError::Malformed {
            column,
            source: broken.clone(),
        },
        None => error.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Store, StoreError, StoreResult, clients, groups, users};
    use crate::args;
    use crate::names::{UserId, Username};

    const ADA: &str = "0b9a6a9e-3f4e-4d2a-9c1b-7e5f0a1d2c3b";

    /// What reading the users finds in a store holding one row with this id and username.
    fn read_users_holding(id: &str, username: &str) -> StoreResult<Vec<users::User>> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.write(|tx| {
            tx.execute(
                "INSERT INTO users (id, username, created_at, updated_at) VALUES (?1, ?2, 1, 1)",
                args![id, username],
            )
        })?;
        store.read(users::list)
    }

    /// The rule's message when `error` is a damaged record in `column`.
    fn broken_rule(error: &StoreError, column: usize) -> Option<String> {
        match error {
            StoreError::Malformed { column: at, source } if *at == column => {
                Some(source.to_string())
            }
            _ => None,
        }
    }

    #[test]
    fn a_row_decodes_straight_into_its_types() {
        let found = read_users_holding(ADA, "ada").unwrap();
        assert_eq!(found[0].id, UserId::parse(ADA).unwrap());
        assert_eq!(found[0].username, Username::parse("ada").unwrap());
    }

    #[test]
    fn a_stored_user_id_that_is_no_uuid_is_a_damaged_record() {
        let error = read_users_holding("u1", "ada").unwrap_err();
        let broken = broken_rule(&error, 0).unwrap_or_else(|| panic!("{error:?}"));
        assert!(broken.starts_with("invalid user id \"u1\""), "{broken}");
    }

    #[test]
    fn a_stored_username_that_breaks_the_rule_is_a_damaged_record() {
        let error = read_users_holding(ADA, "a/b").unwrap_err();
        let broken = broken_rule(&error, 1).unwrap_or_else(|| panic!("{error:?}"));
        assert!(broken.starts_with("invalid username \"a/b\""), "{broken}");
        assert!(
            error
                .to_string()
                .starts_with("damaged record: column 1 holds invalid username"),
            "{error}"
        );
    }

    #[test]
    fn a_value_of_another_type_stays_the_database_error_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let error = store
            .read(|db| db.value::<UserId>("SELECT 1", args![]))
            .unwrap_err();
        assert!(matches!(error, StoreError::Sqlite(_)), "{error:?}");
    }

    #[test]
    fn a_stored_group_name_or_client_id_that_breaks_its_rule_is_a_damaged_record() {
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
                )
            })
            .unwrap();
        let error = store.read(groups::list).unwrap_err();
        let broken = broken_rule(&error, 1).unwrap_or_else(|| panic!("{error:?}"));
        assert!(
            broken.starts_with("invalid group name \"ops team\""),
            "{broken}"
        );
        let error = store.read(clients::list).unwrap_err();
        let broken = broken_rule(&error, 0).unwrap_or_else(|| panic!("{error:?}"));
        assert!(
            broken.starts_with("invalid client id \"my/app\""),
            "{broken}"
        );
    }
}
