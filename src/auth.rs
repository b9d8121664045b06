//! Client authentication: passwords to rights (mode and key prefixes).
//!
//! Mirrors predixy's Authority section: each entry maps a password to a mode (`read`,
//! `write`, `admin`) and optional key prefixes per mode. An entry with an empty password
//! is what unauthenticated clients may do. Without an Authority section every client has
//! full rights. Passwords compare in constant time.

use crate::command::CommandClass;
use crate::config::{AuthEntry, AuthMode};
use std::sync::Arc;

/// What one authenticated (or anonymous) client may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rights {
    pub mode: AuthMode,
    pub read_key_prefix: Vec<Vec<u8>>,
    pub write_key_prefix: Vec<Vec<u8>>,
}

impl Rights {
    /// Full rights: what every client has when no Authority section is configured.
    pub fn full() -> Rights {
        Rights {
            mode: AuthMode::Admin,
            read_key_prefix: Vec::new(),
            write_key_prefix: Vec::new(),
        }
    }

    /// May this client run a command of this class at all?
    pub fn allows_class(&self, class: CommandClass) -> bool {
        match class {
            CommandClass::Local | CommandClass::Unsupported => true,
            CommandClass::Read => true,
            CommandClass::Write => self.mode >= AuthMode::Write,
            CommandClass::Admin => self.mode >= AuthMode::Admin,
        }
    }

    /// May this client touch `key`, written or only read?
    pub fn allows_key(&self, key: &[u8], write: bool) -> bool {
        let prefixes = if write {
            &self.write_key_prefix
        } else {
            &self.read_key_prefix
        };
        prefixes.is_empty() || prefixes.iter().any(|p| key.starts_with(p))
    }
}

/// The password table built from the config.
#[derive(Debug)]
pub struct AuthTable {
    /// `None`: no Authority section, everyone has full rights.
    entries: Option<Vec<(Vec<u8>, Arc<Rights>)>>,
    anonymous: Option<Arc<Rights>>,
}

impl AuthTable {
    pub fn new(entries: Option<&[AuthEntry]>) -> AuthTable {
        let Some(entries) = entries else {
            return AuthTable {
                entries: None,
                anonymous: Some(Arc::new(Rights::full())),
            };
        };
        let mut table = Vec::new();
        let mut anonymous = None;
        for e in entries {
            let rights = Arc::new(Rights {
                mode: e.mode,
                read_key_prefix: e.read_key_prefix.clone(),
                write_key_prefix: e.write_key_prefix.clone(),
            });
            if e.password.is_empty() {
                anonymous = Some(rights);
            } else {
                table.push((e.password.as_bytes().to_vec(), rights));
            }
        }
        AuthTable {
            entries: Some(table),
            anonymous,
        }
    }

    /// True when passwords are configured at all (AUTH has something to check).
    pub fn requires_password(&self) -> bool {
        self.entries.as_ref().is_some_and(|e| !e.is_empty())
    }

    /// Rights of a client that has not authenticated; `None` = NOAUTH.
    pub fn anonymous(&self) -> Option<Arc<Rights>> {
        self.anonymous.clone()
    }

    /// Checks a password. Every entry is compared, in constant time, so the time taken
    /// tells nothing about which entry or how many bytes matched.
    pub fn authenticate(&self, password: &[u8]) -> Option<Arc<Rights>> {
        let entries = self.entries.as_ref()?;
        let mut found = None;
        for (pw, rights) in entries {
            if constant_time_eq(pw, password) {
                found = Some(rights.clone());
            }
        }
        found
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= (x ^ y) as usize;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pw: &str, mode: AuthMode, read: &[&str], write: &[&str]) -> AuthEntry {
        AuthEntry {
            password: pw.into(),
            mode,
            read_key_prefix: read.iter().map(|p| p.as_bytes().to_vec()).collect(),
            write_key_prefix: write.iter().map(|p| p.as_bytes().to_vec()).collect(),
        }
    }

    #[test]
    fn passwords_map_to_rights() {
        let entries = vec![
            entry("123456", AuthMode::Write, &[], &[]),
            entry("#a complex password#", AuthMode::Admin, &[], &[]),
            entry("ro", AuthMode::Read, &["app:"], &[]),
        ];
        let t = AuthTable::new(Some(&entries));
        assert!(t.requires_password());
        assert!(t.anonymous().is_none());
        assert_eq!(t.authenticate(b"123456").unwrap().mode, AuthMode::Write);
        assert_eq!(
            t.authenticate(b"#a complex password#").unwrap().mode,
            AuthMode::Admin
        );
        assert!(t.authenticate(b"12345").is_none());
        assert!(t.authenticate(b"1234567").is_none());
        assert!(t.authenticate(b"").is_none());
        let ro = t.authenticate(b"ro").unwrap();
        assert!(ro.allows_key(b"app:1", false));
        assert!(!ro.allows_key(b"other", false));
        assert!(!ro.allows_class(CommandClass::Write));
        assert!(ro.allows_class(CommandClass::Read));
    }

    #[test]
    fn empty_password_is_the_anonymous_rule_and_no_section_is_full_rights() {
        let t = AuthTable::new(Some(&[entry("", AuthMode::Read, &[], &[])]));
        assert_eq!(t.anonymous().unwrap().mode, AuthMode::Read);
        let open = AuthTable::new(None);
        assert!(!open.requires_password());
        assert_eq!(*open.anonymous().unwrap(), Rights::full());
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(&[0u8; 256], &[0u8; 0]));
    }
}
