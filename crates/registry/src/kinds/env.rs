//! `env.storage.*` and `env.variable` entries: reading their fields into the env system's
//! configuration types.

use std::collections::BTreeMap;

use saphyr::{Scalar, YamlData};

use crate::env::{FileStorageConfig, StorageConfig, VariableConfig};
use crate::reference::{Expect, References};
use crate::source::relative_path;
use crate::walk::{Fields, Position, Walker};

/// Reads an `env.storage.<kind>` entry; `kind` is the part after `env.storage.`.
pub(crate) fn parse_storage(
    walker: &mut Walker<'_>,
    fields: &mut Fields<'_>,
    references: &mut References,
    kind: &str,
) -> Option<StorageConfig> {
    Some(match kind {
        "memory" => StorageConfig::Memory,
        "os" => StorageConfig::Os,
        "file" => StorageConfig::File(parse_file(walker, fields)?),
        "static" => StorageConfig::Static { values: parse_values(walker, fields) },
        "router" => {
            let path = fields.path("storages");
            let storages = walker.take_string_list(fields, "storages");
            if storages.is_empty() {
                walker.missing("storages", "a list of env.storage entry IDs");
            }
            StorageConfig::Router {
                storages: storages
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| references.add(walker, s, &format!("{path}[{i}]"), Expect::EnvStorage, false))
                    .collect(),
            }
        }
        _ => return None,
    })
}

fn parse_file(walker: &mut Walker<'_>, fields: &mut Fields<'_>) -> Option<FileStorageConfig> {
    let path = walker.take_string(fields, "file_path");
    if path.is_none() && !fields.has("file_path") {
        walker.missing("file_path", "the path of a .env file, relative to this YAML file");
    }
    let auto_create = walker.take_bool(fields, "auto_create").unwrap_or(false);
    let file_mode = parse_mode(walker, fields, "file_mode").unwrap_or(0o644);
    let dir_mode = parse_mode(walker, fields, "dir_mode").unwrap_or(0o755);
    Some(FileStorageConfig { path: relative_path(walker.file.dir(), &path?.value), auto_create, file_mode, dir_mode })
}

/// A Unix mode written as an octal string (`"0600"`) or a number read as octal digits (`600`).
fn parse_mode(walker: &mut Walker<'_>, fields: &mut Fields<'_>, name: &'static str) -> Option<u32> {
    let node = fields.take(name)?;
    let text = match &node.data {
        YamlData::Value(Scalar::Integer(value)) => value.to_string(),
        YamlData::Value(Scalar::String(text)) => text.to_string(),
        _ => {
            walker.expected(node, &fields.path(name), "an octal mode such as \"0644\"");
            return None;
        }
    };
    let digits = text.trim().trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o7777 => Some(mode),
        _ => {
            walker.error(
                Position::of(node),
                &fields.path(name),
                format!("`{text}` is not a file mode (expected octal such as \"0644\")"),
            );
            None
        }
    }
}

fn parse_values(walker: &mut Walker<'_>, fields: &mut Fields<'_>) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    let Some(node) = fields.take("values") else {
        return values;
    };
    let Some(mut map) = walker.fields(node, "values") else {
        return values;
    };
    for (key, _, value) in map.rest() {
        let path = format!("values.{key}");
        let text = match &value.data {
            YamlData::Value(Scalar::String(text)) => walker.expand(text, Position::of(value), &path),
            YamlData::Value(Scalar::Integer(number)) => Some(number.to_string()),
            YamlData::Value(Scalar::FloatingPoint(number)) => Some(number.to_string()),
            YamlData::Value(Scalar::Boolean(flag)) => Some(flag.to_string()),
            _ => {
                walker.expected(value, &path, "a string");
                None
            }
        };
        if let Some(text) = text {
            values.insert(key, text);
        }
    }
    values
}

/// Reads an `env.variable` entry.
pub(crate) fn parse_variable(
    walker: &mut Walker<'_>,
    fields: &mut Fields<'_>,
    references: &mut References,
) -> Option<VariableConfig> {
    let storage = match walker.take_string(fields, "storage") {
        Some(text) => references.add(walker, &text, "storage", Expect::EnvStorage, false),
        None => {
            if !fields.has("storage") {
                walker.missing("storage", "the ID of an env.storage entry");
            }
            None
        }
    };
    let variable = walker.take_string(fields, "variable").filter(|name| {
        let valid = !name.value.is_empty() && name.value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            walker.error(
                name.at,
                "variable",
                format!("`{}` is not a variable name (expected letters, digits and _)", name.value),
            );
        }
        valid
    });
    let default = walker.take_string(fields, "default").map(|s| s.value);
    let readonly = walker.take_bool(fields, "readonly").unwrap_or(false);
    Some(VariableConfig { storage: storage?, variable: variable.map(|s| s.value), default, readonly })
}
