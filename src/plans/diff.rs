//! Field-by-field differences between two versions' content.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// One changed value.
#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq)]
pub struct Change {
    /// Path of the value, e.g. `response_levels[0].supplies[1].quantity`.
    pub path: String,
    /// Value in the older version (absent: added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// Value in the newer version (absent: removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// The differences from `a` to `b`: objects compared key by key, arrays element by element
/// (an inserted element shows as changes to the following ones; plans are short enough).
pub fn diff(a: &Value, b: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk(String::new(), Some(a), Some(b), &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn walk(path: String, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Change>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(join(&path, k), x.get(k), y.get(k), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for i in 0..x.len().max(y.len()) {
                walk(format!("{path}[{i}]"), x.get(i), y.get(i), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Change { path, before: a.cloned(), after: b.cloned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_changed_added_and_removed_values() {
        let a = json!({"title": "A", "levels": [{"q": 1}, {"q": 2}], "gone": true});
        let b = json!({"title": "B", "levels": [{"q": 1}, {"q": 3}, {"q": 4}]});
        let d = diff(&a, &b);
        let paths: Vec<&str> = d.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, vec!["gone", "levels[1].q", "levels[2]", "title"]);
        assert_eq!(d[1].before, Some(json!(2)));
        assert_eq!(d[2].before, None);
        assert!(diff(&a, &a).is_empty());
    }
}
