//! Where settings come from besides flags and the file's plain values: `LATCHKEY_*`
//! environment variables, each also as `LATCHKEY_*_FILE` (the value read from a file), and
//! `*_file` keys in the config file for secrets. One rule for all, so that a secret setting
//! added later gets its file form for free.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// A value read from a file, and a warning when the file is readable by others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileValue {
    pub value: String,
    pub warning: Option<String>,
}

/// Reads a setting's file: its content without one trailing newline. A file that group or
/// others may read gets a warning naming it: it holds a secret.
pub fn read_value_file(setting: &str, path: &Path) -> Result<FileValue, ConfigError> {
    let fail = |source| ConfigError::SecretFile {
        setting: setting.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(fail)?;
    let mode = std::fs::metadata(path).map_err(fail)?.permissions().mode();
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    Ok(FileValue {
        value: value.to_string(),
        warning: readable_by_others(mode).then(|| {
            format!(
                "{setting}: {} is readable by other users; make it owner-only (chmod 600)",
                path.display()
            )
        }),
    })
}

fn readable_by_others(mode: u32) -> bool {
    mode & 0o044 != 0
}

/// Two ways to give one setting, such as `secret` and `secret_file`, named for messages.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    pub inline: &'a str,
    pub file: &'a str,
}

/// A setting given inline or as a file, never both; warnings are collected.
pub fn inline_or_file(
    names: Names,
    inline: Option<String>,
    file: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(ConfigError::TwoSources(format!(
            "{} and {}",
            names.inline, names.file
        ))),
        (Some(value), None) => Ok(Some(value)),
        (None, None) => Ok(None),
        (None, Some(path)) => {
            let read = read_value_file(names.file, path)?;
            warnings.extend(read.warning);
            Ok(Some(read.value))
        }
    }
}

/// The setting `key` from the environment: `LATCHKEY_KEY`, or the content of the file named
/// by `LATCHKEY_KEY_FILE`. `lookup` reads a variable (the process environment in `serve`).
pub fn from_env(
    key: &str,
    lookup: &impl Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, ConfigError> {
    let inline = format!("LATCHKEY_{}", key.to_ascii_uppercase());
    let file = format!("{inline}_FILE");
    let names = Names {
        inline: &inline,
        file: &file,
    };
    let path = lookup(&file).map(PathBuf::from);
    inline_or_file(names, lookup(&inline), path.as_deref(), warnings)
}

/// The process environment, as `from_env` reads it.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn secret_file(content: &str, mode: u32) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), content).unwrap();
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        file
    }

    #[test]
    fn a_variable_or_its_file() {
        let file = secret_file("from-file\n", 0o600);
        let path = file.path().to_str().unwrap();
        let mut warnings = Vec::new();
        let value = |pairs: &[(&str, &str)], warnings: &mut Vec<String>| {
            from_env("some_secret", &env(pairs), warnings)
        };
        assert_eq!(value(&[], &mut warnings).unwrap(), None);
        assert_eq!(
            value(&[("LATCHKEY_SOME_SECRET", "inline")], &mut warnings).unwrap(),
            Some("inline".into())
        );
        assert_eq!(
            value(&[("LATCHKEY_SOME_SECRET_FILE", path)], &mut warnings).unwrap(),
            Some("from-file".into())
        );
        assert!(warnings.is_empty());
        let both = [
            ("LATCHKEY_SOME_SECRET", "inline"),
            ("LATCHKEY_SOME_SECRET_FILE", path),
        ];
        assert!(matches!(
            value(&both, &mut warnings),
            Err(ConfigError::TwoSources(_))
        ));
        assert!(matches!(
            value(
                &[("LATCHKEY_SOME_SECRET_FILE", "/nonexistent/x")],
                &mut warnings
            ),
            Err(ConfigError::SecretFile { .. })
        ));
    }

    #[test]
    fn only_one_trailing_newline_goes() {
        for (content, expected) in [("a\n", "a"), ("a\r\n", "a"), ("a\n\n", "a\n"), ("a", "a")] {
            let file = secret_file(content, 0o600);
            assert_eq!(read_value_file("x", file.path()).unwrap().value, expected);
        }
    }

    #[test]
    fn files_readable_by_others_warn() {
        for (mode, warns) in [(0o600, false), (0o400, false), (0o640, true), (0o604, true)] {
            let file = secret_file("s", mode);
            let read = read_value_file("secret_file", file.path()).unwrap();
            assert_eq!(read.warning.is_some(), warns, "{mode:o}");
            if let Some(warning) = read.warning {
                assert!(warning.contains(&file.path().display().to_string()));
                assert!(!warning.contains('\n'));
            }
        }
    }
}
