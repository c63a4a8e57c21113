//! CSV import and export shared by every bulk endpoint: English or Chinese headers, UTF-8 with or
//! without BOM, and errors that carry line, column name and column number.

use crate::error::FieldError;

/// One column an import understands.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Canonical (English) header.
    pub name: &'static str,
    /// Chinese header (what exports offered to Excel use).
    pub zh: &'static str,
    /// Other accepted spellings.
    pub aliases: &'static [&'static str],
    /// Whether the column must be present.
    pub required: bool,
}

impl Column {
    /// A required column.
    pub const fn required(name: &'static str, zh: &'static str) -> Column {
        Column { name, zh, aliases: &[], required: true }
    }

    /// An optional column.
    pub const fn optional(name: &'static str, zh: &'static str) -> Column {
        Column { name, zh, aliases: &[], required: false }
    }

    fn matches(&self, header: &str) -> bool {
        let h = header.trim();
        h.eq_ignore_ascii_case(self.name) || h == self.zh || self.aliases.contains(&h)
    }
}

/// One data row of an imported file.
#[derive(Debug)]
pub struct Record {
    /// 1-based line number in the file.
    pub line: u64,
    values: Vec<Option<String>>,
    positions: Vec<Option<u64>>,
    names: Vec<&'static str>,
}

impl Record {
    fn idx(&self, name: &str) -> usize {
        self.names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("column {name} is not in the import's column list"))
    }

    /// The trimmed value of a column; None when the column is absent or the cell empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values[self.idx(name)].as_deref().map(str::trim).map(unneutralise).filter(|v| !v.is_empty())
    }

    /// An error about a column of this row (with the column's position when the file has it).
    pub fn err(&self, name: &'static str, message: impl Into<String>) -> FieldError {
        let col = self.positions[self.idx(name)];
        FieldError {
            field: Some(name.to_string()),
            line: Some(self.line),
            column: col,
            message: format!("第 {} 行「{name}」列：{}", self.line, message.into()),
        }
    }

    /// An error about the row as a whole.
    pub fn row_err(&self, message: impl Into<String>) -> FieldError {
        FieldError {
            field: None,
            line: Some(self.line),
            column: None,
            message: format!("第 {} 行：{}", self.line, message.into()),
        }
    }

    /// A required value, or an error naming the column.
    pub fn need(&self, name: &'static str, errors: &mut Vec<FieldError>) -> Option<&str> {
        let v = self.get(name);
        if v.is_none() {
            errors.push(self.err(name, "不能为空"));
        }
        v
    }
}

/// Parses a CSV text against the column list. Returns the records, or every header and
/// structure error found (with line numbers).
pub fn parse(text: &str, columns: &[Column]) -> Result<Vec<Record>, Vec<FieldError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    let mut errors = Vec::new();
    let mut iter = rdr.records();
    let header = match iter.next() {
        None => return Err(vec![FieldError::line(1, None, "文件为空：第 1 行应为表头")]),
        Some(Err(e)) => return Err(vec![FieldError::line(1, None, format!("第 1 行（表头）无法解析：{e}"))]),
        Some(Ok(h)) => h,
    };
    let mut map: Vec<Option<usize>> = vec![None; columns.len()];
    for (i, h) in header.iter().enumerate() {
        match columns.iter().position(|c| c.matches(h)) {
            Some(ci) if map[ci].is_some() => {
                errors.push(FieldError::line(1, Some((h, i as u64 + 1)), format!("第 1 行：表头「{h}」重复")))
            }
            Some(ci) => map[ci] = Some(i),
            None => {
                let known: Vec<String> = columns.iter().map(|c| format!("{}/{}", c.name, c.zh)).collect();
                errors.push(FieldError::line(
                    1,
                    Some((h, i as u64 + 1)),
                    format!("第 1 行：未知的表头「{h}」；可用的表头：{}", known.join(", ")),
                ))
            }
        }
    }
    for (ci, c) in columns.iter().enumerate() {
        if c.required && map[ci].is_none() {
            errors.push(FieldError::line(1, None, format!("第 1 行：缺少必需的表头「{}」（或「{}」）", c.name, c.zh)));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let names: Vec<&'static str> = columns.iter().map(|c| c.name).collect();
    let positions: Vec<Option<u64>> = map.iter().map(|m| m.map(|i| i as u64 + 1)).collect();
    let mut records = Vec::new();
    // A file with an error on every line keeps only the first errors in memory (and counts
    // the rest), and stops keeping records once it is certain to fail.
    let mut dropped = 0;
    for rec in iter {
        crate::error::cap_errors(&mut errors, &mut dropped);
        if !errors.is_empty() {
            records.clear();
        }
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                errors.push(FieldError::line(line, None, format!("第 {line} 行无法解析：{e}")));
                continue;
            }
        };
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if rec.iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        if rec.len() != header.len() {
            errors.push(FieldError::line(
                line,
                None,
                format!("第 {line} 行有 {} 列，表头有 {} 列", rec.len(), header.len()),
            ));
            continue;
        }
        if !errors.is_empty() {
            continue;
        }
        let values = map.iter().map(|m| m.map(|i| rec.get(i).unwrap_or("").to_string())).collect();
        records.push(Record { line, values, positions: positions.clone(), names: names.clone() });
    }
    crate::error::cap_errors(&mut errors, &mut dropped);
    crate::error::finish_errors(&mut errors, dropped);
    if errors.is_empty() { Ok(records) } else { Err(errors) }
}

/// Parses an optional number cell, recording an error for a non-number.
pub fn opt_f64(rec: &Record, name: &'static str, errors: &mut Vec<FieldError>) -> Option<f64> {
    let v = rec.get(name)?;
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() => Some(x),
        _ => {
            errors.push(rec.err(name, format!("「{v}」不是数字")));
            None
        }
    }
}

/// Whether an export should use Chinese headers (`?header=zh`, the default) or English ones.
pub fn header_row(columns: &[Column], chinese: bool) -> Vec<&'static str> {
    columns.iter().map(|c| if chinese { c.zh } else { c.name }).collect()
}

/// Characters that make a spreadsheet treat a cell as a formula (OWASP "CSV injection").
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell as written to an export: a cell that a spreadsheet would run as a formula gets a
/// leading `'` (OWASP's recommendation), except a plain number such as `-5`; imports remove that
/// quote again (see [`Record::get`]), so exports re-import unchanged.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some(c) if FORMULA_START.contains(&c) && cell.parse::<f64>().is_err() => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// Undoes [`neutralise`] on an imported cell.
fn unneutralise(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_START) && rest.parse::<f64>().is_err() => rest,
        _ => cell,
    }
}

/// Writes an export: UTF-8 with a BOM (so Excel reads the Chinese correctly), every cell
/// neutralised against formula injection, on the blocking pool ([`crate::blocking::cpu`]).
pub async fn write<H: AsRef<str> + Send + 'static>(
    header: Vec<H>,
    rows: Vec<Vec<String>>,
) -> Result<Vec<u8>, crate::error::ApiError> {
    use crate::error::ApiError;
    crate::blocking::cpu(move || {
        let internal = |e: csv::Error| ApiError::Internal(e.into());
        let mut w = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
        w.write_record(header.iter().map(|h| h.as_ref())).map_err(internal)?;
        for r in rows {
            w.write_record(r.iter().map(|c| neutralise(c).into_owned())).map_err(internal)?;
        }
        w.into_inner().map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))
    })
    .await?
}
