//! Staging on PostgreSQL with `COPY … FROM STDIN` (text format) instead of multi-row `INSERT`s:
//! no bind parameters to encode and describe, no statement to parse and plan per chunk, and the
//! server inserts the rows in batches. Only for the `TEMP` staging tables of
//! [`super::staged`] imports; the service's own tables are written by set-based statements.

use std::fmt::Display;

use sqlx::PgConnection;

/// Rows in `COPY`'s text format: fields separated by tabs, one row a line, `\N` for NULL.
pub struct CopyRows {
    buf: Vec<u8>,
    /// No field written yet on the current row.
    row_start: bool,
}

impl Default for CopyRows {
    fn default() -> Self {
        CopyRows::new()
    }
}

impl CopyRows {
    /// An empty set of rows.
    pub fn new() -> CopyRows {
        CopyRows { buf: Vec::with_capacity(64 * 1024), row_start: true }
    }

    fn sep(&mut self) {
        if !self.row_start {
            self.buf.push(b'\t');
        }
        self.row_start = false;
    }

    /// A text field (escaped: backslash, tab, newline and carriage return), or NULL.
    pub fn text(&mut self, v: Option<&str>) -> &mut Self {
        self.sep();
        match v {
            None => self.buf.extend_from_slice(b"\\N"),
            Some(s) => {
                for &b in s.as_bytes() {
                    match b {
                        b'\\' => self.buf.extend_from_slice(b"\\\\"),
                        b'\t' => self.buf.extend_from_slice(b"\\t"),
                        b'\n' => self.buf.extend_from_slice(b"\\n"),
                        b'\r' => self.buf.extend_from_slice(b"\\r"),
                        _ => self.buf.push(b),
                    }
                }
            }
        }
        self
    }

    /// A field written with its `Display` (numbers, dates: nothing to escape), or NULL.
    pub fn plain<T: Display>(&mut self, v: Option<T>) -> &mut Self {
        use std::io::Write;
        self.sep();
        match v {
            None => self.buf.extend_from_slice(b"\\N"),
            // Writing into a Vec cannot fail.
            Some(v) => {
                let _ = write!(self.buf, "{v}");
            }
        }
        self
    }

    /// Ends the current row.
    pub fn end_row(&mut self) {
        self.buf.push(b'\n');
        self.row_start = true;
    }

    /// Whether no row was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Copies the rows into `table (columns)`; the number of rows copied.
    pub async fn copy_into(self, c: &mut PgConnection, table: &str, columns: &str) -> Result<u64, sqlx::Error> {
        if self.buf.is_empty() {
            return Ok(0);
        }
        let mut copy = c.copy_in_raw(&format!("COPY {table} ({columns}) FROM STDIN")).await?;
        copy.send(self.buf).await?;
        copy.finish().await
    }
}

#[cfg(test)]
mod tests {
    use super::CopyRows;

    #[test]
    fn escapes_fields_and_writes_nulls() {
        let mut r = CopyRows::new();
        r.plain(Some(7)).text(Some("a\tb\\c\nd\re")).text(None).plain(None::<i64>);
        r.end_row();
        r.text(Some("")).plain(Some(chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()));
        r.end_row();
        assert_eq!(String::from_utf8(r.buf).unwrap(), "7\ta\\tb\\\\c\\nd\\re\t\\N\t\\N\n\t2026-01-02\n");
    }
}
