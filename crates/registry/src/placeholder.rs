//! `${env:NAME}` / `${env:NAME|default}` placeholders in string fields, with `$${` as the escape
//! for a literal `${`. Pure text handling; the caller supplies the variable lookup.

/// Why a string's placeholders could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlaceholderError {
    /// `${env:NAME}` without a default, and NAME has no value.
    Missing { name: String },
    /// `${env:` without the closing `}`.
    Unterminated,
    /// `${env:}` or `${env:|x}`.
    EmptyName,
}

impl PlaceholderError {
    /// The message part of a diagnostic: what is wrong (what is expected).
    pub(crate) fn message(&self) -> String {
        match self {
            PlaceholderError::Missing { name } => {
                format!("environment variable `{name}` is not set (set it, or give a default: `${{env:{name}|value}}`)")
            }
            PlaceholderError::Unterminated => {
                "unterminated placeholder (expected `${env:NAME}` or `${env:NAME|default}`)".to_owned()
            }
            PlaceholderError::EmptyName => {
                "placeholder without a variable name (expected `${env:NAME}` or `${env:NAME|default}`)".to_owned()
            }
        }
    }
}

/// Whether `text` needs expanding at all (has a placeholder or an escape).
pub(crate) fn has_placeholder(text: &str) -> bool {
    text.contains("${")
}

/// Expands every placeholder in `text`; `lookup` returns a variable's value (`None` = unset).
///
/// A `${...}` that is not an `env:` placeholder is kept as written.
pub(crate) fn expand(text: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> Result<String, PlaceholderError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('$') {
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(body) = after.strip_prefix("env:") else {
            out.push_str("${");
            rest = after;
            continue;
        };
        let end = body.find('}').ok_or(PlaceholderError::Unterminated)?;
        let (name, default) = match body[..end].split_once('|') {
            Some((name, default)) => (name.trim(), Some(default)),
            None => (body[..end].trim(), None),
        };
        if name.is_empty() {
            return Err(PlaceholderError::EmptyName);
        }
        match lookup(name).filter(|value| !value.is_empty()) {
            Some(value) => out.push_str(&value),
            None => match default {
                Some(default) => out.push_str(default),
                None => {
                    return Err(PlaceholderError::Missing { name: name.to_owned() });
                }
            },
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("temporal.internal".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_whole_and_mixed_fields() {
        assert_eq!(expand("${env:HOST}", lookup).unwrap(), "temporal.internal");
        assert_eq!(expand("${env:HOST}:7233", lookup).unwrap(), "temporal.internal:7233");
        assert_eq!(expand("${env:PORT|7233}", lookup).unwrap(), "7233");
        assert_eq!(expand("${env:EMPTY|fallback}", lookup).unwrap(), "fallback");
        assert_eq!(expand("a${env:X|}b", lookup).unwrap(), "ab");
        assert_eq!(expand("${env:URL|http://x:1/}", lookup).unwrap(), "http://x:1/");
    }

    #[test]
    fn keeps_escapes_and_foreign_placeholders() {
        assert_eq!(expand("$${env:HOST}", lookup).unwrap(), "${env:HOST}");
        assert_eq!(expand("${HOME} and $$", lookup).unwrap(), "${HOME} and $$");
        assert!(!has_placeholder("plain"));
    }

    #[test]
    fn reports_missing_and_malformed() {
        assert_eq!(expand("${env:NOPE}", lookup), Err(PlaceholderError::Missing { name: "NOPE".to_owned() }));
        assert_eq!(expand("${env:HOST", lookup), Err(PlaceholderError::Unterminated));
        assert_eq!(expand("${env:|x}", lookup), Err(PlaceholderError::EmptyName));
    }
}
