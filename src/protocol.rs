//! RESP on the wire: client requests in, backend replies framed, proxy replies encoded.
//!
//! Requests are parsed in place: a parsed request is the byte range of one frame in the
//! client's read buffer plus the positions of its arguments, so the proxy forwards exactly
//! the bytes the client sent. Inline requests (`PING\r\n` typed in telnet) are split with
//! Redis' own rules and re-encoded as a multibulk, since a backend link carries many
//! clients' requests back to back. Replies are only framed (where does one end?), never
//! decoded, on the hot path; [`Value`] decodes a whole reply for the few places that need
//! its contents (Sentinel answers, merging split commands).
//!
//! Nothing here trusts a length before the bytes arrive: a `*2000000000` header costs
//! nothing until its arguments do.

mod inline;
mod reply;

pub use inline::split_inline;
pub use reply::{ReplyScanner, Value};

use bytes::{BufMut, BytesMut};
use std::fmt;

/// Longest header line (`*N` or `$N`) Redis accepts before the CRLF.
const MAX_HEADER_LINE: usize = 64 * 1024;
/// Longest inline request Redis accepts without a newline.
const MAX_INLINE: usize = 64 * 1024;
/// Redis' own limit on the number of arguments in one multibulk.
const MAX_MULTIBULK: i64 = i32::MAX as i64;

/// A malformed request. The client gets `-ERR Protocol error: <this>` and is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    InvalidMultibulkLength,
    InvalidBulkLength,
    TooBigMultibulkCount,
    TooBigBulkCount,
    TooBigInline,
    UnbalancedQuotes,
    ExpectedDollar(u8),
    /// A backend reply that is not RESP (the link is closed).
    BadReply(&'static str),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::InvalidMultibulkLength => f.write_str("invalid multibulk length"),
            ProtocolError::InvalidBulkLength => f.write_str("invalid bulk length"),
            ProtocolError::TooBigMultibulkCount => f.write_str("too big mbulk count string"),
            ProtocolError::TooBigBulkCount => f.write_str("too big bulk count string"),
            ProtocolError::TooBigInline => f.write_str("too big inline request"),
            ProtocolError::UnbalancedQuotes => f.write_str("unbalanced quotes in request"),
            ProtocolError::ExpectedDollar(b) => {
                write!(f, "expected '$', got '{}'", char::from(*b).escape_default())
            }
            ProtocolError::BadReply(what) => write!(f, "bad reply from server: {what}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// The position of one argument inside its request frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgSpan {
    pub start: u32,
    pub end: u32,
}

/// What [`RequestParser::parse`] found at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A multibulk request of `len` bytes; its arguments are in the parser's spans.
    Multibulk { len: usize },
    /// An inline request of `len` bytes, re-encoded as a multibulk into `encoded`;
    /// the spans point into `encoded`.
    Inline { len: usize, encoded: BytesMut },
    /// `len` bytes to drop (an empty line, `*0`, `*-1`).
    Skip { len: usize },
    /// More bytes are needed; at least `need` more when known (0 when unknown).
    Incomplete { need: usize },
}

/// Resumable request parser for one client connection.
///
/// The state survives between reads so that a request arriving in many pieces (a
/// 512 MB value, a million arguments) is scanned once, not once per read.
#[derive(Debug)]
pub struct RequestParser {
    max_bulk_len: usize,
    spans: Vec<ArgSpan>,
    /// Arguments still expected by the multibulk being parsed (0 = between requests).
    remaining: i64,
    /// Bytes of the current frame already scanned.
    pos: usize,
}

impl RequestParser {
    pub fn new(max_bulk_len: usize) -> RequestParser {
        RequestParser {
            max_bulk_len,
            spans: Vec::new(),
            remaining: 0,
            pos: 0,
        }
    }

    /// Argument positions of the last complete request.
    pub fn spans(&self) -> &[ArgSpan] {
        &self.spans
    }

    /// Bytes of a partial request already buffered (for the query buffer limit).
    pub fn partial_len(&self) -> usize {
        self.pos
    }

    /// Looks at the front of `buf` for one request. On `Multibulk`/`Inline`/`Skip` the
    /// caller removes `len` bytes from the buffer before calling again.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Parsed, ProtocolError> {
        if self.remaining == 0 && self.pos == 0 {
            match buf.first() {
                None => return Ok(Parsed::Incomplete { need: 0 }),
                Some(b'*') => {}
                Some(_) => return self.parse_inline(buf),
            }
            let Some((count, line_end)) = read_header(buf, 1, true)? else {
                return Ok(Parsed::Incomplete { need: 0 });
            };
            if count > MAX_MULTIBULK {
                return Err(ProtocolError::InvalidMultibulkLength);
            }
            if count <= 0 {
                return Ok(Parsed::Skip { len: line_end });
            }
            self.spans.clear();
            self.remaining = count;
            self.pos = line_end;
        }
        while self.remaining > 0 {
            let at = self.pos;
            match buf.get(at) {
                None => return Ok(Parsed::Incomplete { need: 0 }),
                Some(b'$') => {}
                Some(&other) => return Err(ProtocolError::ExpectedDollar(other)),
            }
            let Some((len, line_end)) = read_header(buf, at + 1, false)? else {
                return Ok(Parsed::Incomplete { need: 0 });
            };
            if len < 0 || len as u64 > self.max_bulk_len as u64 {
                return Err(ProtocolError::InvalidBulkLength);
            }
            let start = line_end;
            let end = start + len as usize;
            if buf.len() < end + 2 {
                return Ok(Parsed::Incomplete {
                    need: end + 2 - buf.len(),
                });
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError::InvalidBulkLength);
            }
            let (Ok(s), Ok(e)) = (u32::try_from(start), u32::try_from(end)) else {
                // A single request over 4 GB cannot pass the query buffer limit.
                return Err(ProtocolError::InvalidBulkLength);
            };
            self.spans.push(ArgSpan { start: s, end: e });
            self.pos = end + 2;
            self.remaining -= 1;
        }
        let len = self.pos;
        self.pos = 0;
        Ok(Parsed::Multibulk { len })
    }

    fn parse_inline(&mut self, buf: &[u8]) -> Result<Parsed, ProtocolError> {
        let Some(nl) = memchr(b'\n', buf) else {
            if buf.len() > MAX_INLINE {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(Parsed::Incomplete { need: 0 });
        };
        let len = nl + 1;
        let line = match buf[..nl].last() {
            Some(b'\r') => &buf[..nl - 1],
            _ => &buf[..nl],
        };
        let args = split_inline(line)?;
        if args.is_empty() {
            return Ok(Parsed::Skip { len });
        }
        let mut encoded = BytesMut::with_capacity(line.len() + 16 * args.len());
        self.spans.clear();
        put_array_header(&mut encoded, args.len());
        for arg in &args {
            put_bulk_header(&mut encoded, arg.len());
            let start = encoded.len() as u32;
            encoded.extend_from_slice(arg);
            self.spans.push(ArgSpan {
                start,
                end: encoded.len() as u32,
            });
            encoded.extend_from_slice(b"\r\n");
        }
        Ok(Parsed::Inline { len, encoded })
    }
}

