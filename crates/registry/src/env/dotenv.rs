//! The `.env` file format: `KEY=VALUE` lines, `#` comments, optional `export ` and quotes.
//! Pure text functions; the file storage does the I/O.

use std::collections::BTreeMap;

/// Parses `.env` text into its variables (later lines win).
pub(crate) fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (key, raw) = line.split_once('=')?;
    let key = key.trim();
    if key.is_empty() {
        return None;
    }
    Some((key.to_owned(), parse_value(raw.trim())))
}

fn parse_value(raw: &str) -> String {
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.rfind('"').map(|end| &r[..end])) {
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        }
        return out;
    }
    if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.rfind('\'').map(|end| &r[..end])) {
        return inner.to_owned();
    }
    match raw.find(" #") {
        Some(comment) => raw[..comment].trim_end().to_owned(),
        None => raw.to_owned(),
    }
}

/// `KEY=VALUE` with the value quoted when it would not survive unquoted.
pub(crate) fn format_line(key: &str, value: &str) -> String {
    let plain = !value.is_empty() && value.chars().all(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '#' | '\\'));
    if plain || value.is_empty() {
        return format!("{key}={value}");
    }
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").replace('\t', "\\t");
    format!("{key}=\"{escaped}\"")
}

/// `text` with `key` set to `value`: the existing line is replaced in place, else one is appended.
pub(crate) fn upsert(text: &str, key: &str, value: &str) -> String {
    let mut replaced = false;
    let mut lines: Vec<String> = text
        .lines()
        .map(|line| match parse_line(line) {
            Some((existing, _)) if existing == key && !replaced => {
                replaced = true;
                format_line(key, value)
            }
            _ => line.to_owned(),
        })
        .collect();
    if !replaced {
        lines.push(format_line(key, value));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let vars = parse(
            "# comment\nA=1\nexport B = two\nC=\"quoted # not comment\\n\"\nD='single'\nE=value # note\n\nbad line\nA=3\n",
        );
        assert_eq!(vars["A"], "3");
        assert_eq!(vars["B"], "two");
        assert_eq!(vars["C"], "quoted # not comment\n");
        assert_eq!(vars["D"], "single");
        assert_eq!(vars["E"], "value");
        assert_eq!(vars.len(), 5);
    }

    #[test]
    fn upserts_and_round_trips() {
        let text = upsert("# keep\nA=1\nB=2\n", "A", "new value");
        assert_eq!(text, "# keep\nA=\"new value\"\nB=2\n");
        let text = upsert(&text, "C", "x\"y");
        assert_eq!(parse(&text)["C"], "x\"y");
        assert_eq!(parse(&text)["A"], "new value");
    }
}
