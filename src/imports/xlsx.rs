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
/// `each` (see [`csvio::read_csv`]). Line numbers are sheet rows. The sheet is streamed cell by
/// cell (calamine's cell reader), never loaded whole: only one row's cells are in memory (besides
/// the workbook's shared-strings table, which calamine reads first).
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
    let Some(sheet) = book.sheet_names().first().cloned() else {
        return Err(bad("Excel 文件中没有工作表".into()));
    };
    let mut cells = book.worksheet_cells_reader(&sheet).map_err(|e| bad(format!("无法读取工作表「{sheet}」：{e}")))?;
    let mut rows = SheetRows { sheet: &sheet, header: None, record: csv::StringRecord::new() };
    // The non-empty cells of the row being read (sheet row, then (column, text) left to right).
    let mut row: Option<(u32, Vec<(u32, String)>)> = None;
    loop {
        let cell = cells.next_cell().map_err(|e| bad(format!("无法读取工作表「{sheet}」：{e}")))?;
        let Some(cell) = cell else { break };
        let (r, c) = cell.get_position();
        if row.as_ref().is_some_and(|(at, _)| *at != r)
            && let Some((at, done)) = row.take()
        {
            rows.row(at, &done, columns, each)?;
        }
        let text = text(&Data::from(cell.get_value().clone()));
        if !text.is_empty() {
            row.get_or_insert_with(|| (r, Vec::new())).1.push((c, text));
        }
    }
    if let Some((at, done)) = row.take() {
        rows.row(at, &done, columns, each)?;
    }
    match rows.header {
        Some((header, ..)) => Ok(header),
        None => Err(bad(format!("工作表「{sheet}」为空：第 1 行应为表头"))),
    }
}

/// The rows of a sheet as they are streamed: the first non-empty row is the header.
struct SheetRows<'s> {
    sheet: &'s str,
    /// The header, its first column and its width.
    header: Option<(Header, u32, usize)>,
    record: csv::StringRecord,
}

impl SheetRows<'_> {
    fn row(
        &mut self,
        at: u32,
        cells: &[(u32, String)],
        columns: &'static [Column],
        each: &mut dyn FnMut(Result<Record<'_>, FieldError>),
    ) -> Result<(), ApiError> {
        let line = at as u64 + 1;
        let Some((header, first, used)) = &self.header else {
            let Some(first) = cells.first().map(|(c, _)| *c) else { return Ok(()) };
            let used = cells.last().map_or(0, |(c, _)| (c - first) as usize + 1);
            let mut names = vec![""; used];
            for (c, t) in cells {
                names[(c - first) as usize] = t;
            }
            let sheet = self.sheet;
            let header = csvio::header(names.iter().copied(), columns)
                .map_err(|errors| {
                    let errors: Vec<FieldError> = errors
                        .into_iter()
                        .map(|mut e| {
                            e.line = Some(line);
                            e.message = format!(
                                "工作表「{sheet}」{}",
                                e.message.replacen("第 1 行", &format!("第 {line} 行"), 1)
                            );
                            e
                        })
                        .collect();
                    let detail = errors.first().map(|e| e.message.clone()).unwrap_or_default();
                    ApiError::invalid_many(detail, errors)
                })?
                .on_sheet(sheet, first as usize);
            self.header = Some((header, first, used));
            return Ok(());
        };
        if cells.iter().any(|(c, _)| c < first) {
            each(Err(FieldError::line(line, None, format!("工作表「{}」第 {line} 行在表头左侧有数据", self.sheet))));
            return Ok(());
        }
        self.record.clear();
        let mut next = cells.iter().peekable();
        for i in 0..*used {
            match next.peek() {
                Some((c, t)) if (c - first) as usize == i => {
                    self.record.push_field(t);
                    next.next();
                }
                _ => self.record.push_field(""),
            }
        }
        csvio::each_record(header, line, &self.record, each);
        Ok(())
    }
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
