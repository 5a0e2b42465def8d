//! The REST service's accounts: a users file of argon2-hashed passwords and SHA-256-hashed
//! bearer tokens, kept in the state directory (`users.json`).
//!
//! Passwords are low-entropy secrets, so they are stored as argon2id PHC strings (salted, slow
//! to guess). Bearer tokens are 256 random bits made by the server, so a SHA-256 of each is
//! enough and lets a token be looked up directly. The file is written whole, to a temporary
//! file that is renamed into place, so it is never half-written; it is re-read when it changes
//! (`sim serve --add-user` run beside a live server takes effect at the next login).

use argon2::{PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The users file's name in a state directory.
pub const USERS_FILE: &str = "users.json";

/// What can go wrong with the users file.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// Reading or writing the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a users file.
    #[error("{path}: not a users file: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A user name the service cannot use.
    #[error("user name {0:?}: use 1 to 64 letters, digits, '.', '_', '-' or '@'")]
    BadName(String),
    /// A password too short to be worth hashing.
    #[error("the password must have at least 8 characters")]
    ShortPassword,
    /// No such user.
    #[error("no user {0:?}")]
    NoUser(String),
    /// The hash function failed (it does not, for sane inputs).
    #[error("hashing failed: {0}")]
    Hash(String),
    /// The system's random source failed.
    #[error("no randomness: {0}")]
    Random(String),
}

/// One user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// May see and control every job, and the admin pages.
    #[serde(default)]
    pub admin: bool,
    /// The argon2id PHC string of the password (none: bearer tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Hex SHA-256 of each bearer token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<String>,
}

/// The users file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accounts {
    /// Users by name.
    pub users: BTreeMap<String, User>,
}

/// Who a login is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name.
    pub user: String,
    /// An admin.
    pub admin: bool,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// `n` random bytes from the system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], AccountsError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| AccountsError::Random(e.to_string()))?;
    Ok(b)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn token_hash(token: &str) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref())
}

/// Constant-time equality of two strings (of hashes: their lengths are public).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Accounts {
    /// Reads the users file of a state directory (none yet: no users).
    pub fn load(state: &Path) -> Result<Accounts, AccountsError> {
        let path = state.join(USERS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Accounts::default()),
            Err(source) => return Err(AccountsError::Io { path, source }),
        };
        let accounts: Accounts = serde_json::from_str(&text).map_err(|e| AccountsError::Malformed {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if let Some(bad) = accounts.users.keys().find(|n| !valid_name(n)) {
            return Err(AccountsError::Malformed {
                path,
                message: format!("user name {bad:?} is not allowed"),
            });
        }
        Ok(accounts)
    }

    /// Writes the users file atomically (a temporary file renamed over it), readable by the
    /// owner only.
    pub fn save(&self, state: &Path) -> Result<(), AccountsError> {
        let path = state.join(USERS_FILE);
        let io = |source| AccountsError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state).map_err(io)?;
        let tmp = state.join(format!(".{USERS_FILE}.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(self).expect("plain data serialises") + "\n";
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)
    }

    /// Adds a user or changes their password and role.
    pub fn set_user(&mut self, name: &str, password: &str, admin: bool) -> Result<(), AccountsError> {
        if !valid_name(name) {
            return Err(AccountsError::BadName(name.to_string()));
        }
        if password.chars().count() < 8 {
            return Err(AccountsError::ShortPassword);
        }
        let salt = random_bytes::<16>()?;
        let hash = argon2::Argon2::default()
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map_err(|e| AccountsError::Hash(e.to_string()))?;
        let u = self.users.entry(name.to_string()).or_insert(User {
            admin,
            password: None,
            tokens: Vec::new(),
        });
        u.admin = admin;
        u.password = Some(hash.to_string());
        Ok(())
    }

    /// Makes a new bearer token for a user (creating a token-only user if there is none) and
    /// returns it; only its hash is kept.
    pub fn add_token(&mut self, name: &str, admin: bool) -> Result<String, AccountsError> {
        if !valid_name(name) {
            return Err(AccountsError::BadName(name.to_string()));
        }
        let token = hex(&random_bytes::<32>()?);
        let u = self.users.entry(name.to_string()).or_insert(User {
            admin,
            password: None,
            tokens: Vec::new(),
        });
        u.tokens.push(token_hash(&token));
        Ok(token)
    }

    /// Removes a user.
    pub fn remove_user(&mut self, name: &str) -> Result<(), AccountsError> {
        self.users
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| AccountsError::NoUser(name.to_string()))
    }

    /// Checks a password. A wrong name and a wrong password look the same (and take about as
    /// long: an unknown name is checked against a dummy hash).
    pub fn check_password(&self, name: &str, password: &str) -> Option<Identity> {
        let argon = argon2::Argon2::default();
        let check = |phc: &str| argon.verify_password(password.as_bytes(), phc).is_ok();
        match self.users.get(name).and_then(|u| u.password.as_deref().map(|p| (u, p))) {
            Some((u, phc)) if check(phc) => Some(Identity {
                user: name.to_string(),
                admin: u.admin,
            }),
            Some(_) => None,
            None => {
                let _ = check(DUMMY_HASH);
                None
            }
        }
    }

    /// The user a bearer token belongs to.
    pub fn check_token(&self, token: &str) -> Option<Identity> {
        let h = token_hash(token);
        self.users.iter().find_map(|(name, u)| {
            u.tokens.iter().any(|t| same(t, &h)).then(|| Identity {
                user: name.clone(),
                admin: u.admin,
            })
        })
    }
}

