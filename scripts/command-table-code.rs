// Hand-maintained part of src/command/table.rs.
//
// scripts/gen-command-table.py writes src/command/table.rs as: the @generated header,
// the imports, `static COMMANDS`, then everything below the marker line of this file.
// Edit the code here, then regenerate (and keep it `rustfmt`-clean: the generated file
// must not change under `cargo fmt`).
// ---- generated table.rs continues here ----

/// Longest command name (or `container|subcommand`) the lookups consider; longer names
/// are unknown. The longest Redis 7.0 name, `cluster|count-failure-reports`, has 29.
const NAME_BUF: usize = 64;

const fn c(
    name: &'static str,
    arity: i16,
    class: CommandClass,
    flags: u16,
    keys: &'static [KeySpec],
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        class,
        flags,
        keys,
    }
}

const fn k(begin: BeginSearch, find: FindKeys, write: bool) -> KeySpec {
    KeySpec { begin, find, write }
}

const fn ix(index: u16) -> BeginSearch {
    BeginSearch::Index(index)
}

const fn kw(keyword: &'static str, start_from: i16) -> BeginSearch {
    BeginSearch::Keyword {
        keyword,
        start_from,
    }
}

const fn rg(last_key: i16, key_step: u16, limit: u16) -> FindKeys {
    FindKeys::Range {
        last_key,
        key_step,
        limit,
    }
}

const fn kn(key_num_idx: u16, first_key: u16, key_step: u16) -> FindKeys {
    FindKeys::KeyNum {
        key_num_idx,
        first_key,
        key_step,
    }
}

/// Binary search for an already lowercased name.
fn find(lower: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS
        .binary_search_by(|spec| spec.name.as_bytes().cmp(lower))
        .ok()
        .map(|i| &COMMANDS[i])
}

/// Lowercases `parts` joined by `|` into `buf`; `None` when it does not fit.
fn lower_into<'b>(buf: &'b mut [u8; NAME_BUF], parts: &[&[u8]]) -> Option<&'b [u8]> {
    let mut len = 0;
    for (n, part) in parts.iter().enumerate() {
        if n > 0 {
            *buf.get_mut(len)? = b'|';
            len += 1;
        }
        let dst = buf.get_mut(len..len + part.len())?;
        for (d, s) in dst.iter_mut().zip(part.iter()) {
            *d = s.to_ascii_lowercase();
        }
        len += part.len();
    }
    Some(&buf[..len])
}

pub(super) fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; NAME_BUF];
    find(lower_into(&mut buf, &[name])?)
}

pub(super) fn lookup_request<A: ArgList + ?Sized>(args: &A) -> Option<&'static CommandSpec> {
    if args.is_empty() {
        return None;
    }
    let name = args.arg(0);
    // Redis dispatches on the bare name: `client|setname` is not a command on the wire.
    if name.contains(&b'|') {
        return None;
    }
    let spec = lookup(name)?;
    if spec.has(CONTAINER) && args.len() >= 2 {
        let sub = args.arg(1);
        let mut buf = [0u8; NAME_BUF];
        if !sub.contains(&b'|') {
            if let Some(found) = lower_into(&mut buf, &[name, sub]).and_then(find) {
                return Some(found);
            }
        }
    }
    Some(spec)
}

pub(super) fn key_indices<A: ArgList + ?Sized>(spec: &CommandSpec, args: &A, out: &mut Vec<usize>) {
    if spec.has(CUSTOM_KEYS) {
        match spec.name {
            "sort" => return sort_keys(args, out, true),
            "sort_ro" => return sort_keys(args, out, false),
            // The KEYS spec is `incomplete`: Redis trusts the specs unless that spec
            // finds its keyword (searching back from the next-to-last argument), and
            // only then runs its own procedure.
            "migrate" => {
                let keys_option = spec.keys.iter().any(|key_spec| {
                    matches!(key_spec.begin, BeginSearch::Keyword { .. })
                        && spec_range(key_spec, args).is_some()
                });
                if keys_option {
                    return migrate_keys(args, out);
                }
            }
            // SET and BITFIELD (`variable_flags`): Redis' own procedures find the same
            // positions as the key specs.
            _ => {}
        }
    }
    for key_spec in spec.keys {
        if let Some((first, last, step)) = spec_range(key_spec, args) {
            out.extend((first..=last).step_by(step));
        }
    }
}

