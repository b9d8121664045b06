//! The command table: for every Redis 7 command, its class (how the proxy treats it) and
//! where its keys are.
//!
//! `table.rs` is generated from a live Redis 7 `COMMAND` reply by
//! `scripts/gen-command-table.py`; `tests/command_table.rs` checks it against a live
//! redis-server so it cannot drift. Key positions mirror Redis 7 key specs exactly.

mod lookup;
mod table;

/// The Redis version whose `COMMAND` reply the table was generated from.
pub use table::REDIS_VERSION;

/// How the proxy treats a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandClass {
    /// Reads data: may be served by a replica; allowed in `read` mode.
    Read,
    /// Changes data: always to the master; needs `write` mode.
    Write,
    /// Dangerous or server-wide (CONFIG, FLUSHALL, SHUTDOWN, ...): `admin` mode only.
    Admin,
    /// Answered by the proxy itself (AUTH, HELLO, SELECT, PING, ECHO, QUIT, RESET, INFO,
    /// COMMAND, CLIENT SETNAME/GETNAME/ID/INFO/LIST, ...). TIME goes to a backend (Read).
    Local,
    /// Cannot work through a proxy (MONITOR, SYNC, PSYNC, REPLICAOF, CLUSTER, DEBUG, ...).
    Unsupported,
}

/// Where a key search begins (Redis 7 key spec `begin_search`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeginSearch {
    /// At this argument index (0 is the command name).
    Index(u16),
    /// After the first (or, with a negative start, last) argument equal to the keyword,
    /// searching from `start_from`.
    Keyword {
        keyword: &'static str,
        start_from: i16,
    },
}

/// How keys are found from the begin point (Redis 7 key spec `find_keys`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindKeys {
    /// `last_key` relative to the begin (negative counts from the end), every `key_step`;
    /// `limit` > 1 means "stop at 1/limit of the remaining arguments".
    Range {
        last_key: i16,
        key_step: u16,
        limit: u16,
    },
    /// The number of keys is at `key_num_idx` (relative to begin); keys start at `first_key`.
    KeyNum {
        key_num_idx: u16,
        first_key: u16,
        key_step: u16,
    },
}

/// One Redis 7 key spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    pub begin: BeginSearch,
    pub find: FindKeys,
    /// The keys of this spec are written (RW/OW/RM/insert/delete/update flags).
    pub write: bool,
}

/// Flag bits of [`CommandSpec::flags`].
pub mod flags {
    /// May block the connection (BLPOP, XREAD BLOCK, WAIT, ...).
    pub const BLOCKING: u16 = 1 << 0;
    /// Pub/sub command (SUBSCRIBE, PUBLISH, ...).
    pub const PUBSUB: u16 = 1 << 1;
    /// Transaction control (MULTI, EXEC, DISCARD, WATCH, UNWATCH).
    pub const TRANSACTION: u16 = 1 << 2;
    /// Scripting (EVAL*, FCALL*, SCRIPT, FUNCTION).
    pub const SCRIPT: u16 = 1 << 3;
    /// The command has subcommands (CLIENT, CONFIG, OBJECT, ...): look the spec up with
    /// its first argument.
    pub const CONTAINER: u16 = 1 << 4;
    /// Redis flags it `movablekeys`: keys depend on the arguments.
    pub const MOVABLE_KEYS: u16 = 1 << 5;
    /// Redis flags it `readonly`.
    pub const READONLY: u16 = 1 << 6;
    /// Redis' key specs alone do not describe the keys (an `unknown`, `incomplete` or
    /// `variable_flags` spec, as in SORT and MIGRATE): [`key_indices`](super::key_indices)
    /// applies the command's own key procedure where the specs are not enough.
    pub const CUSTOM_KEYS: u16 = 1 << 7;
}

/// One command (or `container|subcommand`) of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// Lowercase name as Redis' COMMAND gives it (`get`, `client|setname`).
    pub name: &'static str,
    /// Redis arity: positive = exact argument count, negative = at least -arity.
    pub arity: i16,
    pub class: CommandClass,
    pub flags: u16,
    pub keys: &'static [KeySpec],
}

/// The arguments of one request, name included (index 0).
pub trait ArgList {
    fn len(&self) -> usize;
    fn arg(&self, index: usize) -> &[u8];
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ArgList for [&[u8]] {
    fn len(&self) -> usize {
        <[&[u8]]>::len(self)
    }
    fn arg(&self, index: usize) -> &[u8] {
        self[index]
    }
}

impl CommandSpec {
    /// True when `argc` (name included) fits the command's arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let arity = self.arity as isize;
        if arity >= 0 {
            argc as isize == arity
        } else {
            argc as isize >= -arity
        }
    }

    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// Every command and `container|subcommand` of the table, sorted by name.
pub fn all() -> &'static [CommandSpec] {
    table::COMMANDS
}

/// Looks a command up by name, case-insensitively. For container commands the
/// container's own spec is returned; use [`lookup_request`] to resolve the subcommand.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    lookup::lookup(name)
}

/// Looks up the spec for a whole request: the subcommand's spec for container commands
/// when the subcommand is known, otherwise the command's.
pub fn lookup_request<A: ArgList + ?Sized>(args: &A) -> Option<&'static CommandSpec> {
    lookup::lookup_request(args)
}

/// Appends the argument indices of every key the request names, in Redis' order
/// (what `COMMAND GETKEYS` would answer). Malformed requests yield the keys that can be
/// found; nothing panics.
pub fn key_indices<A: ArgList + ?Sized>(spec: &CommandSpec, args: &A, out: &mut Vec<usize>) {
    lookup::key_indices(spec, args, out)
}
