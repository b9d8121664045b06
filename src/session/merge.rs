//! Merging the replies of a request split over several groups into the one reply the
//! client expects (as a single Redis would give it).

use crate::protocol::{put_array_header, put_integer, ReplyScanner};
use bytes::{Bytes, BytesMut};

/// How the parts' replies combine.
#[derive(Debug)]
pub enum MergeKind {
    /// MGET: element `i` of the result is element `order[i].1` of part `order[i].0`.
    Interleave { order: Vec<(u32, u32)> },
    /// DEL, EXISTS, TOUCH, UNLINK, DBSIZE: integers summed.
    Sum,
    /// MSET, FLUSHDB, SCRIPT FLUSH: the first reply unless a part failed.
    AllOk,
    /// KEYS: arrays concatenated.
    Concat,
    /// SCRIPT EXISTS: element-wise, 1 only where every group has the script.
    AllOf,
}

/// A split request waiting for its parts.
#[derive(Debug)]
pub struct Merge {
    kind: MergeKind,
    parts: Vec<Option<Bytes>>,
    missing: usize,
}

impl Merge {
    pub fn new(kind: MergeKind, parts: usize) -> Merge {
        Merge {
            kind,
            parts: vec![None; parts],
            missing: parts,
        }
    }

    /// Records one part; returns the merged reply when it was the last.
    pub fn add(&mut self, part: u32, reply: Bytes) -> Option<Bytes> {
        let slot = self.parts.get_mut(part as usize)?;
        if slot.is_none() {
            *slot = Some(reply);
            self.missing -= 1;
        }
        if self.missing > 0 {
            return None;
        }
        let parts: Vec<Bytes> = self.parts.iter_mut().filter_map(Option::take).collect();
        Some(merge(&self.kind, &parts))
    }
}

fn merge(kind: &MergeKind, parts: &[Bytes]) -> Bytes {
    if let Some(err) = parts.iter().find(|p| p.first() == Some(&b'-')) {
        return err.clone();
    }
    let mut out = BytesMut::new();
    match kind {
        MergeKind::AllOk => return parts[0].clone(),
        MergeKind::Sum => {
            let mut total: i64 = 0;
            for p in parts {
                total = total.wrapping_add(integer_of(p).unwrap_or(0));
            }
            put_integer(&mut out, total);
        }
        MergeKind::Interleave { order } => {
            let elements: Vec<Vec<Bytes>> = parts.iter().map(elements_of).collect();
            put_array_header(&mut out, order.len());
            for &(part, idx) in order {
                match elements
                    .get(part as usize)
                    .and_then(|e| e.get(idx as usize))
                {
                    Some(e) => out.extend_from_slice(e),
                    None => out.extend_from_slice(b"$-1\r\n"),
                }
            }
        }
        MergeKind::Concat => {
            let elements: Vec<Vec<Bytes>> = parts.iter().map(elements_of).collect();
            put_array_header(&mut out, elements.iter().map(Vec::len).sum());
            for e in elements.iter().flatten() {
                out.extend_from_slice(e);
            }
        }
        MergeKind::AllOf => {
            let elements: Vec<Vec<Bytes>> = parts.iter().map(elements_of).collect();
            let n = elements.first().map_or(0, Vec::len);
            put_array_header(&mut out, n);
            for i in 0..n {
                let all = elements
                    .iter()
                    .all(|e| e.get(i).and_then(|b| integer_of(b)) == Some(1));
                put_integer(&mut out, all as i64);
            }
        }
    }
    out.freeze()
}

fn integer_of(reply: &[u8]) -> Option<i64> {
    let body = reply.strip_prefix(b":")?;
    let end = crate::protocol::memchr(b'\r', body)?;
    crate::protocol::parse_i64(&body[..end])
}

/// The raw elements of an array (or set) reply; empty for anything else.
fn elements_of(reply: &Bytes) -> Vec<Bytes> {
    let Some(&kind) = reply.first() else {
        return Vec::new();
    };
    if kind != b'*' && kind != b'~' {
        return Vec::new();
    }
    let Some(cr) = crate::protocol::memchr(b'\r', reply) else {
        return Vec::new();
    };
    let Some(n) = crate::protocol::parse_i64(&reply[1..cr]) else {
        return Vec::new();
    };
    let mut at = cr + 2;
    let mut out = Vec::with_capacity(n.clamp(0, 4096) as usize);
    for _ in 0..n.max(0) {
        let mut scanner = ReplyScanner::new();
        match scanner.scan(&reply[at..]) {
            Ok(Some(len)) => {
                out.push(reply.slice(at..at + len));
                at += len;
            }
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    #[test]
    fn mget_parts_interleave_in_request_order() {
        let mut m = Merge::new(
            MergeKind::Interleave {
                order: vec![(1, 0), (0, 0), (1, 1), (0, 1)],
            },
            2,
        );
        assert!(m.add(0, b("*2\r\n$1\r\na\r\n$-1\r\n")).is_none());
        let out = m.add(1, b("*2\r\n$1\r\nb\r\n$1\r\nc\r\n")).unwrap();
        assert_eq!(&out[..], b"*4\r\n$1\r\nb\r\n$1\r\na\r\n$1\r\nc\r\n$-1\r\n");
    }

    #[test]
    fn counts_sum_and_errors_win() {
        let mut m = Merge::new(MergeKind::Sum, 3);
        m.add(0, b(":1\r\n"));
        m.add(2, b(":2\r\n"));
        assert_eq!(&m.add(1, b(":0\r\n")).unwrap()[..], b":3\r\n");
        let mut m = Merge::new(MergeKind::AllOk, 2);
        m.add(0, b("+OK\r\n"));
        assert_eq!(&m.add(1, b("-ERR x\r\n")).unwrap()[..], b"-ERR x\r\n");
    }

    #[test]
    fn concat_and_all_of() {
        let mut m = Merge::new(MergeKind::Concat, 2);
        m.add(0, b("*1\r\n$1\r\na\r\n"));
        assert_eq!(
            &m.add(1, b("*1\r\n$1\r\nb\r\n")).unwrap()[..],
            b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
        );
        let mut m = Merge::new(MergeKind::AllOf, 2);
        m.add(0, b("*2\r\n:1\r\n:1\r\n"));
        assert_eq!(
            &m.add(1, b("*2\r\n:0\r\n:1\r\n")).unwrap()[..],
            b"*2\r\n:0\r\n:1\r\n"
        );
    }
}