/// The keys of one key spec as `(first, last, step)`, following Redis'
/// `getKeysUsingKeySpecs`; `None` when the spec finds no keys in these arguments
/// (keyword absent, bad key count, out-of-range positions).
fn spec_range<A: ArgList + ?Sized>(spec: &KeySpec, args: &A) -> Option<(usize, usize, usize)> {
    let argc = args.len() as i64;
    let mut first = match spec.begin {
        BeginSearch::Index(index) => i64::from(index),
        BeginSearch::Keyword {
            keyword,
            start_from,
        } => {
            let start_from = i64::from(start_from);
            // Positive: search forward from `start_from` (the last argument cannot be
            // the keyword: no key would follow). Negative: search backward from
            // `argc + start_from` down to index 2.
            let (start, end) = if start_from > 0 {
                (start_from, argc - 1)
            } else {
                (argc + start_from, 1)
            };
            let step = if start <= end { 1 } else { -1 };
            let mut i = start;
            let mut found = None;
            while i != end {
                if i >= argc || i < 1 {
                    break;
                }
                if args
                    .arg(i as usize)
                    .eq_ignore_ascii_case(keyword.as_bytes())
                {
                    found = Some(i + 1);
                    break;
                }
                i += step;
            }
            found?
        }
    };
    let (last, step) = match spec.find {
        FindKeys::Range {
            last_key,
            key_step,
            limit,
        } => {
            let last_key = i64::from(last_key);
            let last = if last_key >= 0 {
                first + last_key
            } else if limit == 0 {
                argc + last_key
            } else {
                first + ((argc - first) / i64::from(limit) + last_key)
            };
            (last, key_step)
        }
        FindKeys::KeyNum {
            key_num_idx,
            first_key,
            key_step,
        } => {
            let at = first + i64::from(key_num_idx);
            if at < 0 || at >= argc {
                return None;
            }
            let count = parse_count(args.arg(at as usize))?;
            first += i64::from(first_key);
            (first.saturating_add(count).saturating_sub(1), key_step)
        }
    };
    if first < 1 || first >= argc || last >= argc || last < first {
        return None;
    }
    Some((first as usize, last as usize, usize::from(step.max(1))))
}

/// A non-negative key count, parsed as strictly as Redis' `string2ll` (no sign, no
/// leading zeros, no spaces).
fn parse_count(s: &[u8]) -> Option<i64> {
    match s {
        [b'0'] => Some(0),
        [b'1'..=b'9', rest @ ..] if rest.iter().all(u8::is_ascii_digit) => {
            std::str::from_utf8(s).ok()?.parse().ok()
        }
        _ => None,
    }
}

/// Redis' `sortGetKeys` / `sortROGetKeys`: the sorted key, and for SORT the argument
/// after the last STORE (LIMIT skips two arguments, GET and BY one).
fn sort_keys<A: ArgList + ?Sized>(args: &A, out: &mut Vec<usize>, store: bool) {
    let argc = args.len();
    if argc < 2 {
        return;
    }
    out.push(1);
    if !store {
        return;
    }
    let mut store_at = None;
    let mut i = 2;
    while i < argc {
        let arg = args.arg(i);
        if arg.eq_ignore_ascii_case(b"limit") {
            i += 2;
        } else if arg.eq_ignore_ascii_case(b"get") || arg.eq_ignore_ascii_case(b"by") {
            i += 1;
        } else if arg.eq_ignore_ascii_case(b"store") && i + 1 < argc {
            store_at = Some(i + 1);
        }
        i += 1;
    }
    out.extend(store_at);
}

