//! CSV import and export shared by every bulk endpoint: English or Chinese headers, UTF-8 with or
//! without BOM, and errors that carry line, column name and column number.

use crate::error::{ApiError, FieldError};

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

/// The header of an imported file: which of the import's columns sits at which position.
#[derive(Debug, Clone)]
pub struct Header {
    columns: &'static [Column],
    /// For each of `columns`, its 0-based position in the file.
    map: Vec<Option<usize>>,
    /// Number of cells in the header row.
    width: usize,
    /// A spreadsheet's sheet name and the 0-based column its used range starts at (errors then
    /// name the sheet and the column letter).
    sheet: Option<(String, usize)>,
}

impl Header {
    fn idx(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("column {name} is not in the import's column list"))
    }

    /// The 1-based position of a column in the file, when the file has it.
    pub fn position(&self, name: &str) -> Option<u64> {
        let ci = self.columns.iter().position(|c| c.name == name)?;
        self.map[ci].map(|i| i as u64 + 1)
    }

    /// An error about a column of a line (with the column's position when the file has it).
    pub fn err(&self, line: u64, name: &'static str, message: impl Into<String>) -> FieldError {
        let position = self.position(name);
        let message = match (&self.sheet, position) {
            (Some((sheet, first)), Some(p)) => {
                let letter = column_letter(*first + p as usize);
                format!("工作表「{sheet}」第 {line} 行 {letter} 列「{name}」：{}", message.into())
            }
            _ => format!("第 {line} 行「{name}」列：{}", message.into()),
        };
        let column = position.map(|p| p + self.sheet.as_ref().map_or(0, |(_, first)| *first as u64));
        FieldError { field: Some(name.to_string()), line: Some(line), column, message }
    }

    /// Marks the header as a spreadsheet's: errors name the sheet and the column letter.
    pub fn on_sheet(mut self, name: &str, first_column: usize) -> Header {
        self.sheet = Some((name.to_string(), first_column));
        self
    }

    /// An error about a line as a whole.
    pub fn row_err(line: u64, message: impl Into<String>) -> FieldError {
        FieldError {
            field: None, line: Some(line), column: None, message: format!("第 {line} 行：{}", message.into())
        }
    }

    /// The canonical names of the columns the file has, in the import's order.
    pub fn present(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns.iter().zip(&self.map).filter(|(_, m)| m.is_some()).map(|(c, _)| c.name)
    }
}

/// One data row of an imported file, read in place (nothing of it outlives the row).
#[derive(Debug)]
pub struct Record<'h> {
    /// 1-based line number in the file (the sheet row of a spreadsheet).
    pub line: u64,
    cells: &'h csv::StringRecord,
    header: &'h Header,
}

impl Record<'_> {
    /// The trimmed value of a column; None when the column is absent or the cell empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        let i = self.header.map[self.header.idx(name)]?;
        Some(unneutralise(self.cells.get(i)?.trim())).filter(|v| !v.is_empty())
    }

    /// An error about a column of this row (with the column's position when the file has it).
    pub fn err(&self, name: &'static str, message: impl Into<String>) -> FieldError {
        self.header.err(self.line, name, message)
    }

    /// An error about the row as a whole.
    pub fn row_err(&self, message: impl Into<String>) -> FieldError {
        Header::row_err(self.line, message)
    }

    /// A required value, or an error naming the column.
    pub fn need(&self, name: &'static str, errors: &mut Vec<FieldError>) -> Option<&str> {
        let v = self.get(name);
        if v.is_none() {
            errors.push(self.err(name, "不能为空"));
        }
        v
    }

    /// The row as `{column: value}` (canonical column names, cells as read), for previews.
    pub fn to_json(&self) -> serde_json::Value {
        let map = self
            .header
            .present()
            .map(|name| (name.to_string(), self.get(name).map_or(serde_json::Value::Null, |v| v.into())))
            .collect();
        serde_json::Value::Object(map)
    }
}

/// Matches a header row against the column list; every unknown, duplicate or missing header is
/// an error on line 1.
pub fn header<'a>(
    cells: impl IntoIterator<Item = &'a str>,
    columns: &'static [Column],
) -> Result<Header, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut map: Vec<Option<usize>> = vec![None; columns.len()];
    let mut width = 0;
    for (i, h) in cells.into_iter().enumerate() {
        width = i + 1;
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
    if errors.is_empty() { Ok(Header { columns, map, width, sheet: None }) } else { Err(errors) }
}

