//! Framing backend replies (where does one reply end?) and decoding the few that the
//! proxy must read.

use super::{memchr, parse_i64, ProtocolError};
use bytes::Bytes;

/// Longest line a reply header or simple string may have before we call the server broken.
const MAX_REPLY_LINE: usize = 1024 * 1024;

/// Finds where one RESP2/RESP3 reply ends, resumably.
///
/// A reply that arrives in many reads is scanned once: the scanner remembers how far it
/// got and how many elements each open aggregate still expects.
#[derive(Debug, Default)]
pub struct ReplyScanner {
    pos: usize,
    /// Elements still expected by each open aggregate, innermost last.
    open: Vec<u64>,
}

impl ReplyScanner {
    pub fn new() -> ReplyScanner {
        ReplyScanner::default()
    }

    /// Returns the length of the complete reply at the front of `buf`, or `None` when
    /// more bytes are needed. After `Some`, the caller removes that many bytes.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        loop {
            let at = self.pos;
            let Some(&kind) = buf.get(at) else {
                return Ok(None);
            };
            let rest = &buf[at + 1..];
            let Some(cr) = memchr(b'\r', rest) else {
                if rest.len() > MAX_REPLY_LINE {
                    return Err(ProtocolError::BadReply("line too long"));
                }
                return Ok(None);
            };
            if rest.len() < cr + 2 {
                return Ok(None);
            }
            if rest[cr + 1] != b'\n' {
                return Err(ProtocolError::BadReply("missing LF"));
            }
            let line = &rest[..cr];
            let after_line = at + 1 + cr + 2;
            // Elements this item opens (0 for a scalar).
            let mut children: u64 = 0;
            match kind {
                b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => {
                    self.pos = after_line;
                }
                b'$' | b'!' | b'=' => {
                    let n = parse_i64(line).ok_or(ProtocolError::BadReply("bad length"))?;
                    if n < 0 {
                        if kind != b'$' || n != -1 {
                            return Err(ProtocolError::BadReply("bad length"));
                        }
                        self.pos = after_line;
                    } else {
                        let end = after_line + n as usize;
                        if buf.len() < end + 2 {
                            return Ok(None);
                        }
                        if &buf[end..end + 2] != b"\r\n" {
                            return Err(ProtocolError::BadReply("bulk not terminated"));
                        }
                        self.pos = end + 2;
                    }
                }
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let n = parse_i64(line).ok_or(ProtocolError::BadReply("bad count"))?;
                    if n < -1 || (n == -1 && kind != b'*') {
                        return Err(ProtocolError::BadReply("bad count"));
                    }
                    let n = n.max(0) as u64;
                    // An attribute (`|`) is followed by the reply it annotates: its pairs
                    // and that reply together count as one element of the enclosing level.
                    children = match kind {
                        b'%' => n * 2,
                        b'|' => n * 2 + 1,
                        _ => n,
                    };
                    self.pos = after_line;
                }
                _ => return Err(ProtocolError::BadReply("unknown type byte")),
            }
            if children > 0 {
                self.open.push(children);
                continue;
            }
            if !self.finish_element() {
                continue;
            }
            let len = self.pos;
            self.pos = 0;
            return Ok(Some(len));
        }
    }

    /// One element completed: pops every aggregate it completes. True when the whole
    /// reply is complete.
    fn finish_element(&mut self) -> bool {
        while let Some(top) = self.open.last_mut() {
            *top -= 1;
            if *top > 0 {
                return false;
            }
            self.open.pop();
        }
        true
    }
}

/// A decoded reply, for the few places that need its contents.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Simple(Bytes),
    Error(Bytes),
    Integer(i64),
    Bulk(Bytes),
    Null,
    /// Arrays, sets and pushes.
    Array(Vec<Value>),
    /// RESP3 maps, as key/value pairs.
    Map(Vec<(Value, Value)>),
    /// Other RESP3 scalars (double, boolean, big number, verbatim) as their text.
    Other(Bytes),
}

impl Value {
    /// Decodes one complete reply (as framed by [`ReplyScanner`]).
    pub fn parse(frame: &Bytes) -> Result<Value, ProtocolError> {
        let mut at = 0;
        let v = parse_value(frame, &mut at, 0)?;
        Ok(v)
    }

    /// The bytes of a simple string, bulk string or other scalar.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Simple(b) | Value::Bulk(b) | Value::Other(b) => Some(b),
            _ => None,
        }
    }

    /// The text of a scalar, lossily.
    pub fn as_text(&self) -> Option<String> {
        self.as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Integer(n) => Some(*n),
            other => other.as_bytes().and_then(parse_i64),
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_))
    }
}

fn parse_value(frame: &Bytes, at: &mut usize, depth: usize) -> Result<Value, ProtocolError> {
    if depth > 64 {
        return Err(ProtocolError::BadReply("nested too deep"));
    }
    let bad = ProtocolError::BadReply("malformed reply");
    let kind = *frame.get(*at).ok_or(bad.clone())?;
    let rest = &frame[*at + 1..];
    let cr = memchr(b'\r', rest).ok_or(bad.clone())?;
    let line_start = *at + 1;
    let line = frame.slice(line_start..line_start + cr);
    *at = line_start + cr + 2;
    let count = || parse_i64(&line).ok_or(bad.clone());
    Ok(match kind {
        b'+' => Value::Simple(line),
        b'-' => Value::Error(line),
        b':' => Value::Integer(count()?),
        b'_' => Value::Null,
        b'#' | b',' | b'(' => Value::Other(line),
        b'$' | b'!' | b'=' => {
            let n = count()?;
            if n < 0 {
                return Ok(Value::Null);
            }
            let end = usize::try_from(n)
                .ok()
                .and_then(|n| at.checked_add(n))
                .filter(|end| end.checked_add(2).is_some_and(|e| e <= frame.len()))
                .ok_or(bad)?;
            let data = frame.slice(*at..end);
            *at = end + 2;
            match kind {
                b'!' => Value::Error(data),
                b'=' => Value::Bulk(data.slice(4.min(data.len())..)),
                _ => Value::Bulk(data),
            }
        }
        b'*' | b'~' | b'>' => {
            let n = count()?;
            if n < 0 {
                return Ok(Value::Null);
            }
            let mut items = Vec::with_capacity((n as usize).min(1024));
            for _ in 0..n {
                items.push(parse_value(frame, at, depth + 1)?);
            }
            Value::Array(items)
        }
        b'%' => {
            let n = count()?.max(0);
            let mut pairs = Vec::with_capacity((n as usize).min(1024));
            for _ in 0..n {
                let k = parse_value(frame, at, depth + 1)?;
                let v = parse_value(frame, at, depth + 1)?;
                pairs.push((k, v));
            }
            Value::Map(pairs)
        }
        b'|' => {
            let n = count()?.max(0);
            for _ in 0..n.saturating_mul(2) {
                parse_value(frame, at, depth + 1)?;
            }
            parse_value(frame, at, depth + 1)?
        }
        _ => return Err(bad),
    })
}