/// Redis' `migrateGetKeys`: the key at index 3, or with the KEYS option (which needs an
/// empty key argument) every argument after KEYS.
fn migrate_keys<A: ArgList + ?Sized>(args: &A, out: &mut Vec<usize>) {
    let argc = args.len();
    if argc < 4 {
        return;
    }
    let mut first = 3;
    let mut last = 3;
    let mut i = 6;
    while i < argc {
        let arg = args.arg(i);
        if arg.eq_ignore_ascii_case(b"keys") {
            if !args.arg(3).is_empty() {
                return;
            }
            first = i + 1;
            last = argc - 1;
            break;
        } else if arg.eq_ignore_ascii_case(b"auth") {
            i += 1;
        } else if arg.eq_ignore_ascii_case(b"auth2") {
            i += 2;
        }
        i += 1;
    }
    if first <= last {
        out.extend(first..=last);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{key_indices, lookup, lookup_request, CommandClass};
    use super::*;

    fn keys(request: &[&str]) -> Vec<usize> {
        let args: Vec<&[u8]> = request.iter().map(|a| a.as_bytes()).collect();
        let spec = lookup_request(&args[..]).expect("known command");
        let mut out = Vec::new();
        key_indices(spec, &args[..], &mut out);
        out
    }

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in COMMANDS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} !< {}",
                pair[0].name,
                pair[1].name
            );
        }
        assert!(COMMANDS.iter().all(|c| c.name.len() <= NAME_BUF));
        assert!(COMMANDS.len() > 300);
    }

    #[test]
    fn lookup_is_case_insensitive() {
        for name in ["get", "GET", "Get", "gEt"] {
            assert_eq!(lookup(name.as_bytes()).map(|c| c.name), Some("get"));
        }
        assert_eq!(lookup(b"ZUNIONSTORE").unwrap().name, "zunionstore");
        assert_eq!(lookup(b"Client|SetName").unwrap().name, "client|setname");
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(b"").is_none());
        assert!(lookup(&[b'g'; 200]).is_none());
        assert!(lookup("gét".as_bytes()).is_none());
    }

    #[test]
    fn subcommands_resolve() {
        let req = |r: &[&str]| {
            let args: Vec<&[u8]> = r.iter().map(|a| a.as_bytes()).collect();
            lookup_request(&args[..]).map(|c| c.name)
        };
        assert_eq!(req(&["CLIENT", "SETNAME", "x"]), Some("client|setname"));
        assert_eq!(req(&["object", "Encoding", "k"]), Some("object|encoding"));
        assert_eq!(req(&["config", "GET", "maxmemory"]), Some("config|get"));
        assert_eq!(req(&["CONFIG", "nosuch"]), Some("config"));
        assert_eq!(req(&["CONFIG"]), Some("config"));
        assert_eq!(req(&["config", "get|x"]), Some("config"));
        assert_eq!(req(&["get", "client"]), Some("get"));
        assert_eq!(req(&["client|setname", "x"]), None);
        assert_eq!(req(&[]), None);
        let long = "x".repeat(100);
        assert_eq!(req(&["CLIENT", &long]), Some("client"));
        assert!(lookup(b"config").unwrap().has(CONTAINER));
        assert!(!lookup(b"get").unwrap().has(CONTAINER));
    }

    #[test]
    fn classes() {
        let class = |n: &str| lookup(n.as_bytes()).unwrap().class;
        assert_eq!(class("get"), CommandClass::Read);
        assert_eq!(class("keys"), CommandClass::Read);
        assert_eq!(class("time"), CommandClass::Read);
        assert_eq!(class("set"), CommandClass::Write);
        assert_eq!(class("publish"), CommandClass::Write);
        assert_eq!(class("eval"), CommandClass::Write);
        assert_eq!(class("eval_ro"), CommandClass::Read);
        assert_eq!(class("flushall"), CommandClass::Admin);
        assert_eq!(class("config|get"), CommandClass::Admin);
        assert_eq!(class("config"), CommandClass::Admin);
        assert_eq!(class("shutdown"), CommandClass::Admin);
        assert_eq!(class("client|kill"), CommandClass::Admin);
        assert_eq!(class("script|flush"), CommandClass::Admin);
        assert_eq!(class("ping"), CommandClass::Local);
        assert_eq!(class("client"), CommandClass::Local);
        assert_eq!(class("client|list"), CommandClass::Local);
        assert_eq!(class("command|getkeys"), CommandClass::Local);
        assert_eq!(class("monitor"), CommandClass::Unsupported);
        assert_eq!(class("cluster|info"), CommandClass::Unsupported);
        assert_eq!(class("client|tracking"), CommandClass::Unsupported);
        assert!(lookup(b"blpop").unwrap().has(BLOCKING));
        assert!(lookup(b"subscribe").unwrap().has(PUBSUB));
        assert!(lookup(b"multi").unwrap().has(TRANSACTION));
        assert!(lookup(b"evalsha").unwrap().has(SCRIPT));
        assert!(lookup(b"zunionstore").unwrap().has(MOVABLE_KEYS));
        assert!(lookup(b"get").unwrap().has(READONLY));
        assert!(lookup(b"sort").unwrap().has(CUSTOM_KEYS));
    }

    #[test]
    fn arity_ok() {
        let get = lookup(b"get").unwrap();
        assert!(!get.arity_ok(1));
        assert!(get.arity_ok(2));
        assert!(!get.arity_ok(3));
        let mset = lookup(b"mset").unwrap();
        assert!(!mset.arity_ok(2));
        assert!(mset.arity_ok(3));
        assert!(mset.arity_ok(30));
        let ping = lookup(b"ping").unwrap();
        assert!(ping.arity_ok(1) && ping.arity_ok(2));
    }

    #[test]
    fn key_positions() {
        assert_eq!(keys(&["GET", "k"]), [1]);
        assert_eq!(keys(&["MSET", "a", "1", "b", "2"]), [1, 3]);
        assert_eq!(keys(&["EVAL", "s", "2", "a", "b", "x"]), [3, 4]);
        assert_eq!(keys(&["EVAL", "s", "0"]), [] as [usize; 0]);
        assert_eq!(keys(&["EVAL", "s", "-1"]), [] as [usize; 0]);
        assert_eq!(keys(&["EVAL", "s", "01", "a"]), [] as [usize; 0]);
        assert_eq!(
            keys(&["XREAD", "COUNT", "2", "STREAMS", "a", "b", "0", "0"]),
            [4, 5]
        );
        assert_eq!(
            keys(&["SORT", "k", "LIMIT", "0", "1", "STORE", "d"]),
            [1, 6]
        );
        assert_eq!(keys(&["SORT", "k", "BY", "store", "GET", "#"]), [1]);
        assert_eq!(keys(&["MIGRATE", "h", "1", "k", "0", "5"]), [3]);
        assert_eq!(
            keys(&["MIGRATE", "h", "1", "", "0", "5", "AUTH", "keys", "KEYS", "a", "b"]),
            [9, 10]
        );
        assert_eq!(
            keys(&["MIGRATE", "h", "1", "k", "0", "5", "KEYS", "a"]),
            [] as [usize; 0]
        );
        assert_eq!(keys(&["MIGRATE", "h", "1", "k", "0", "5", "KEYS"]), [3]);
        assert_eq!(keys(&["ZUNIONSTORE", "d", "5", "a", "b"]), [1]);
        assert_eq!(
            keys(&["GEORADIUS", "k", "1", "2", "3", "m", "STORE", "d"]),
            [1, 7]
        );
        assert_eq!(keys(&["SUBSCRIBE", "c"]), [] as [usize; 0]);
        assert_eq!(keys(&["OBJECT", "ENCODING", "k"]), [2]);
    }

    #[test]
    fn no_panic_on_short_or_malformed_requests() {
        let words: [&[u8]; 12] = [
            b"STORE",
            b"KEYS",
            b"STREAMS",
            b"-1",
            b"0",
            b"2",
            b"99999999999999999999",
            b"",
            b"LIMIT",
            b"AUTH2",
            b"k",
            b"9223372036854775807",
        ];
        let mut out = Vec::new();
        for spec in COMMANDS {
            let mut args: Vec<&[u8]> = Vec::new();
            key_indices(spec, &args[..], &mut out);
            args.push(spec.name.as_bytes());
            for len in 1..10 {
                for start in 0..words.len() {
                    args.truncate(1);
                    args.extend((0..len).map(|i| words[(start + i) % words.len()]));
                    out.clear();
                    key_indices(spec, &args[..], &mut out);
                    assert!(
                        out.iter().all(|&i| i >= 1 && i < args.len()),
                        "{}",
                        spec.name
                    );
                    let _ = lookup_request(&args[..]);
                }
            }
        }
    }
}
