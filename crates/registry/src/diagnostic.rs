//! Diagnostics (`path:line:col: entry `ns:name`: field `a.b`: message`) and the sorted report
//! that collects them over every file.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::id::EntryId;
use crate::kinds::lua::LuaEntry;

/// Whether a diagnostic stops loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Loading fails; the user must fix it.
    Error,
    /// Loading continues; printed as `warning:`.
    Warning,
}

/// One problem found in a definition file.
///
/// `line` and `col` are 1-based; `line == 0` means the problem has no position (a whole file or
/// directory), and the position is left out when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file as the user sees it (relative to the loaded directory's parent, as given).
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    /// The entry the problem belongs to, when known.
    pub entry: Option<EntryId>,
    /// Dotted path of the offending field inside the entry (`auth.api_key`, `modules[2]`).
    pub field: Option<String>,
    /// What is wrong, then what is expected in parentheses.
    pub message: String,
}

impl Diagnostic {
    /// An error at `file:line:col`.
    pub fn new(file: impl Into<PathBuf>, line: usize, col: usize, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.into(),
            line,
            col,
            entry: None,
            field: None,
            message: message.into(),
        }
    }

    /// The same diagnostic as a warning.
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// Attaches the entry the problem belongs to.
    pub fn with_entry(mut self, entry: EntryId) -> Self {
        self.entry = Some(entry);
        self
    }

    /// Attaches the dotted field path.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        self.field = (!field.is_empty()).then_some(field);
        self
    }

    /// Whether this diagnostic is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    fn sort_key(&self) -> (&Path, usize, usize) {
        (&self.file, self.line, self.col)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        f.write_str(": ")?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if let Some(entry) = &self.entry {
            write!(f, "entry `{entry}`: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every diagnostic of one load (plus any a caller adds), displayed one per line in file,
/// line, column order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Report::default()
    }

    /// Adds one diagnostic.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// All diagnostics sorted by file, line and column (ties keep insertion order).
    pub fn diagnostics(&self) -> Vec<&Diagnostic> {
        let mut sorted: Vec<&Diagnostic> = self.diagnostics.iter().collect();
        sorted.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        sorted
    }

    /// The errors, sorted.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics().into_iter().filter(|d| d.is_error())
    }

    /// The warnings, sorted.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics().into_iter().filter(|d| !d.is_error())
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Whether there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.diagnostics.is_empty()
    }

    pub(crate) fn into_parts(self) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
        let mut sorted = self.diagnostics;
        sorted.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        sorted.into_iter().partition(Diagnostic::is_error)
    }
}

impl Extend<Diagnostic> for Report {
    fn extend<T: IntoIterator<Item = Diagnostic>>(&mut self, iter: T) {
        self.diagnostics.extend(iter);
    }
}

impl FromIterator<Diagnostic> for Report {
    fn from_iter<T: IntoIterator<Item = Diagnostic>>(iter: T) -> Self {
        Report { diagnostics: iter.into_iter().collect() }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.diagnostics().into_iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Loading failed: the definition files have at least one error. Fatal until the files change.
///
/// Displays every error and warning, one per line, sorted by file, line and column. Also keeps
/// the Lua entries that were read without errors of their own, so a checker can report Lua
/// problems in the same run as the definition errors.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{report}")]
pub struct LoadErrors {
    /// Errors and warnings together; add the caller's own diagnostics here to print one report.
    pub report: Report,
    /// Private so that only the loader builds a `LoadErrors`.
    lua_entries: Vec<(EntryId, LuaEntry)>,
}

impl LoadErrors {
    pub(crate) fn new(report: Report, lua_entries: Vec<(EntryId, LuaEntry)>) -> Self {
        LoadErrors { report, lua_entries }
    }

    /// The Lua entries whose own fields were valid, in declaration order (first declaration of
    /// a duplicated name only). Their references may be among the errors: an import or worker
    /// named here need not exist. Empty when loading stopped before reading entries.
    pub fn lua_entries(&self) -> impl Iterator<Item = (&EntryId, &LuaEntry)> {
        self.lua_entries.iter().map(|(id, lua)| (id, lua))
    }

    /// The errors, sorted.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.report.errors()
    }

    /// The warnings, sorted.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.report.warnings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_the_contract_format() {
        let diagnostic = Diagnostic::new("examples/orders/_index.yaml", 7, 14, "missing (expected x)")
            .with_entry(EntryId::new("app", "worker"))
            .with_field("worker_options.identity");
        assert_eq!(
            diagnostic.to_string(),
            "examples/orders/_index.yaml:7:14: entry `app:worker`: field `worker_options.identity`: missing (expected x)"
        );
        let warning = Diagnostic::new("a.yaml", 1, 2, "odd").warning();
        assert_eq!(warning.to_string(), "a.yaml:1:2: warning: odd");
        assert_eq!(Diagnostic::new("dir", 0, 0, "gone").to_string(), "dir: gone");
    }

    #[test]
    fn sorts_by_file_line_col() {
        let report: Report = [
            Diagnostic::new("b.yaml", 1, 1, "b"),
            Diagnostic::new("a.yaml", 9, 1, "a9"),
            Diagnostic::new("a.yaml", 2, 5, "a2").warning(),
        ]
        .into_iter()
        .collect();
        assert_eq!(report.to_string(), "a.yaml:2:5: warning: a2\na.yaml:9:1: a9\nb.yaml:1:1: b");
        assert!(report.has_errors());
        assert_eq!(report.warnings().count(), 1);
    }
}
