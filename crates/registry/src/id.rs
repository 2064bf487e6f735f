//! `EntryId`: the `namespace:name` identity of an entry, and how bare references resolve.

use std::fmt;

/// An entry's identity, `namespace:name`, split on the first `:`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    namespace: String,
    name: String,
}

impl EntryId {
    /// Builds an ID from its two halves (not validated; the loader checks names it reads).
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        EntryId { namespace: namespace.into(), name: name.into() }
    }

    /// Parses `ns:name`; a string without `:` resolves against `current_namespace`.
    ///
    /// Returns `None` for an empty name or an empty namespace before the `:`.
    pub fn resolve(reference: &str, current_namespace: &str) -> Option<Self> {
        let (namespace, name) = match reference.split_once(':') {
            Some((namespace, name)) => (namespace, name),
            None => (current_namespace, reference),
        };
        (!namespace.is_empty() && !name.is_empty()).then(|| EntryId::new(namespace, name))
    }

    /// The namespace half (`app.billing` in `app.billing:charge`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The name half (`charge` in `app.billing:charge`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.namespace, self.name)
    }
}

/// Whether `text` is a valid namespace (`app`, `app.billing`, `my-app.v2`).
pub(crate) fn is_valid_namespace(text: &str) -> bool {
    !text.is_empty() && text.split('.').all(is_valid_name)
}

/// Whether `text` is a valid entry name: letters, digits, `_`, `-`, `.`.
pub(crate) fn is_valid_name(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_bare_and_full_references() {
        assert_eq!(EntryId::resolve("worker", "app"), Some(EntryId::new("app", "worker")));
        assert_eq!(EntryId::resolve("other:worker", "app"), Some(EntryId::new("other", "worker")));
        assert_eq!(EntryId::resolve("a:b:c", "app"), Some(EntryId::new("a", "b:c")));
        assert_eq!(EntryId::resolve(":b", "app"), None);
        assert_eq!(EntryId::resolve("", "app"), None);
        assert_eq!(EntryId::new("app.billing", "charge").to_string(), "app.billing:charge");
    }

    #[test]
    fn validates_names() {
        assert!(is_valid_namespace("app.billing"));
        assert!(!is_valid_namespace("app..billing"));
        assert!(!is_valid_namespace("app:x"));
        assert!(is_valid_name("order_workflow"));
        assert!(!is_valid_name("has space"));
    }
}