/// Reads the decimal number of a `*N\r\n` / `$N\r\n` header starting at `from` (just
/// after the type byte). Returns the number and the offset after the CRLF.
fn read_header(
    buf: &[u8],
    from: usize,
    multibulk: bool,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let too_big = || {
        if multibulk {
            ProtocolError::TooBigMultibulkCount
        } else {
            ProtocolError::TooBigBulkCount
        }
    };
    let invalid = || {
        if multibulk {
            ProtocolError::InvalidMultibulkLength
        } else {
            ProtocolError::InvalidBulkLength
        }
    };
    let rest = buf.get(from..).unwrap_or_default();
    let Some(cr) = memchr(b'\r', rest) else {
        if rest.len() > MAX_HEADER_LINE {
            return Err(too_big());
        }
        return Ok(None);
    };
    if cr > MAX_HEADER_LINE {
        return Err(too_big());
    }
    if rest.len() < cr + 2 {
        return Ok(None);
    }
    if rest[cr + 1] != b'\n' {
        return Err(invalid());
    }
    let n = parse_i64(&rest[..cr]).ok_or_else(invalid)?;
    Ok(Some((n, from + cr + 2)))
}

/// Parses a decimal integer the way Redis' `string2ll` does (no spaces, no `+`).
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub((d - b'0') as i64)?;
    }
    if neg {
        Some(v)
    } else {
        v.checked_neg()
    }
}

/// Parses an unsigned decimal (SCAN cursors use the whole 64-bit range).
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || (s.len() > 1 && s[0] == b'0') {
        return None;
    }
    let mut v: u64 = 0;
    for &d in s {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(v)
}

pub(crate) fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

// === encoding ===

fn put_decimal(out: &mut BytesMut, n: i64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let neg = n < 0;
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if neg {
        out.put_u8(b'-');
    }
    out.extend_from_slice(&tmp[i..]);
}

/// `*N\r\n`
pub fn put_array_header(out: &mut BytesMut, n: usize) {
    out.put_u8(b'*');
    put_decimal(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

/// `$N\r\n`
pub fn put_bulk_header(out: &mut BytesMut, n: usize) {
    out.put_u8(b'$');
    put_decimal(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

/// A bulk string.
pub fn put_bulk(out: &mut BytesMut, data: &[u8]) {
    put_bulk_header(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// A null bulk (`$-1` in RESP2, `_` in RESP3).
pub fn put_null(out: &mut BytesMut, resp3: bool) {
    out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" });
}

/// `:N\r\n`
pub fn put_integer(out: &mut BytesMut, n: i64) {
    out.put_u8(b':');
    put_decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

/// `+text\r\n`; CR and LF in `text` are replaced by spaces.
pub fn put_simple(out: &mut BytesMut, text: &str) {
    out.put_u8(b'+');
    put_line(out, text.as_bytes());
}

/// `-text\r\n` (text starts with the error code, e.g. `ERR ...`); CR and LF are replaced.
pub fn put_error(out: &mut BytesMut, text: &str) {
    out.put_u8(b'-');
    put_line(out, text.as_bytes());
}

fn put_line(out: &mut BytesMut, text: &[u8]) {
    for &b in text {
        out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.extend_from_slice(b"\r\n");
}

/// A map header: `%N` in RESP3, `*2N` in RESP2.
pub fn put_map_header(out: &mut BytesMut, pairs: usize, resp3: bool) {
    if resp3 {
        out.put_u8(b'%');
        put_decimal(out, pairs as i64);
        out.extend_from_slice(b"\r\n");
    } else {
        put_array_header(out, pairs * 2);
    }
}

/// A verbatim text (`=N\r\ntxt:...` in RESP3, a bulk string in RESP2), as INFO answers.
pub fn put_verbatim(out: &mut BytesMut, text: &[u8], resp3: bool) {
    if resp3 {
        out.put_u8(b'=');
        put_decimal(out, text.len() as i64 + 4);
        out.extend_from_slice(b"\r\ntxt:");
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    } else {
        put_bulk(out, text);
    }
}

/// Encodes a whole request as a multibulk.
pub fn encode_request(out: &mut BytesMut, args: &[&[u8]]) {
    put_array_header(out, args.len());
    for a in args {
        put_bulk(out, a);
    }
}

#[cfg(test)]
mod tests;
