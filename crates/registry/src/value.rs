//! `Value`: a free-form YAML value (for `meta` and `meta.options`) after placeholder expansion,
//! and how the walker reads one.

use std::collections::BTreeMap;

use saphyr::{Scalar, YamlData};

use crate::walk::{Node, Position, Walker, join};

/// A plain data value from a free-form part of an entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    String(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// The map inside, if this is a map.
    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(map) => Some(map),
            _ => None,
        }
    }
}

impl Walker<'_> {
    /// A free-form value with placeholders expanded in every string.
    pub(crate) fn value(&mut self, node: &Node<'_>, path: &str) -> Value {
        match &node.data {
            YamlData::Value(Scalar::Null) => Value::Null,
            YamlData::Value(Scalar::Boolean(value)) => Value::Bool(*value),
            YamlData::Value(Scalar::Integer(value)) => Value::Integer(*value),
            YamlData::Value(Scalar::FloatingPoint(value)) => Value::Float(value.into_inner()),
            YamlData::Value(Scalar::String(text)) => {
                Value::String(self.expand(text, Position::of(node), path).unwrap_or_default())
            }
            YamlData::Sequence(items) => Value::List(
                items.iter().enumerate().map(|(i, item)| self.value(item, &format!("{path}[{i}]"))).collect(),
            ),
            YamlData::Mapping(_) => Value::Map(self.value_map(node, path)),
            YamlData::Tagged(_, inner) => self.value(inner, path),
            _ => {
                self.expected(node, path, "plain data");
                Value::Null
            }
        }
    }

    /// A free-form mapping of values.
    pub(crate) fn value_map(&mut self, node: &Node<'_>, path: &str) -> BTreeMap<String, Value> {
        let Some(mut fields) = self.fields(node, path) else {
            return BTreeMap::new();
        };
        fields
            .rest()
            .into_iter()
            .map(|(key, _, value)| {
                let item_path = join(path, &key);
                (key, self.value(value, &item_path))
            })
            .collect()
    }
}