/// Hands each data row of a sheet (a header row, then data rows with their line numbers) to
/// `each`, one at a time: a row with the wrong number of cells is an error, an empty row is
/// skipped. The one row-by-row reader behind CSV and spreadsheet imports.
pub fn each_record(
    header: &Header,
    line: u64,
    cells: &csv::StringRecord,
    each: &mut dyn FnMut(Result<Record<'_>, FieldError>),
) {
    if cells.iter().all(|v| v.trim().is_empty()) {
        return;
    }
    if cells.len() != header.width {
        each(Err(FieldError::line(
            line,
            None,
            format!("第 {line} 行有 {} 列，表头有 {} 列", cells.len(), header.width),
        )));
        return;
    }
    each(Ok(Record { line, cells, header }));
}

/// Reads a CSV text (BOM allowed) row by row against the column list, handing each row to
/// `each` without keeping it. Returns the header, or the header errors (line 1).
pub fn read_csv(
    text: &str,
    columns: &'static [Column],
    each: &mut dyn FnMut(Result<Record<'_>, FieldError>),
) -> Result<Header, Vec<FieldError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    read_csv_from(text.as_bytes(), columns, each)
}

/// [`read_csv`] from a reader of UTF-8 text without a byte-order mark (a spooled upload, checked
/// beforehand), reading it once in a streaming pass.
pub fn read_csv_from(
    input: impl std::io::Read,
    columns: &'static [Column],
    each: &mut dyn FnMut(Result<Record<'_>, FieldError>),
) -> Result<Header, Vec<FieldError>> {
    let mut rdr =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).buffer_capacity(256 * 1024).from_reader(input);
    let mut cells = csv::StringRecord::new();
    let header = match rdr.read_record(&mut cells) {
        Ok(false) => return Err(vec![FieldError::line(1, None, "文件为空：第 1 行应为表头")]),
        Err(e) => return Err(vec![FieldError::line(1, None, format!("第 1 行（表头）无法解析：{e}"))]),
        Ok(true) => header(cells.iter(), columns)?,
    };
    loop {
        match rdr.read_record(&mut cells) {
            Ok(false) => break,
            Ok(true) => {
                let line = cells.position().map(|p| p.line()).unwrap_or(0);
                each_record(&header, line, &cells, each);
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                each(Err(FieldError::line(line, None, format!("第 {line} 行无法解析：{e}"))));
                // A broken quote can leave the reader unable to go on (an I/O error cannot
                // happen on text in memory); UTF-8 was checked before.
                if !matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. } | csv::ErrorKind::Utf8 { .. }) {
                    break;
                }
            }
        }
    }
    Ok(header)
}

/// The spreadsheet letter of a 1-based column number (1 → A, 27 → AA).
pub fn column_letter(mut n: usize) -> String {
    let mut out = Vec::new();
    while n > 0 {
        let r = (n - 1) % 26;
        out.push(b'A' + r as u8);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
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

/// Answers an export as CSV or, when the route ends in `.xlsx`, as an Excel workbook with one
/// sheet named `sheet` (the same header and cells, neutralised the same way).
pub async fn export(
    route: &str,
    sheet: &'static str,
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
) -> Result<warp::reply::Response, crate::error::ApiError> {
    use crate::http::ctx::body;
    use crate::imports::xlsx;
    if route.ends_with(".xlsx") {
        let data = crate::blocking::cpu(move || xlsx::write(sheet, &header, &rows)).await??;
        return Ok(body(xlsx::MEDIA_TYPE, data));
    }
    Ok(body("text/csv; charset=utf-8", write(header, rows).await?))
}

/// Query of an export that holds no personal data.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderQuery {
    /// `zh` (default: Chinese headers, for Excel) or `en`.
    #[schemars(regex(pattern = r"^(zh|en)$"))]
    pub header: Option<String>,
}

impl HeaderQuery {
    /// Whether headers are Chinese.
    pub fn chinese(&self) -> Result<bool, ApiError> {
        chinese(self.header.as_deref())
    }
}

/// Query of an export that holds personal data (depot managers' phones, members' ID numbers
/// and phones): masked unless `reveal` is asked for, even for admins.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `zh` (default: Chinese headers, for Excel) or `en`.
    #[schemars(regex(pattern = r"^(zh|en)$"))]
    pub header: Option<String>,
    /// Personal data in full (needs the personal-information permission; every revealed row is
    /// audited). Masked otherwise.
    #[serde(default)]
    pub reveal: bool,
}

impl ExportQuery {
    /// Whether headers are Chinese.
    pub fn chinese(&self) -> Result<bool, ApiError> {
        chinese(self.header.as_deref())
    }
}

/// `header=zh` (or none) gives Chinese headers, `header=en` English ones.
fn chinese(header: Option<&str>) -> Result<bool, ApiError> {
    match header {
        None | Some("zh") => Ok(true),
        Some("en") => Ok(false),
        Some(other) => Err(ApiError::invalid("header", format!("header「{other}」无效，应为 zh 或 en"))),
    }
}
