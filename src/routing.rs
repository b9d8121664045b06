//! Routing: which group owns a key, and which server of a group serves a request.
//!
//! Key to group follows predixy exactly, so data written through predixy stays visible:
//! the hash of the key's tag (or of the whole key), then the distribution over the
//! groups in config order. Group to server: writes go to the master; reads go to the
//! available server of highest read priority, round-robin among equals.

use crate::config::{Distribution, HashKind, SentinelPoolConfig};
use crate::topology::{Group, Role, ServerAddr};

/// Key-to-group mapping for one pool.
#[derive(Clone, Debug)]
pub struct Sharding {
    hash: HashKind,
    tag: Option<(u8, u8)>,
    distribution: Distribution,
    groups: usize,
}

impl Sharding {
    pub fn new(pool: &SentinelPoolConfig) -> Sharding {
        Sharding {
            hash: pool.hash,
            tag: pool.hash_tag,
            distribution: pool.distribution,
            groups: pool.groups.len().max(1),
        }
    }

    pub fn group_count(&self) -> usize {
        self.groups
    }

    /// The part of the key that is hashed: the text between the first opening tag
    /// character and the first closing one after it, when that is not empty.
    pub fn hashed_part<'k>(&self, key: &'k [u8]) -> &'k [u8] {
        let Some((open, close)) = self.tag else {
            return key;
        };
        let Some(start) = key.iter().position(|&b| b == open) else {
            return key;
        };
        match key[start + 1..].iter().position(|&b| b == close) {
            Some(0) | None => key,
            Some(len) => &key[start + 1..start + 1 + len],
        }
    }

    /// The hash of a key, tag applied.
    pub fn hash(&self, key: &[u8]) -> i64 {
        let part = self.hashed_part(key);
        match self.hash {
            HashKind::Crc16 => crc16::State::<crc16::XMODEM>::calculate(part) as i64,
            HashKind::Atol => atol(part),
        }
    }

    /// The index of the group that owns `key`.
    pub fn group_of(&self, key: &[u8]) -> usize {
        if self.groups == 1 {
            return 0;
        }
        match self.distribution {
            // predixy computes `hash % groups` on a signed long; a negative `atol` hash
            // would index out of bounds there, here it wraps into range.
            Distribution::Modula => self.hash(key).rem_euclid(self.groups as i64) as usize,
            // predixy sends each request to a random group, whatever the key.
            Distribution::Random => random_index(self.groups),
        }
    }
}

/// predixy's `atol`: an optional sign, then decimal digits up to the first other byte;
/// the value wraps like a 64-bit integer.
fn atol(s: &[u8]) -> i64 {
    let mut i = 0;
    let mut neg = false;
    if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
        neg = s[i] == b'-';
        i += 1;
    }
    let mut v: i64 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = v.wrapping_mul(10).wrapping_add((s[i] - b'0') as i64);
        i += 1;
    }
    if neg {
        v.wrapping_neg()
    } else {
        v
    }
}

/// A cheap per-thread pseudo-random index below `n` (xorshift; not for secrets).
fn random_index(n: usize) -> usize {
    use std::cell::Cell;
    thread_local!(static STATE: Cell<u64> = const { Cell::new(0x2545F4914F6CDD1D) });
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x % n as u64) as usize
    })
}

/// Read priorities per role, from the pool config.
#[derive(Clone, Copy, Debug)]
pub struct ReadPriorities {
    pub master: u32,
    pub static_replica: u32,
    pub dynamic_replica: u32,
}

impl ReadPriorities {
    pub fn new(pool: &SentinelPoolConfig) -> ReadPriorities {
        ReadPriorities {
            master: pool.master_read_priority,
            static_replica: pool.static_replica_read_priority,
            dynamic_replica: pool.dynamic_replica_read_priority,
        }
    }

    fn of(&self, role: Role) -> u32 {
        match role {
            Role::Master => self.master,
            Role::StaticReplica => self.static_replica,
            Role::DynamicReplica => self.dynamic_replica,
        }
    }
}

