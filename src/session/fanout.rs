//! Commands over several groups: multi-key commands split per group and merged, commands
//! that every group must run (KEYS, DBSIZE, FLUSHDB, SCRIPT LOAD ...), and SCAN walking the
//! groups one after the other.
//!
//! Only used when the pool has more than one group; with one group every command is
//! forwarded as the client sent it.

use super::merge::{Merge, MergeKind};
use super::{Args, Client};
use crate::command::{ArgList, CommandClass, CommandSpec};
use crate::protocol::{encode_request, parse_u64, put_array_header, put_bulk};
use bytes::{Bytes, BytesMut};

/// How a multi-key command splits.
struct Split {
    /// Arguments per key (1 for MGET/DEL, 2 for MSET's key and value).
    step: usize,
    kind: fn(Vec<(u32, u32)>) -> MergeKind,
}

impl Client {
    /// Handles split and broadcast commands. True when handled here.
    pub(super) fn fan_out(&mut self, spec: &CommandSpec, args: &Args<'_>) -> bool {
        let split = match spec.name {
            "mget" => Split {
                step: 1,
                kind: |order| MergeKind::Interleave { order },
            },
            "del" | "unlink" | "exists" | "touch" => Split {
                step: 1,
                kind: |_| MergeKind::Sum,
            },
            "mset" => Split {
                step: 2,
                kind: |_| MergeKind::AllOk,
            },
            "msetnx" => {
                // All-or-nothing cannot span groups: refuse unless one group has them all.
                if self.group_of_keys(spec, args).is_err() {
                    self.error(
                        "CROSSSLOT redmux: MSETNX keys must all be in one group (use a {hash tag})",
                    );
                    return true;
                }
                return false;
            }
            "keys" => return self.broadcast(spec, args, MergeKind::Concat),
            "dbsize" => return self.broadcast(spec, args, MergeKind::Sum),
            "flushdb" | "flushall" | "script|flush" | "script|load" => {
                return self.broadcast(spec, args, MergeKind::AllOk)
            }
            "script|exists" => return self.broadcast(spec, args, MergeKind::AllOf),
            "randomkey" => return self.broadcast(spec, args, MergeKind::FirstNonNull),
            "scan" => return self.scan(args),
            _ => return false,
        };
        self.split_keys(spec, args, split)
    }

    /// Splits a multi-key command per group; false when all keys are in one group (then
    /// it is forwarded as sent).
    fn split_keys(&mut self, spec: &CommandSpec, args: &Args<'_>, split: Split) -> bool {
        let sharding = self.ctx.proxy.sharding.clone();
        let groups = sharding.group_count();
        // For every key: its group and its index within that group's part.
        let mut per_group: Vec<Vec<usize>> = vec![Vec::new(); groups];
        let mut order = Vec::with_capacity((args.len() - 1) / split.step);
        let mut i = 1;
        while i + split.step - 1 < args.len() {
            let g = sharding.group_of(args.arg(i));
            order.push((g as u32, per_group[g].len() as u32));
            per_group[g].push(i);
            i += split.step;
        }
        let used: Vec<usize> = (0..groups).filter(|g| !per_group[*g].is_empty()).collect();
        if used.len() <= 1 {
            return false;
        }
        // Parts are numbered by their position in `used`.
        let part_of = |g: u32| used.iter().position(|&u| u as u32 == g).unwrap_or(0) as u32;
        let order = order
            .into_iter()
            .map(|(g, idx)| (part_of(g), idx))
            .collect();
        let seq = self
            .shared
            .reserve_merge(Merge::new((split.kind)(order), used.len()));
        let write = spec.class != CommandClass::Read;
        for (part, &g) in used.iter().enumerate() {
            let mut parts: Vec<&[u8]> = Vec::with_capacity(per_group[g].len() * split.step + 1);
            parts.push(args.arg(0));
            for &k in &per_group[g] {
                for j in 0..split.step {
                    parts.push(args.arg(k + j));
                }
            }
            let mut frame = BytesMut::new();
            encode_request(&mut frame, &parts);
            self.send_part(g, write, &frame.freeze(), seq, part as u32);
        }
        true
    }

