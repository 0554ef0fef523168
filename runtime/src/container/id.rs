use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdError {
    #[error("container id must not be empty")]
    Empty,
    #[error("container id is longer than 1024 characters")]
    TooLong,
    #[error("invalid container id {0:?}: only letters, digits, '_', '+', '-' and '.' are allowed")]
    BadCharacters(String),
    #[error("invalid container id {0:?}")]
    Reserved(String),
}

/// runc's rule: `^[\w+-\.]+$`, and never a name that means a directory
/// itself. The id becomes a path component under `--root`, so anything that
/// could walk out of it (`/`, `..`, NUL) is refused before any file is touched.
pub fn validate_id(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > 1024 {
        return Err(IdError::TooLong);
    }
    if id == "." || id == ".." {
        return Err(IdError::Reserved(id.to_string()));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.');
    if !id.chars().all(allowed) {
        return Err(IdError::BadCharacters(id.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_clients_generate() {
        for id in ["abc", "a.b-c_d+e", &"f".repeat(64), "cli-cc-echo"] {
            assert_eq!(validate_id(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn refuses_anything_that_leaves_the_root() {
        for id in ["", ".", "..", "../x", "a/b", "/abs", "a\0b", "spa ce", "ünï", &"x".repeat(1025)] {
            assert!(validate_id(id).is_err(), "{id:?} should be refused");
        }
    }
}
