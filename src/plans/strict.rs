//! Every structural error of a plan file, not just the first: serde stops at the first unknown
//! field or bad value, so when a file does not deserialize, each top-level field, each element of
//! an array and each requirement row is deserialized on its own and every failure is reported
//! with its path (mapped to a line by the caller).

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::{DrillRequirement, ForceNeed, MemberUnit, PlanKind, ResponseLevel, Sections, SupplyNeed};
use crate::regions::RegionCode;
use crate::vocab::Hazard;

/// Top-level fields and whether they are required.
const FIELDS: &[(&str, bool)] = &[
    ("key", false),
    ("title", true),
    ("kind", true),
    ("region", true),
    ("owning_unit", true),
    ("lead_department", true),
    ("hazards", true),
    ("member_units", false),
    ("sections", true),
    ("response_levels", true),
    ("drill", false),
    ("evaluation_interval_months", false),
];

/// A structural error: the path of the offending value (`response_levels[1].supplies[0].quantity`,
/// empty for the document) and the message.
pub type PathError = (String, String);

fn join(base: &str, inner: &str) -> String {
    match inner {
        "" | "." => base.to_string(),
        _ if inner.starts_with('[') => format!("{base}{inner}"),
        _ => format!("{base}.{inner}"),
    }
}

fn check<T: DeserializeOwned>(path: &str, v: &Value, out: &mut Vec<PathError>) {
    if let Err(e) = serde_path_to_error::deserialize::<_, T>(v.clone()) {
        out.push((join(path, &e.path().to_string()), e.into_inner().message().to_string()));
    }
}

fn each<T: DeserializeOwned>(path: &str, v: &Value, out: &mut Vec<PathError>) {
    match v.as_array() {
        Some(items) => {
            for (i, item) in items.iter().enumerate() {
                check::<T>(&format!("{path}[{i}]"), item, out);
            }
        }
        None => check::<Vec<T>>(path, v, out),
    }
}

fn response_levels(v: &Value, out: &mut Vec<PathError>) {
    let Some(levels) = v.as_array() else {
        check::<Vec<ResponseLevel>>("response_levels", v, out);
        return;
    };
    for (i, level) in levels.iter().enumerate() {
        let path = format!("response_levels[{i}]");
        let Some(table) = level.as_table() else {
            check::<ResponseLevel>(&path, level, out);
            continue;
        };
        let mut rest = table.clone();
        if let Some(s) = rest.remove("supplies") {
            each::<SupplyNeed>(&format!("{path}.supplies"), &s, out);
        }
        if let Some(f) = rest.remove("forces") {
            each::<ForceNeed>(&format!("{path}.forces"), &f, out);
        }
        check::<ResponseLevel>(&path, &Value::Table(rest), out);
    }
}

/// Every structural error of a document (unknown or missing fields, wrong types, bad values).
pub fn errors(text: &str) -> Vec<PathError> {
    let mut out = Vec::new();
    let doc: Table = match text.parse() {
        Ok(t) => t,
        Err(e) => return vec![(String::new(), e.message().to_string())],
    };
    for (name, required) in FIELDS {
        if *required && !doc.contains_key(*name) {
            out.push((String::new(), format!("missing field `{name}`")));
        }
    }
    for (name, v) in &doc {
        match name.as_str() {
            "key" | "title" | "owning_unit" | "lead_department" => check::<String>(name, v, &mut out),
            "kind" => check::<PlanKind>(name, v, &mut out),
            "region" => check::<RegionCode>(name, v, &mut out),
            "hazards" => each::<Hazard>(name, v, &mut out),
            "member_units" => each::<MemberUnit>(name, v, &mut out),
            "sections" => check::<Sections>(name, v, &mut out),
            "response_levels" => response_levels(v, &mut out),
            "drill" => check::<DrillRequirement>(name, v, &mut out),
            "evaluation_interval_months" => check::<u32>(name, v, &mut out),
            other => {
                let known: Vec<String> = FIELDS.iter().map(|(f, _)| format!("`{f}`")).collect();
                out.push((other.to_string(), format!("unknown field `{other}`, expected one of {}", known.join(", "))));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_error_not_just_the_first() {
        let text = r#"
title = "t"
kind = "specail"
region = "152523000000"
owning_unit = "u"
colour = "red"
hazards = ["drought", "volcano"]
[sections]
organization = "o"
prevention = "p"
response = "r"
support = "s"
recovery = "r"
[[response_levels]]
level = 4
criteria = "c"
[[response_levels.supplies]]
item_code = "9999999"
quantity = 1
within_km = 1
[[response_levels.forces]]
specialty = "dragons"
headcount = 1
within_km = 1
"#;
        let paths: Vec<String> = errors(text).into_iter().map(|(p, _)| p).collect();
        for p in [
            "",
            "kind",
            "colour",
            "hazards[1]",
            "response_levels[0].supplies[0].item_code",
            "response_levels[0].forces[0].specialty",
        ] {
            assert!(paths.iter().any(|x| x == p), "{p:?} not in {paths:?}");
        }
    }
}
