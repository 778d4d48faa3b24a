//! Problems found in a configuration or scheduler file, each with the file and line.

use crate::suggest::suggest;
use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with a file: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line, when the problem is about one place in the file.
    pub line: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// Every problem found in one file, reported together. Displays on one line, problems
/// separated by `; `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct FileErrors {
    /// The problems in file order.
    pub problems: Vec<FileProblem>,
}

impl FileErrors {
    /// One problem with no line (the file is missing, unreadable, empty).
    pub fn whole_file(path: &Path, message: impl Into<String>) -> Self {
        Self {
            problems: vec![FileProblem {
                path: path.to_path_buf(),
                line: None,
                message: message.into(),
            }],
        }
    }
}

/// Collects problems while a file is read.
#[derive(Debug)]
pub(crate) struct Collector {
    path: PathBuf,
    pub problems: Vec<FileProblem>,
}

impl Collector {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            problems: Vec::new(),
        }
    }

    pub fn at(&mut self, line: usize, message: impl Into<String>) {
        self.problems.push(FileProblem {
            path: self.path.clone(),
            line: Some(line),
            message: message.into(),
        });
    }

    pub fn whole(&mut self, message: impl Into<String>) {
        self.problems.push(FileProblem {
            path: self.path.clone(),
            line: None,
            message: message.into(),
        });
    }

    /// `Ok(value)` when nothing was collected, otherwise every problem sorted by line.
    pub fn finish<T>(mut self, value: T) -> Result<T, FileErrors> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            self.problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            Err(FileErrors {
                problems: self.problems,
            })
        }
    }
}

/// The UTF-8 text of `bytes` read from `path`; otherwise an error at the line of the first
/// byte that is not UTF-8.
pub(crate) fn utf8_text<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str, FileErrors> {
    std::str::from_utf8(bytes).map_err(|err| {
        let valid = &bytes[..err.valid_up_to()];
        let line = 1 + valid.iter().filter(|b| **b == b'\n').count();
        let line_start = valid
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |newline| newline + 1);
        // The valid prefix is UTF-8, so counting its characters gives the column.
        let column = 1 + String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count();
        let byte = bytes.get(err.valid_up_to()).copied().unwrap_or_default();
        FileErrors {
            problems: vec![FileProblem {
                path: path.to_path_buf(),
                line: Some(line),
                message: format!(
                    "not UTF-8 text at column {column} (byte 0x{byte:02X}); save the file as UTF-8"
                ),
            }],
        }
    })
}

/// Parses YAML text read from `path`.
pub(crate) fn parse_yaml(
    text: &str,
    path: &Path,
) -> Result<Option<crate::files::yaml::Node>, FileErrors> {
    crate::files::yaml::parse(text).map_err(|err| FileErrors {
        problems: vec![FileProblem {
            path: path.to_path_buf(),
            line: Some(err.line),
            message: format!("malformed YAML at column {}: {}", err.col, err.message),
        }],
    })
}

/// A problem message when a section name looks like a misspelt `defaults` (an environment
/// section of that name would silently never be used as the defaults).
pub(crate) fn misspelt_defaults(section: &str) -> Option<String> {
    (section != "defaults" && suggest(section, &["defaults"]).is_some()).then(|| {
        format!("section `{section}:` looks like a misspelt `defaults:`; rename it (environment sections may not be named like it)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_utf8_are_reported_at_their_line_and_column() {
        let path = Path::new("k.yml");
        assert_eq!(utf8_text(b"a: 1\n", path).unwrap(), "a: 1\n");
        let err = utf8_text(b"a: 1\nb: \xc3\xa9\xff\n", path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "k.yml:2: not UTF-8 text at column 5 (byte 0xFF); save the file as UTF-8"
        );
    }

    #[test]
    fn errors_display_on_one_line_with_file_and_line() {
        let mut c = Collector::new(Path::new("config/kaal.yml"));
        c.at(7, "second");
        c.at(3, "first");
        let err = c.finish(()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config/kaal.yml:3: first; config/kaal.yml:7: second"
        );
    }
}
