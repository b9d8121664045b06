//! Entry points for the fuzz targets in `fuzz/` and for `tests/fuzz_corpus.rs`, which
//! replays the committed corpus on stable Rust. Each takes arbitrary bytes, must never
//! panic, and checks the invariants its parser promises.

use crate::config::Config;
use crate::protocol::{split_inline, Parsed, ReplyScanner, RequestParser, Value};
use bytes::{Buf, Bytes, BytesMut};

/// Feeds `data` to a request parser in pieces (the first byte picks the piece size),
/// as a session would: spans stay inside their frame, lengths inside the buffer.
pub fn request_parser(data: &[u8]) {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 64) + 1;
    let mut parser = RequestParser::new(1024 * 1024);
    let mut buf = BytesMut::new();
    for piece in data.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match parser.parse(&buf) {
                Ok(Parsed::Incomplete { .. }) => break,
                Ok(Parsed::Skip { len }) => {
                    assert!(len > 0 && len <= buf.len(), "skip {len} of {}", buf.len());
                    buf.advance(len);
                }
                Ok(Parsed::Multibulk { len }) => {
                    assert!(len > 0 && len <= buf.len(), "frame {len} of {}", buf.len());
                    check_spans(parser.spans(), len);
                    buf.advance(len);
                }
                Ok(Parsed::Inline { len, encoded }) => {
                    assert!(len > 0 && len <= buf.len(), "inline {len} of {}", buf.len());
                    check_spans(parser.spans(), encoded.len());
                    buf.advance(len);
                }
                Err(_) => return,
            }
        }
    }
}

fn check_spans(spans: &[crate::protocol::ArgSpan], frame_len: usize) {
    for s in spans {
        assert!(
            s.start <= s.end && s.end as usize <= frame_len,
            "{s:?} in {frame_len}"
        );
    }
}

/// Splits one inline line; the arguments can never hold more bytes than the line.
pub fn inline_split(data: &[u8]) {
    if let Ok(args) = split_inline(data) {
        let total: usize = args.iter().map(Vec::len).sum();
        assert!(total <= data.len());
    }
}

/// Both config formats on one text; they must return, never panic.
pub fn config_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = Config::parse_str(&text, false);
    let _ = Config::parse_str(&text, true);
}

/// Frames backend replies in pieces and decodes each framed reply.
pub fn reply(data: &[u8]) {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 64) + 1;
    let mut scanner = ReplyScanner::new();
    let mut buf = BytesMut::new();
    for piece in data.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match scanner.scan(&buf) {
                Ok(Some(len)) => {
                    assert!(len > 0 && len <= buf.len(), "reply {len} of {}", buf.len());
                    let frame: Bytes = buf.split_to(len).freeze();
                    let _ = Value::parse(&frame);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    // Whole input as one frame, too: Value::parse must cope with anything.
    let _ = Value::parse(&Bytes::copy_from_slice(data));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Crashes the reply fuzzer found: bulk lengths near i64::MAX overflowed the end
    /// offset, and a huge attribute count overflowed `n * 2`.
    #[test]
    fn reply_lengths_near_i64_max_are_errors() {
        for frame in [
            &b"$9223372036854775807\r\nab\r\n"[..],
            b"$18446744073709551\r\n",
            b"!9223372036854775806\r\n",
            b"|9223372036854775807\r\n+a\r\n",
            b"*1\r\n$9223372036854775800\r\n",
        ] {
            assert!(Value::parse(&Bytes::copy_from_slice(frame)).is_err());
            reply(frame);
        }
    }

    #[test]
    fn entry_points_accept_anything() {
        for data in [
            &b""[..],
            b"\x00",
            b"\x05*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
            b"\x01PING \"a\\x41\"\r\n\r\n*0\r\n*-1\r\n",
            b"\x03*2000000000\r\n$5\r\n",
            b"\x02$-5\r\n",
        ] {
            request_parser(data);
            inline_split(data);
            config_text(data);
            reply(data);
        }
    }
}
