//! Value parsers both file formats share, so a value means the same thing in either.
//!
//! Every parser returns a message ready for a [`super::ConfigProblem`], saying what was
//! wrong and what was expected.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use super::{AuthMode, Distribution, HashKind, LogFormat};

/// What a duration value may look like, for messages.
const DURATION_HINT: &str = "expected seconds like 1 or 0.5, or 500ms, 2s, 1m, 1h";

/// Parses a duration: a decimal number of seconds (`1`, `0.5`, predixy's way) or a
/// number with a unit (`500ms`, `2s`, `1m`, `1h`).
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = number_and_unit(text);
    let nanos_per_unit: u128 = match unit {
        "" | "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(format!("bad duration `{text}` ({DURATION_HINT})")),
    };
    let nanos = decimal_nanos(number, nanos_per_unit)
        .ok_or_else(|| format!("bad duration `{text}` ({DURATION_HINT})"))?;
    duration_of(text, nanos)
}

/// A duration as predixy reads one (`RefreshInterval`, `ServerTimeout`,
/// `ServerRetryTimeout`): seconds, or a number with `s`, `ms` or `us`, where `m` means
/// milliseconds and `u` microseconds, in any case. (redmux TOML reads `m` as minutes.)
pub(super) fn parse_predixy_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = number_and_unit(text);
    let bad = || {
        format!(
            "bad duration `{text}` (expected seconds, or a number with s, ms or us; as in \
             predixy, `m` means milliseconds)"
        )
    };
    let nanos_per_unit: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "s" => 1_000_000_000,
        "m" | "ms" => 1_000_000,
        "u" | "us" => 1_000,
        _ => return Err(bad()),
    };
    let nanos = decimal_nanos(number, nanos_per_unit).ok_or_else(bad)?;
    duration_of(text, nanos)
}

/// A whole number of seconds, as predixy reads `ClientTimeout` and `KeepAlive` (an `s`
/// after it is allowed). predixy would read `1m` or `0.5` as 1 and 0 seconds; they are
/// refused here rather than read differently.
pub(super) fn parse_whole_seconds(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let digits = t.strip_suffix(['s', 'S']).unwrap_or(t);
    match digits.parse::<u64>() {
        Ok(secs) if !digits.starts_with('+') => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "bad duration `{text}` (expected a whole number of seconds, as predixy reads it)"
        )),
    }
}

/// A duration's digits (with any `.`) and the unit after them.
pub(super) fn number_and_unit(text: &str) -> (&str, &str) {
    let t = text.trim();
    let digits_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    t.split_at(digits_end)
}

/// `nanos` as a [`Duration`], or an error naming `text` when it does not fit.
fn duration_of(text: &str, nanos: u128) -> Result<Duration, String> {
    let secs = u64::try_from(nanos / 1_000_000_000)
        .map_err(|_| format!("duration `{text}` is too long"))?;
    // The remainder is below 1e9, so it fits in u32.
    let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, sub))
}

/// `number` (digits with at most one `.`) times `scale`, ignoring digits finer than 1 ns.
fn decimal_nanos(number: &str, scale: u128) -> Option<u128> {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() || frac.contains('.') || whole.len() > 30 {
        return None;
    }
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut total = whole_value.checked_mul(scale)?;
    let mut place = scale;
    for digit in frac.bytes() {
        place /= 10;
        total = total.checked_add(u128::from(digit - b'0') * place)?;
    }
    Some(total)
}

/// A TOML float number of seconds as a duration, through its shortest decimal form so
/// `0.1` means exactly 100 ms, as it does in a predixy file.
pub(super) fn duration_from_f64(secs: f64) -> Result<Duration, String> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("bad duration `{secs}` ({DURATION_HINT})"));
    }
    parse_duration(&format!("{secs}"))
}

