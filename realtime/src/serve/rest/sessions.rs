//! Login sessions of the REST service: `JSESSIONID` cookies and their CSRF tokens.
//!
//! As the Java service does (Spring Security): the login page opens an anonymous session with
//! a CSRF token for the form; a successful login replaces it by a new session (a new id, so a
//! planted cookie is worthless) that holds the user; every state-changing request must carry
//! its session's CSRF token. Sessions live in memory (a restart logs everyone out), end after
//! [`IDLE`] without use, and are capped: anonymous ones at [`MAX_ANONYMOUS`] (a flood of login
//! page visits evicts only other anonymous sessions), logged-in ones at [`MAX_SESSIONS`]
//! (least recently used evicted first).

use super::accounts::{Identity, hex, random_bytes};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A session unused this long is gone.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// Anonymous sessions (a login page was fetched) kept at most.
pub const MAX_ANONYMOUS: usize = 1024;
/// Logged-in sessions kept at most.
pub const MAX_SESSIONS: usize = 16_384;

/// One session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who, once logged in.
    pub identity: Option<Identity>,
    /// The session's CSRF token.
    pub csrf: String,
    last: Instant,
}

/// Every session.
#[derive(Debug, Default)]
pub struct Sessions {
    map: BTreeMap<String, Session>,
}

fn new_secret() -> String {
    // The system's random source does not fail on Linux once booted; if it did, no session
    // could be made safely, so failing loudly is right.
    hex(&random_bytes::<32>().expect("the system's random source"))
}

impl Sessions {
    /// Opens an anonymous session; returns its id and CSRF token.
    pub fn open(&mut self, now: Instant) -> (String, String) {
        self.insert(now, None)
    }

    /// Logs `identity` in: a new session replaces `old` (if any); returns its id and token.
    pub fn login(&mut self, now: Instant, old: Option<&str>, identity: Identity) -> (String, String) {
        if let Some(old) = old {
            self.map.remove(old);
        }
        self.insert(now, Some(identity))
    }

    fn insert(&mut self, now: Instant, identity: Option<Identity>) -> (String, String) {
        self.expire(now);
        let anonymous = identity.is_none();
        let cap = if anonymous { MAX_ANONYMOUS } else { MAX_SESSIONS };
        let count = self.map.values().filter(|s| s.identity.is_none() == anonymous).count();
        if count >= cap
            && let Some(oldest) = self
                .map
                .iter()
                .filter(|(_, s)| s.identity.is_none() == anonymous)
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone())
        {
            self.map.remove(&oldest);
        }
        let id = new_secret();
        let csrf = new_secret();
        self.map.insert(
            id.clone(),
            Session {
                identity,
                csrf: csrf.clone(),
                last: now,
            },
        );
        (id, csrf)
    }

    /// The session `id`, if it is live (marking it used).
    pub fn get(&mut self, now: Instant, id: &str) -> Option<&Session> {
        if now.saturating_duration_since(self.map.get(id)?.last) > IDLE {
            self.map.remove(id);
            return None;
        }
        let s = self.map.get_mut(id)?;
        s.last = now;
        Some(s)
    }

    /// Ends a session.
    pub fn logout(&mut self, id: &str) {
        self.map.remove(id);
    }

    /// Live sessions (anonymous, logged in).
    pub fn counts(&self) -> (usize, usize) {
        let anonymous = self.map.values().filter(|s| s.identity.is_none()).count();
        (anonymous, self.map.len() - anonymous)
    }

    fn expire(&mut self, now: Instant) {
        self.map.retain(|_, s| now.saturating_duration_since(s.last) <= IDLE);
    }
}

/// Whether `given` is `session`'s CSRF token (in constant time).
pub fn csrf_ok(session: &Session, given: Option<&str>) -> bool {
    let Some(given) = given else { return false };
    let want = session.csrf.as_bytes();
    want.len() == given.len() && want.iter().zip(given.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity {
            user: "alice".into(),
            admin: false,
        }
    }

    #[test]
    fn login_replaces_the_anonymous_session_and_checks_csrf() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let (anon, token) = s.open(t0);
        assert!(s.get(t0, &anon).unwrap().identity.is_none());
        assert!(csrf_ok(s.get(t0, &anon).unwrap(), Some(&token)));
        let (id, csrf) = s.login(t0, Some(&anon), alice());
        assert_ne!(id, anon);
        assert!(s.get(t0, &anon).is_none(), "the old id is worthless");
        let sess = s.get(t0, &id).unwrap().clone();
        assert_eq!(sess.identity, Some(alice()));
        assert!(csrf_ok(&sess, Some(&csrf)));
        assert!(!csrf_ok(&sess, Some(&token)));
        assert!(!csrf_ok(&sess, None));
        assert!(!csrf_ok(&sess, Some("")));
        s.logout(&id);
        assert!(s.get(t0, &id).is_none());
    }

    #[test]
    fn idle_sessions_end_and_floods_evict_only_their_kind() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let (id, _) = s.login(t0, None, alice());
        let t1 = t0 + IDLE - Duration::from_secs(1);
        assert!(s.get(t1, &id).is_some());
        for _ in 0..MAX_ANONYMOUS + 50 {
            s.open(t1);
        }
        assert_eq!(s.counts(), (MAX_ANONYMOUS, 1));
        assert!(s.get(t1, &id).is_some(), "anonymous sessions never evict a login");
        assert!(s.get(t1 + IDLE + Duration::from_secs(1), &id).is_none());
    }
}