/// An argon2id hash of a random password nobody knows, for timing-safe refusals.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c3Bpbm5iZWRkdW1teXNhbHQ$4qMEdIvTGnvtsw6YkmBJ6gQNHGyIgn0cg/X6rUX3r1Y";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens_check_and_survive_a_save() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Accounts::load(dir.path()).unwrap();
        assert!(a.users.is_empty());
        a.set_user("alice", "correct horse", false).unwrap();
        a.set_user("root", "battery staple", true).unwrap();
        let token = a.add_token("alice", false).unwrap();
        assert_eq!(token.len(), 64);
        a.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(USERS_FILE)).unwrap();
        assert!(!text.contains("correct horse") && !text.contains(&token), "{text}");
        assert!(text.contains("$argon2id$"), "{text}");
        let b = Accounts::load(dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            b.check_password("alice", "correct horse"),
            Some(Identity {
                user: "alice".into(),
                admin: false
            })
        );
        assert_eq!(b.check_password("root", "battery staple").map(|i| i.admin), Some(true));
        assert_eq!(b.check_password("alice", "correct horsE"), None);
        assert_eq!(b.check_password("nobody", "correct horse"), None);
        assert_eq!(b.check_token(&token).map(|i| i.user), Some("alice".to_string()));
        assert_eq!(b.check_token("00"), None);
        let mode = std::fs::metadata(dir.path().join(USERS_FILE)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn bad_names_passwords_and_files_are_refused() {
        let mut a = Accounts::default();
        assert!(matches!(
            a.set_user("a b", "long enough", false),
            Err(AccountsError::BadName(_))
        ));
        assert!(matches!(
            a.set_user("", "long enough", false),
            Err(AccountsError::BadName(_))
        ));
        assert!(matches!(
            a.set_user("ok", "short", false),
            Err(AccountsError::ShortPassword)
        ));
        assert!(matches!(a.remove_user("ghost"), Err(AccountsError::NoUser(_))));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(USERS_FILE), "{\"users\": {\"x\": {\"admn\": true}}}").unwrap();
        let e = Accounts::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("users.json") && e.contains("admn"), "{e}");
        std::fs::write(dir.path().join(USERS_FILE), "{\"users\": {\"a b\": {}}}").unwrap();
        let e = Accounts::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("\"a b\""), "{e}");
    }

    #[test]
    fn the_dummy_hash_parses() {
        assert!(argon2::PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
