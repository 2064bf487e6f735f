//! Walking the spanned YAML tree: typed field getters that expand placeholders, record every
//! problem with its position and dotted path, and report unknown fields with a suggestion.

use std::time::Duration;

use saphyr::{MarkedYaml, Scalar, YamlData};

use crate::diagnostic::Diagnostic;
use crate::id::EntryId;
use crate::placeholder;
use crate::source::SourceFile;
use crate::suggest;

pub(crate) type Node<'y> = MarkedYaml<'y>;

const MISSING: &str = "missing required field";

/// A 1-based line and column in a definition file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub line: usize,
    pub col: usize,
}

impl Position {
    pub(crate) fn of(node: &Node<'_>) -> Self {
        Position { line: node.span.start.line(), col: node.span.start.col() + 1 }
    }
}

/// A value with the position it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub at: Position,
}

/// Where placeholder names are looked up: the env system, or the process environment alone.
pub(crate) trait Lookup {
    fn lookup(&self, name: &str, namespace: &str) -> Option<String>;
}

/// One mapping being read: its items, which were used, and which names were asked for.
pub(crate) struct Fields<'y> {
    path: String,
    items: Vec<Item<'y>>,
    known: Vec<&'static str>,
}

struct Item<'y> {
    key: String,
    key_at: Position,
    value: &'y Node<'y>,
    used: bool,
}

impl<'y> Fields<'y> {
    /// Takes the value of `name`, remembering it as a known field either way.
    pub(crate) fn take(&mut self, name: &'static str) -> Option<&'y Node<'y>> {
        self.known.push(name);
        let item = self.items.iter_mut().find(|item| item.key == name)?;
        item.used = true;
        Some(item.value)
    }

    /// Whether `name` is present (without taking it).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.items.iter().any(|item| item.key == name)
    }

    /// The dotted path of a field in this mapping.
    pub(crate) fn path(&self, name: &str) -> String {
        join(&self.path, name)
    }

    /// The remaining (not taken) items, in document order, for free-form maps.
    pub(crate) fn rest(&mut self) -> Vec<(String, Position, &'y Node<'y>)> {
        self.items
            .iter_mut()
            .filter(|item| !item.used)
            .map(|item| {
                item.used = true;
                (item.key.clone(), item.key_at, item.value)
            })
            .collect()
    }
}

/// Dotted path join that leaves the root empty.
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") }
}

