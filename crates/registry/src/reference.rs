//! References between entries: resolving `ns:name` / bare names while walking, and what kind of
//! entry each reference must point at once every file is loaded.

use crate::id::EntryId;
use crate::walk::{Position, Spanned, Walker};

/// What a reference must point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// An entry of exactly this kind.
    Kind(&'static str),
    /// Any `env.storage.*` entry.
    EnvStorage,
    /// Any entry (lifecycle dependencies).
    Any,
}

impl Expect {
    pub(crate) fn accepts(self, kind: &str) -> bool {
        match self {
            Expect::Kind(expected) => kind == expected,
            Expect::EnvStorage => kind.starts_with("env.storage."),
            Expect::Any => true,
        }
    }

    pub(crate) fn describe(self) -> String {
        match self {
            Expect::Kind(kind) => format!("a `{kind}` entry"),
            Expect::EnvStorage => "an `env.storage.*` entry".to_owned(),
            Expect::Any => "an entry".to_owned(),
        }
    }
}

/// One reference found in an entry.
#[derive(Debug, Clone)]
pub(crate) struct Reference {
    pub(crate) target: EntryId,
    pub(crate) at: Position,
    pub(crate) field: String,
    pub(crate) expect: Expect,
    /// Whether the referring entry must start after the target.
    pub(crate) dependency: bool,
}

/// The references of the entry being walked.
#[derive(Debug, Default)]
pub(crate) struct References {
    pub(crate) items: Vec<Reference>,
}

impl References {
    /// Resolves `text` against the entry's namespace and records it; reports malformed IDs.
    pub(crate) fn add(
        &mut self,
        walker: &mut Walker<'_>,
        text: &Spanned<String>,
        field: &str,
        expect: Expect,
        dependency: bool,
    ) -> Option<EntryId> {
        let Some(target) = EntryId::resolve(text.value.trim(), walker.namespace) else {
            walker.error(
                text.at,
                field,
                format!("`{}` is not an entry ID (expected `namespace:name`, or a name in this namespace)", text.value),
            );
            return None;
        };
        self.items.push(Reference { target: target.clone(), at: text.at, field: field.to_owned(), expect, dependency });
        Some(target)
    }
}