    /// Sends the command to every group and merges the replies.
    fn broadcast(&mut self, spec: &CommandSpec, args: &Args<'_>, kind: MergeKind) -> bool {
        let groups = self.ctx.proxy.sharding.group_count();
        let seq = self.shared.reserve_merge(Merge::new(kind, groups));
        let write = spec.class != CommandClass::Read;
        for g in 0..groups {
            self.send_part(g, write, args.frame, seq, g as u32);
        }
        true
    }

    /// `SCAN cursor [MATCH p] [COUNT n] [TYPE t]` over every group in turn. The client's
    /// cursor is `backend_cursor * groups + group`; backend cursors stay far below
    /// 2^64 / 32 for any data set that fits in memory, and an overflow is refused.
    fn scan(&mut self, args: &Args<'_>) -> bool {
        let groups = self.ctx.proxy.sharding.group_count() as u64;
        let Some(cursor) = parse_u64(args.arg(1)) else {
            self.error("ERR invalid cursor");
            return true;
        };
        let group = cursor % groups;
        let backend_cursor = (cursor / groups).to_string();
        let mut parts: Vec<&[u8]> = (0..args.len()).map(|i| args.arg(i)).collect();
        parts[1] = backend_cursor.as_bytes();
        let mut frame = BytesMut::new();
        encode_request(&mut frame, &parts);
        let kind = MergeKind::Scan { group, groups };
        let seq = self.shared.reserve_merge(Merge::new(kind, 1));
        self.send_part(group as usize, false, &frame.freeze(), seq, 0);
        true
    }
}

/// The client-facing SCAN reply for a backend reply from `group`: the cursor moves on to
/// the next group when this one is done.
pub(super) fn rewrite_scan(reply: &Bytes, group: u64, groups: u64) -> Bytes {
    let Ok(crate::protocol::Value::Array(items)) = crate::protocol::Value::parse(reply) else {
        return reply.clone();
    };
    let (Some(next), Some(keys_start)) = (
        items.first().and_then(|c| c.as_bytes()).and_then(parse_u64),
        scan_keys_offset(reply),
    ) else {
        return reply.clone();
    };
    let client_next = if next == 0 {
        if group + 1 < groups {
            group + 1
        } else {
            0
        }
    } else {
        match next.checked_mul(groups).and_then(|c| c.checked_add(group)) {
            Some(c) => c,
            None => {
                return Bytes::from_static(
                    b"-ERR redmux: SCAN cursor too large to encode the group\r\n",
                )
            }
        }
    };
    let mut out = BytesMut::with_capacity(reply.len() + 16);
    put_array_header(&mut out, 2);
    put_bulk(&mut out, client_next.to_string().as_bytes());
    out.extend_from_slice(&reply[keys_start..]);
    out.freeze()
}

/// Where the keys array of a `*2 $cursor *keys` reply starts.
fn scan_keys_offset(reply: &[u8]) -> Option<usize> {
    let mut scanner = crate::protocol::ReplyScanner::new();
    let header = crate::protocol::memchr(b'\n', reply)? + 1;
    let cursor_len = scanner.scan(&reply[header..]).ok()??;
    Some(header + cursor_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_cursor_moves_through_groups() {
        let reply = Bytes::from_static(b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n");
        assert_eq!(
            &rewrite_scan(&reply, 0, 3)[..],
            b"*2\r\n$1\r\n1\r\n*1\r\n$1\r\na\r\n"
        );
        assert_eq!(
            &rewrite_scan(&reply, 2, 3)[..],
            b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n"
        );
        let mid = Bytes::from_static(b"*2\r\n$2\r\n17\r\n*0\r\n");
        assert_eq!(&rewrite_scan(&mid, 1, 3)[..], b"*2\r\n$2\r\n52\r\n*0\r\n");
        let huge = Bytes::from_static(b"*2\r\n$20\r\n18446744073709551615\r\n*0\r\n");
        assert!(rewrite_scan(&huge, 1, 3).starts_with(b"-ERR"));
    }
}