/// A duration given as a whole number of seconds.
pub(super) fn duration_from_i64(secs: i64) -> Result<Duration, String> {
    u64::try_from(secs)
        .map(Duration::from_secs)
        .map_err(|_| format!("bad duration `{secs}` ({DURATION_HINT})"))
}

/// Parses a byte size: a whole number, optionally with `k`, `kb`, `m`, `mb`, `g`, `gb`
/// (powers of 1024, any case).
pub(super) fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let bad = || format!("bad size `{text}` (expected bytes like 1048576, 512kb, 64mb, 1gb)");
    let scale: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return Err(bad()),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    n.checked_mul(scale)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| format!("size `{text}` is too large"))
}

/// Parses a whole number that fits in `T`.
pub(super) fn parse_number<T: FromStr>(text: &str) -> Result<T, String> {
    let ok = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| text.parse::<T>().ok())
        .flatten()
        .ok_or_else(|| format!("bad number `{text}` (expected a whole number 0 or more)"))
}

/// Parses a listen address: `ip:port` (`0.0.0.0:7617`, `[::]:7617`) or `localhost:port`.
pub(super) fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        if let Ok(port) = parse_number::<u16>(port) {
            return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        }
    }
    Err(format!(
        "bad listen address `{text}` (expected ip:port like 0.0.0.0:7617 or [::]:7617, or localhost:port)"
    ))
}

