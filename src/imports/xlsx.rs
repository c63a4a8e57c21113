//! Excel workbooks (`.xlsx`): the first sheet of an uploaded workbook read into the same rows as
//! a CSV file (calamine), and exports written as a one-sheet workbook (rust_xlsxwriter).
//!
//! Cells are read as text the way a person sees them: whole numbers without `.0`, dates as
//! `YYYY-MM-DD`. Errors name the sheet, the sheet row and the column letter.

use calamine::{Data, Reader, Xlsx};

use crate::csvio::{self, Column, Header, Record};
use crate::error::{ApiError, FieldError};

/// The media type of `.xlsx` files.
pub const MEDIA_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// Whether a body is a workbook (an `.xlsx` file is a ZIP archive).
pub fn is_xlsx(body: &[u8]) -> bool {
    body.starts_with(b"PK\x03\x04")
}

fn text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => {
            let (y, m, day, h, min, s, _) = d.to_ymd_hms_milli();
            if (h, min, s) == (0, 0, 0) {
                format!("{y:04}-{m:02}-{day:02}")
            } else {
                format!("{y:04}-{m:02}-{day:02} {h:02}:{min:02}:{s:02}")
            }
        }
        Data::Error(e) => format!("#{e}"),
    }
}

/// Reads the first sheet of a workbook row by row against the column list, handing each row to
/// `each` (see [`csvio::read_csv`]). Line numbers are sheet rows.
pub fn read(
    body: impl std::io::Read + std::io::Seek,
    columns: &'static [Column],
    each: &mut dyn FnMut(Result<Record<'_>, FieldError>),
) -> Result<Header, ApiError> {
    let bad = |detail: String| ApiError::BadRequest {
        detail: detail.clone(),
        errors: vec![FieldError::line(1, None, detail)],
    };
    let mut book: Xlsx<_> = Xlsx::new(body).map_err(|e| bad(format!("无法读取 Excel 文件（.xlsx）：{e}")))?;
    let sheet = book.sheet_names().first().cloned().unwrap_or_default();
    let range = match book.worksheet_range_at(0) {
        None => return Err(bad("Excel 文件中没有工作表".into())),
        Some(Err(e)) => return Err(bad(format!("无法读取工作表「{sheet}」：{e}"))),
        Some(Ok(r)) => r,
    };
    let (first_row, first_col) = range.start().unwrap_or((0, 0));
    let mut rows = range.rows();
    let header_line = first_row as u64 + 1;
    let Some(head) = rows.next() else {
        return Err(bad(format!("工作表「{sheet}」为空：第 1 行应为表头")));
    };
    let names: Vec<String> = head.iter().map(text).collect();
    // Trailing empty header cells (a formatted but empty column) are not columns.
    let used = names.iter().rposition(|n| !n.trim().is_empty()).map_or(0, |i| i + 1);
    let header = csvio::header(names[..used].iter().map(String::as_str), columns)
        .map_err(|errors| {
            let errors: Vec<FieldError> = errors
                .into_iter()
                .map(|mut e| {
                    e.line = Some(header_line);
                    e.message = format!(
                        "工作表「{sheet}」{}",
                        e.message.replacen("第 1 行", &format!("第 {header_line} 行"), 1)
                    );
                    e
                })
                .collect();
            let detail = errors.first().map(|e| e.message.clone()).unwrap_or_default();
            ApiError::invalid_many(detail, errors)
        })?
        .on_sheet(&sheet, first_col as usize);
    let mut cells = csv::StringRecord::new();
    for (i, row) in rows.enumerate() {
        cells.clear();
        for c in row.iter().take(used) {
            cells.push_field(&text(c));
        }
        for _ in row.len()..used {
            cells.push_field("");
        }
        csvio::each_record(&header, header_line + 1 + i as u64, &cells, each);
    }
    Ok(header)
}

/// Writes an export as a one-sheet workbook: every cell as text (codes keep their leading
/// zeros) and neutralised against formula injection like the CSV exports.
pub fn write<H: AsRef<str>>(sheet: &str, header: &[H], rows: &[Vec<String>]) -> Result<Vec<u8>, ApiError> {
    let internal = |e: rust_xlsxwriter::XlsxError| ApiError::Internal(anyhow::anyhow!("xlsx: {e}"));
    let mut book = rust_xlsxwriter::Workbook::new();
    let ws = book.add_worksheet();
    ws.set_name(sheet).map_err(internal)?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (c, h) in header.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, h.as_ref(), &bold).map_err(internal)?;
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            if !cell.is_empty() {
                ws.write_string(r as u32 + 1, c as u16, csvio::neutralise(cell)).map_err(internal)?;
            }
        }
    }
    book.save_to_buffer().map_err(internal)
}

/// The `.xlsx` twin of a CSV export route: the same handler, guard and query at `path`, answering
/// a workbook (the handler picks the format from the route's path, see [`csvio::export`]).
pub fn twin(csv: &crate::http::router::Route, path: &'static str) -> crate::http::router::Route {
    let mut r = csv.clone();
    r.path = path;
    r.doc.response_type = Some(MEDIA_TYPE);
    r.doc.description =
        "Excel 工作簿（.xlsx，一个工作表），表头、单元格和脱敏规则与同名 CSV 导出相同，可原样重新导入。";
    r
}