/// Reads one entry (or a file's top level), collecting diagnostics.
pub(crate) struct Walker<'a> {
    pub(crate) file: &'a SourceFile,
    pub(crate) entry: Option<EntryId>,
    /// Where missing required fields are reported: the entry's `name`.
    pub(crate) entry_at: Position,
    pub(crate) namespace: &'a str,
    lookup: &'a dyn Lookup,
    pub(crate) diagnostics: &'a mut Vec<Diagnostic>,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(
        file: &'a SourceFile,
        namespace: &'a str,
        lookup: &'a dyn Lookup,
        diagnostics: &'a mut Vec<Diagnostic>,
    ) -> Self {
        Walker { file, entry: None, entry_at: Position::default(), namespace, lookup, diagnostics }
    }

    /// Looks `name` up in the env system (for legacy `<field>_env` fields).
    pub(crate) fn env_value(&self, name: &str) -> Option<String> {
        self.lookup.lookup(name, self.namespace).filter(|value| !value.is_empty())
    }

    /// Records an error at `at` for `field`.
    pub(crate) fn error(&mut self, at: Position, field: &str, message: impl Into<String>) {
        let diagnostic = self.diagnostic(at, field, message);
        self.diagnostics.push(diagnostic);
    }

    /// Records a warning at `at` for `field`.
    pub(crate) fn warn(&mut self, at: Position, field: &str, message: impl Into<String>) {
        let diagnostic = self.diagnostic(at, field, message).warning();
        self.diagnostics.push(diagnostic);
    }

    fn diagnostic(&self, at: Position, field: &str, message: impl Into<String>) -> Diagnostic {
        let mut diagnostic = Diagnostic::new(self.file.display.clone(), at.line, at.col, message).with_field(field);
        if let Some(entry) = &self.entry {
            diagnostic = diagnostic.with_entry(entry.clone());
        }
        diagnostic
    }

    /// Records a missing required field at the entry's name.
    pub(crate) fn missing(&mut self, field: &str, expected: &str) {
        self.error(self.entry_at, field, format!("{MISSING} (expected {expected})"));
    }

    /// Opens a mapping; `null` counts as an empty one.
    pub(crate) fn fields<'y>(&mut self, node: &'y Node<'y>, path: &str) -> Option<Fields<'y>> {
        let mut fields = Fields { path: path.to_owned(), items: Vec::new(), known: Vec::new() };
        match &node.data {
            YamlData::Mapping(map) => {
                for (key, value) in map {
                    match key.data.as_str() {
                        Some(name) => fields.items.push(Item {
                            key: name.to_owned(),
                            key_at: Position::of(key),
                            value,
                            used: false,
                        }),
                        None => self.error(
                            Position::of(key),
                            path,
                            format!("found {} as a key (expected a field name)", describe(key)),
                        ),
                    }
                }
                Some(fields)
            }
            YamlData::Value(Scalar::Null) => Some(fields),
            _ => {
                self.expected(node, path, "a mapping");
                None
            }
        }
    }

    /// Reports every field of `fields` that was not taken, suggesting the closest known name.
    pub(crate) fn finish(&mut self, fields: Fields<'_>) {
        for item in fields.items.iter().filter(|item| !item.used) {
            let hint = match suggest::closest(&item.key, fields.known.iter().copied()) {
                Some(name) => {
                    self.forget_missing(&fields.path(name));
                    format!("did you mean `{name}`?")
                }
                None if fields.known.is_empty() => "this mapping takes no fields".to_owned(),
                None => format!("expected one of: {}", fields.known.join(", ")),
            };
            let path = fields.path(&item.key);
            self.error(item.key_at, &path, format!("unknown field ({hint})"));
        }
    }

    /// Drops a "missing required field" error for `path` when a misspelling of it explains it.
    fn forget_missing(&mut self, path: &str) {
        let entry = self.entry.clone();
        self.diagnostics
            .retain(|d| !(d.entry == entry && d.field.as_deref() == Some(path) && d.message.starts_with(MISSING)));
    }

    /// Records "found X (expected Y)" for `node`.
    pub(crate) fn expected(&mut self, node: &Node<'_>, path: &str, expected: &str) {
        self.error(Position::of(node), path, format!("found {} (expected {expected})", describe(node)));
    }

    /// A string scalar with placeholders expanded; numbers and booleans are not strings.
    pub(crate) fn string(&mut self, node: &Node<'_>, path: &str) -> Option<Spanned<String>> {
        match &node.data {
            YamlData::Value(Scalar::String(text)) => {
                let at = Position::of(node);
                self.expand(text, at, path).map(|value| Spanned { value, at })
            }
            _ => {
                self.expected(node, path, "a string");
                None
            }
        }
    }

    /// Expands placeholders in `text` read at `at`.
    pub(crate) fn expand(&mut self, text: &str, at: Position, path: &str) -> Option<String> {
        if !placeholder::has_placeholder(text) {
            return Some(text.to_owned());
        }
        let (lookup, namespace) = (self.lookup, self.namespace);
        match placeholder::expand(text, |name| lookup.lookup(name, namespace)) {
            Ok(value) => Some(value),
            Err(error) => {
                self.error(at, path, error.message());
                None
            }
        }
    }

    /// For typed fields: the expanded text when `node` is a string holding a placeholder;
    /// otherwise reports "found X (expected ...)". `None` once an error is recorded.
    fn placeholder_text(&mut self, node: &Node<'_>, path: &str, expected: &str) -> Option<String> {
        match &node.data {
            YamlData::Value(Scalar::String(text)) if placeholder::has_placeholder(text) => {
                self.expand(text, Position::of(node), path)
            }
            _ => {
                self.expected(node, path, expected);
                None
            }
        }
    }

    /// A field taken from `fields` as a string.
    pub(crate) fn take_string(&mut self, fields: &mut Fields<'_>, name: &'static str) -> Option<Spanned<String>> {
        let node = fields.take(name)?;
        self.string(node, &fields.path(name))
    }

    /// A boolean field (`true`/`false`, or a placeholder expanding to one).
    pub(crate) fn take_bool(&mut self, fields: &mut Fields<'_>, name: &'static str) -> Option<bool> {
        self.take_bool_at(fields, name).map(|flag| flag.value)
    }

    /// A boolean field with its position.
    pub(crate) fn take_bool_at(&mut self, fields: &mut Fields<'_>, name: &'static str) -> Option<Spanned<bool>> {
        let node = fields.take(name)?;
        let path = fields.path(name);
        let at = Position::of(node);
        let value = match &node.data {
            YamlData::Value(Scalar::Boolean(value)) => *value,
            YamlData::Value(Scalar::Null) => return None,
            _ => match self.placeholder_text(node, &path, "true or false")?.as_str() {
                "true" => true,
                "false" => false,
                text => {
                    self.error(at, &path, format!("`{text}` is not a boolean (expected true or false)"));
                    return None;
                }
            },
        };
        Some(Spanned { value, at })
    }

    /// An integer field at least `min`.
    pub(crate) fn take_integer(
        &mut self,
        fields: &mut Fields<'_>,
        name: &'static str,
        min: i64,
    ) -> Option<Spanned<i64>> {
        let node = fields.take(name)?;
        let path = fields.path(name);
        let at = Position::of(node);
        let expected = format!("a whole number, {min} or more");
        let value = match &node.data {
            YamlData::Value(Scalar::Integer(value)) => *value,
            _ => {
                let text = self.placeholder_text(node, &path, &expected)?;
                let Ok(value) = text.trim().parse() else {
                    self.error(at, &path, format!("`{text}` is not a whole number (expected {expected})"));
                    return None;
                };
                value
            }
        };
        if value < min {
            self.error(at, &path, format!("{value} is too small (expected {expected})"));
            return None;
        }
        Some(Spanned { value, at })
    }

    /// A number field (integer or float) within `min..=max`.
    pub(crate) fn take_number(
        &mut self,
        fields: &mut Fields<'_>,
        name: &'static str,
        min: f64,
        max: f64,
    ) -> Option<f64> {
        let node = fields.take(name)?;
        let path = fields.path(name);
        let at = Position::of(node);
        let expected =
            if max.is_finite() { format!("a number from {min} to {max}") } else { format!("a number, {min} or more") };
        let value = match &node.data {
            YamlData::Value(Scalar::Integer(value)) => *value as f64,
            YamlData::Value(Scalar::FloatingPoint(value)) => value.into_inner(),
            _ => {
                let text = self.placeholder_text(node, &path, &expected)?;
                let Ok(value) = text.trim().parse::<f64>() else {
                    self.error(at, &path, format!("`{text}` is not a number (expected {expected})"));
                    return None;
                };
                value
            }
        };
        if !(min..=max).contains(&value) {
            self.error(at, &path, format!("{value} is out of range (expected {expected})"));
            return None;
        }
        Some(value)
    }

    /// A duration field: a Go duration string or whole milliseconds; never negative.
    pub(crate) fn take_duration(&mut self, fields: &mut Fields<'_>, name: &'static str) -> Option<Spanned<Duration>> {
        let node = fields.take(name)?;
        self.duration(node, &fields.path(name))
    }

    pub(crate) fn duration(&mut self, node: &Node<'_>, path: &str) -> Option<Spanned<Duration>> {
        let at = Position::of(node);
        match &node.data {
            YamlData::Value(Scalar::Integer(millis)) => match u64::try_from(*millis) {
                Ok(millis) => Some(Spanned { value: Duration::from_millis(millis), at }),
                Err(_) => {
                    self.error(at, path, format!("{millis} milliseconds is negative (expected zero or more)"));
                    None
                }
            },
            YamlData::Value(Scalar::String(_)) => {
                let text = self.string(node, path)?.value;
                match tempest_duration::parse(&text) {
                    Ok(value) => Some(Spanned { value, at }),
                    Err(error) => {
                        self.error(at, path, error.to_string());
                        None
                    }
                }
            }
            _ => {
                self.expected(node, path, "a duration such as \"30s\" or a number of milliseconds");
                None
            }
        }
    }

    /// A list of strings (a single string is not accepted).
    pub(crate) fn take_string_list(&mut self, fields: &mut Fields<'_>, name: &'static str) -> Vec<Spanned<String>> {
        let Some(node) = fields.take(name) else {
            return Vec::new();
        };
        self.string_list(node, &fields.path(name))
    }

    pub(crate) fn string_list(&mut self, node: &Node<'_>, path: &str) -> Vec<Spanned<String>> {
        match &node.data {
            YamlData::Sequence(items) => items
                .iter()
                .enumerate()
                .filter_map(|(index, item)| self.string(item, &format!("{path}[{index}]")))
                .collect(),
            YamlData::Value(Scalar::Null) => Vec::new(),
            _ => {
                self.expected(node, path, "a list of strings");
                Vec::new()
            }
        }
    }
}

/// How a node is named in "found ..." messages.
pub(crate) fn describe(node: &Node<'_>) -> String {
    match &node.data {
        YamlData::Value(Scalar::Null) => "nothing".to_owned(),
        YamlData::Value(Scalar::Boolean(value)) => format!("the boolean {value}"),
        YamlData::Value(Scalar::Integer(value)) => format!("the number {value}"),
        YamlData::Value(Scalar::FloatingPoint(value)) => format!("the number {value}"),
        YamlData::Value(Scalar::String(text)) if text.len() <= 40 && !text.contains('\n') => {
            format!("the string \"{text}\"")
        }
        YamlData::Value(Scalar::String(_)) => "a long string".to_owned(),
        YamlData::Sequence(_) => "a list".to_owned(),
        YamlData::Mapping(_) => "a mapping".to_owned(),
        YamlData::Tagged(tag, _) => format!("a value tagged `{tag}`"),
        _ => "an unreadable value".to_owned(),
    }
}
