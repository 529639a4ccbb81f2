//! Errors of the storage layer.

/// An error from the key-value engine or from decoding what it holds.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb: {0}")]
    Rocks(String),
    #[error("corrupt value under {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error("engine is shut down")]
    Closed,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, StorageError>;

impl StorageError {
    pub fn corrupt(table: &'static str, reason: impl std::fmt::Display) -> Self {
        StorageError::Corrupt {
            table,
            reason: reason.to_string(),
        }
    }
}
