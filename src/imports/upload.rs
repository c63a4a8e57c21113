//! An uploaded import file, never held whole in memory: the request body is read chunk by chunk
//! and counted against the import limit (413 beyond it), small files stay in memory, larger ones
//! go to a temporary file that is unlinked as soon as it is opened (so nothing is left behind,
//! even after a crash) and is read back row by row.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::http::{HeaderMap, header};

use crate::error::ApiError;

/// Bodies up to this size stay in memory.
const IN_MEMORY: usize = 256 * 1024;

/// An uploaded file.
#[derive(Clone)]
pub enum Upload {
    /// A small file (and in-process calls, such as the console's).
    Memory(Bytes),
    /// A larger file, spooled to an unlinked temporary file.
    File(Arc<Spooled>),
}

/// A body spooled to an unlinked temporary file.
pub struct Spooled {
    file: File,
    len: u64,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Upload({} bytes)", self.len())
    }
}

impl Upload {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Upload::Memory(b) => b.len() as u64,
            Upload::File(s) => s.len,
        }
    }

    /// Whether the upload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader from the start (blocking I/O: call it on the blocking pool).
    pub fn reader(&self) -> io::Result<Box<dyn ReadSeek + Send + '_>> {
        Ok(match self {
            Upload::Memory(b) => Box::new(io::Cursor::new(b.as_ref())),
            Upload::File(s) => {
                let mut f = s.file.try_clone()?;
                f.seek(SeekFrom::Start(0))?;
                Box::new(BufReader::with_capacity(256 * 1024, f))
            }
        })
    }

    /// The first `n` bytes (fewer when the file is shorter).
    pub fn head(&self, n: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(n);
        self.reader()?.take(n as u64).read_to_end(&mut out)?;
        Ok(out)
    }
}

/// What [`Upload::reader`] gives: a reader that can also seek (spreadsheets need it).
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// Reads a request body of at most `limit` bytes (413 beyond it, before anything is stored when
/// the declared length already says so) into an [`Upload`].
pub async fn receive<S, B>(headers: &HeaderMap, body: S, limit: u64) -> Result<Upload, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    read(headers, body, limit, IN_MEMORY).await
}

/// Reads a request body of at most `limit` bytes into memory (413 beyond it): every body that is
/// not an import file.
pub async fn read_body<S, B>(headers: &HeaderMap, body: S, limit: u64) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    match read(headers, body, limit, usize::MAX).await? {
        Upload::Memory(b) => Ok(b),
        // Never: nothing is spooled below `usize::MAX` bytes.
        Upload::File(_) => Err(ApiError::Internal(anyhow::anyhow!("a body was spooled unasked"))),
    }
}

/// The one body reader: counts the body against `limit`, keeps up to `in_memory` bytes in memory
/// and spools a larger body to a temporary file.
async fn read<S, B>(headers: &HeaderMap, mut body: S, limit: u64, in_memory: usize) -> Result<Upload, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    if let Some(len) =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        && len > limit
    {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut buf = BytesMut::new();
    let mut file: Option<tokio::fs::File> = None;
    let mut total: u64 = 0;
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk
            .map_err(|e| ApiError::BadRequest { detail: format!("读取请求体失败：{e}"), errors: vec![] })?;
        total += chunk.remaining() as u64;
        if total > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            buf.extend_from_slice(part);
            chunk.advance(n);
        }
        if buf.len() >= in_memory {
            let f = match file.as_mut() {
                Some(f) => f,
                None => file.insert(tokio::fs::File::from_std(temp_file().map_err(internal)?)),
            };
            tokio::io::AsyncWriteExt::write_all(f, &buf).await.map_err(internal)?;
            buf.clear();
        }
    }
    let Some(mut f) = file else { return Ok(Upload::Memory(buf.freeze())) };
    tokio::io::AsyncWriteExt::write_all(&mut f, &buf).await.map_err(internal)?;
    tokio::io::AsyncWriteExt::flush(&mut f).await.map_err(internal)?;
    let mut file = f.into_std().await;
    file.flush().map_err(internal)?;
    Ok(Upload::File(Arc::new(Spooled { file, len: total })))
}

fn internal(e: io::Error) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("spooling an upload: {e}"))
}

/// A new temporary file, already unlinked: it lives as long as its handle.
fn temp_file() -> io::Result<File> {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("yingji-upload-{}.part", crate::auth::tokens::random_hex16()));
    let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Checks an uploaded text the way [`crate::http::ctx::decode_text`] checks one in memory, reading
/// it once in blocks: no NUL character (PostgreSQL cannot store it) and valid UTF-8, each error
/// naming its line. Returns whether the text starts with a byte-order mark.
pub fn check_text(r: &mut dyn Read) -> Result<bool, ApiError> {
    let mut buf = vec![0u8; 1024 * 1024];
    // Bytes of a UTF-8 sequence cut by the block boundary, moved to the front of `buf`.
    let mut carry = 0usize;
    let mut line: u64 = 1;
    let mut bad_utf8: Option<u64> = None;
    let mut bom = None;
    loop {
        let n = fill(r, &mut buf[carry..]).map_err(internal)?;
        let filled = carry + n;
        let mut block = &buf[..filled];
        if bom.is_none() {
            let has = block.starts_with(b"\xEF\xBB\xBF");
            bom = Some(has);
            if has {
                block = &block[3..];
            }
        }
        let lines_in = |b: &[u8]| b.iter().filter(|c| **c == b'\n').count() as u64;
        if let Some(at) = block.iter().position(|b| *b == 0) {
            return Err(crate::http::ctx::nul_error(line + lines_in(&block[..at])));
        }
        let mut rest = block;
        carry = 0;
        loop {
            match std::str::from_utf8(rest) {
                Ok(_) => break,
                // A sequence cut at the end of the block: finish it with the next one.
                Err(e) if e.error_len().is_none() && n > 0 => {
                    carry = rest.len() - e.valid_up_to();
                    break;
                }
                Err(e) => {
                    let at = e.valid_up_to();
                    bad_utf8.get_or_insert(line + lines_in(&block[..block.len() - rest.len() + at]));
                    rest = &rest[at + e.error_len().unwrap_or(rest.len() - at)..];
                }
            }
        }
        line += lines_in(&block[..block.len() - carry]);
        if n == 0 {
            break;
        }
        let keep = filled - carry;
        buf.copy_within(keep..filled, 0);
    }
    match bad_utf8 {
        Some(l) => Err(crate::http::ctx::utf8_error(l)),
        None => Ok(bom.unwrap_or(false)),
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8]) -> Result<bool, String> {
        check_text(&mut io::Cursor::new(bytes)).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn text_checks_name_the_line_across_block_boundaries() {
        assert_eq!(check(b"\xEF\xBB\xBFa,b\n1,2\n"), Ok(true));
        assert_eq!(check("名称\n储备库\n".as_bytes()), Ok(false));
        assert!(check(b"a\nb\n\x00").unwrap_err().contains('3'), "NUL on line 3");
        // A three-byte character cut by the 1 MiB block boundary is fine.
        let mut big = vec![b'x'; 1024 * 1024 - 1];
        big.extend_from_slice("库\n".as_bytes());
        assert_eq!(check(&big), Ok(false));
        let mut bad = b"a\nb\n".to_vec();
        bad.push(0xFF);
        assert!(check(&bad).unwrap_err().contains('3'), "bad UTF-8 on line 3");
    }
}
