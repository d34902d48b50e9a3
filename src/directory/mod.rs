//! The rules for people, groups and clients: validation, the changes themselves and their
//! audit events. The CLI and the admin pages both call these, so the rules live once.

pub mod clients;
pub mod declared;
pub mod groups;
/// The name rules moved below the store, which takes and returns the names; this path stays.
pub use crate::names;
pub mod proxmox;
pub mod users;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{0}")]
    Invalid(String),
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error("a user named {0:?} already exists")]
    UserExists(String),
    #[error("no group named {0:?}")]
    NoSuchGroup(String),
    #[error("a group named {0:?} already exists")]
    GroupExists(String),
    #[error("no client with id {0:?}")]
    NoSuchClient(String),
    #[error("a client with id {0:?} already exists")]
    ClientExists(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0:?} is declared in the config file; change it there")]
    Declared(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::names::Invalid> for DirectoryError {
    fn from(e: crate::names::Invalid) -> Self {
        DirectoryError::Invalid(e.0)
    }
}

impl From<rusqlite::Error> for DirectoryError {
    fn from(e: rusqlite::Error) -> Self {
        DirectoryError::Store(e.into())
    }
}

pub type DirectoryResult<T> = Result<T, DirectoryError>;