/// Picks the server for a read: the highest read priority among servers that are not
/// down, round-robin among equals (`turn` advances the rotation). Priority 0 never
/// serves reads. Falls back to the master when no server qualifies.
pub fn pick_reader<'g>(
    group: &'g Group,
    prio: &ReadPriorities,
    turn: usize,
    is_down: impl Fn(&ServerAddr) -> bool,
) -> Option<&'g ServerAddr> {
    let master = group.master.as_ref().map(|m| (m, Role::Master));
    let candidates = master
        .into_iter()
        .chain(group.replicas.iter().map(|r| (&r.addr, r.role)));
    let mut best = 0u32;
    let mut count = 0usize;
    for (addr, role) in candidates.clone() {
        let p = prio.of(role);
        if p == 0 || is_down(addr) {
            continue;
        }
        if p > best {
            best = p;
            count = 1;
        } else if p == best {
            count += 1;
        }
    }
    if count == 0 {
        return group.master.as_ref();
    }
    let mut nth = turn % count;
    for (addr, role) in candidates {
        if prio.of(role) == best && !is_down(addr) {
            if nth == 0 {
                return Some(addr);
            }
            nth -= 1;
        }
    }
    group.master.as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GroupConfig;
    use crate::topology::Replica;

    fn pool(groups: usize, hash: HashKind) -> SentinelPoolConfig {
        SentinelPoolConfig {
            hash,
            groups: (0..groups)
                .map(|i| GroupConfig {
                    name: format!("g{i}"),
                    servers: vec![],
                })
                .collect(),
            ..SentinelPoolConfig::default()
        }
    }

    #[test]
    fn crc16_is_the_xmodem_variant_redis_cluster_uses() {
        let s = Sharding::new(&pool(1, HashKind::Crc16));
        // Redis Cluster: CLUSTER KEYSLOT foo = 12182 = crc16("foo") & 16383.
        assert_eq!(s.hash(b"foo") & 16383, 12182);
        assert_eq!(s.hash(b"123456789"), 0x31C3);
    }

    #[test]
    fn hash_tags_follow_redis_rules() {
        let s = Sharding::new(&pool(3, HashKind::Crc16));
        let cases: &[(&[u8], &[u8])] = &[
            (b"{user1000}.following", b"user1000"),
            (b"foo{}{bar}", b"foo{}{bar}"),
            (b"foo{{bar}}zap", b"{bar"),
            (b"foo{bar}{zap}", b"bar"),
            (b"{}", b"{}"),
            (b"no tag", b"no tag"),
            (b"unbalanced{abc", b"unbalanced{abc"),
            (b"x}y{z}", b"z"),
            (b"\x00{\xff\x01}", b"\xff\x01"),
            (b"", b""),
        ];
        for (key, part) in cases {
            assert_eq!(s.hashed_part(key), *part, "{:?}", key);
        }
        assert_eq!(s.group_of(b"{u1}a"), s.group_of(b"{u1}b"));
    }

    #[test]
    fn modula_distribution_pins_keys_to_groups() {
        let s = Sharding::new(&pool(3, HashKind::Crc16));
        // crc16 % 3, computed independently: crc16("foo") = 0xAF96 = 44950.
        assert_eq!(s.hash(b"foo"), 44950);
        assert_eq!(s.group_of(b"foo"), 44950 % 3);
        let atol = Sharding::new(&pool(4, HashKind::Atol));
        assert_eq!(atol.group_of(b"17abc"), 1);
        assert_eq!(atol.group_of(b"-6"), 2);
        assert_eq!(atol.group_of(b" 5"), 0);
        assert_eq!(atol.group_of(b"abc"), 0);
    }

    #[test]
    fn reads_go_to_the_highest_priority_and_rotate_among_equals() {
        let g = Group {
            name: "m".into(),
            master: Some("m:1".into()),
            replicas: vec![
                Replica {
                    addr: "r1:1".into(),
                    role: Role::DynamicReplica,
                },
                Replica {
                    addr: "r2:1".into(),
                    role: Role::DynamicReplica,
                },
            ],
            hold: None,
        };
        let master_first = ReadPriorities {
            master: 60,
            static_replica: 50,
            dynamic_replica: 50,
        };
        assert_eq!(
            &**pick_reader(&g, &master_first, 0, |_| false).unwrap(),
            "m:1"
        );
        let replicas_first = ReadPriorities {
            master: 10,
            static_replica: 0,
            dynamic_replica: 50,
        };
        let a = pick_reader(&g, &replicas_first, 0, |_| false).unwrap();
        let b = pick_reader(&g, &replicas_first, 1, |_| false).unwrap();
        assert_ne!(a, b);
        let down = pick_reader(&g, &replicas_first, 0, |a| &**a == "r1:1").unwrap();
        assert_eq!(&**down, "r2:1");
        let none = ReadPriorities {
            master: 0,
            static_replica: 0,
            dynamic_replica: 0,
        };
        assert_eq!(&**pick_reader(&g, &none, 0, |_| false).unwrap(), "m:1");
    }
}