/// Checks a server or Sentinel address: `host:port` or `[ipv6]:port`, port 1 to 65535.
pub(super) fn check_host_port(text: &str) -> Result<(), String> {
    if text.contains('@') {
        // predixy's `password@host:port`; the text is not echoed, it holds a password.
        return Err(
            "a password in a server address (`password@host:port`) is not \
                    supported: use `Password` for the servers or `SentinelPassword` for the \
                    Sentinels"
                .to_string(),
        );
    }
    let bad = || {
        format!(
            "bad server address `{text}` (expected host:port like 10.0.0.5:26379 or [::1]:26379)"
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port_ok = parse_number::<u16>(port).is_ok_and(|p| p > 0);
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => is_host_name_or_ipv4(host),
    };
    if port_ok && host_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

fn is_host_name_or_ipv4(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// Parses a hash tag: two ASCII characters (`{}`), or empty to turn tags off.
pub(super) fn parse_hash_tag(text: &str) -> Result<Option<(u8, u8)>, String> {
    match text.as_bytes() {
        [] => Ok(None),
        [open, close] if open.is_ascii() && close.is_ascii() => Ok(Some((*open, *close))),
        _ => Err(format!(
            "bad hash tag `{text}` (expected exactly two characters like \"{{}}\", or \"\" to disable tags)"
        )),
    }
}

/// Parses an auth mode: `read`, `write` or `admin`.
pub(super) fn parse_mode(text: &str) -> Result<AuthMode, String> {
    match text.to_ascii_lowercase().as_str() {
        "read" => Ok(AuthMode::Read),
        "write" => Ok(AuthMode::Write),
        "admin" => Ok(AuthMode::Admin),
        _ => Err(format!("bad mode `{text}` (expected read, write or admin)")),
    }
}

/// Parses a hash name: `crc16` or `atol`.
pub(super) fn parse_hash(text: &str) -> Result<HashKind, String> {
    match text.to_ascii_lowercase().as_str() {
        "crc16" => Ok(HashKind::Crc16),
        "atol" => Ok(HashKind::Atol),
        _ => Err(format!("bad hash `{text}` (expected crc16 or atol)")),
    }
}

/// Parses a distribution: `modula` or `random`.
pub(super) fn parse_distribution(text: &str) -> Result<Distribution, String> {
    match text.to_ascii_lowercase().as_str() {
        "modula" => Ok(Distribution::Modula),
        "random" => Ok(Distribution::Random),
        _ => Err(format!(
            "bad distribution `{text}` (expected modula or random)"
        )),
    }
}

/// Parses a log format: `plain` or `json`.
pub(super) fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text.to_ascii_lowercase().as_str() {
        "plain" => Ok(LogFormat::Plain),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("bad log format `{text}` (expected plain or json)")),
    }
}

/// Checks a log filter: comma-separated `level` or `target=level` items, where a level is
/// one of trace, debug, info, warn, error, off.
pub(super) fn check_log_level(text: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let item_ok = |item: &str| {
        let level = item.rsplit_once('=').map_or(
            item,
            |(target, level)| {
                if target.is_empty() {
                    ""
                } else {
                    level
                }
            },
        );
        LEVELS.contains(&level.to_ascii_lowercase().as_str())
    };
    if !text.is_empty() && text.split(',').all(|item| item_ok(item.trim())) {
        Ok(())
    } else {
        Err(format!(
            "bad log level `{text}` (expected trace, debug, info, warn, error or off, optionally per target like redmux=debug,info)"
        ))
    }
}

/// `yes`/`no` (predixy style), also `true`/`false` and `on`/`off`.
pub(super) fn parse_bool(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" => Ok(true),
        "no" | "false" | "off" => Ok(false),
        _ => Err(format!("bad switch `{text}` (expected yes or no)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("0.5"), Ok(ms(500)));
        assert_eq!(parse_duration("1"), Ok(ms(1000)));
        assert_eq!(parse_duration(".25"), Ok(ms(250)));
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("2s"), Ok(ms(2000)));
        assert_eq!(parse_duration("1m"), Ok(ms(60_000)));
        assert_eq!(parse_duration("1.5m"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            ".",
            "-1",
            "1.2.3",
            "5x",
            "ms",
            "1 s",
            "1e3",
            "99999999999999999999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(duration_from_f64(0.5), Ok(ms(500)));
        assert_eq!(duration_from_f64(0.1), Ok(ms(100)));
        assert!(duration_from_f64(-0.5).is_err());
        assert!(duration_from_f64(f64::NAN).is_err());
        assert!(duration_from_f64(1e300).is_err());
        assert!(duration_from_i64(-1).is_err());
    }

    #[test]
    fn sizes_numbers_addresses() {
        assert_eq!(parse_size("512mb"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("1tb").is_err());
        assert!(parse_size("99999999999999999999gb").is_err());
        assert_eq!(parse_number::<u32>("60"), Ok(60));
        assert!(parse_number::<u32>("+60").is_err());
        assert!(parse_number::<u32>("-1").is_err());
        assert!(parse_number::<u32>("4x").is_err());
        assert!(parse_bind("0.0.0.0:7617").is_ok());
        assert!(parse_bind("[::]:7617").is_ok());
        assert_eq!(
            parse_bind("localhost:1"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 1)))
        );
        assert!(parse_bind("0.0.0.0").is_err());
        assert!(parse_bind("example.com:80").is_err());
        assert!(check_host_port("instance01-redis-ha:26379").is_ok());
        assert!(check_host_port("[::1]:26379").is_ok());
        for bad in ["host", "host:0", ":1", "a b:1", "host:99999", "[zz]:1"] {
            assert!(check_host_port(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn names() {
        assert_eq!(parse_hash_tag("{}"), Ok(Some((b'{', b'}'))));
        assert_eq!(parse_hash_tag(""), Ok(None));
        assert!(parse_hash_tag("{").is_err());
        assert!(parse_hash_tag("{}}").is_err());
        assert!(parse_hash_tag("é").is_err());
        assert_eq!(parse_mode("Admin"), Ok(AuthMode::Admin));
        assert!(parse_mode("root").is_err());
        assert!(parse_hash("md5").is_err());
        assert!(parse_distribution("ketama").is_err());
        assert!(parse_log_format("xml").is_err());
        assert!(check_log_level("info").is_ok());
        assert!(check_log_level("redmux=debug,warn").is_ok());
        assert!(check_log_level("verbose").is_err());
        assert!(check_log_level("").is_err());
        assert!(check_log_level("=info").is_err());
    }
}
