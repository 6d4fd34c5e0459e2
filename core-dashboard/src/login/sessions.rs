//! The signed-in sessions: random ids kept in this process's memory, each with its CSRF token
//! and an expiry.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// The most sessions kept at once; past it the expired ones go, then the oldest.
const MAX_SESSIONS: usize = 10_000;

/// Bytes of randomness in a session id and in a CSRF token (256 bits).
const TOKEN_BYTES: usize = 32;

/// One session as a request sees it.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The token every state-changing request of the session carries in `x-csrf-token`.
    pub(crate) csrf_token: String,
    /// When the session ends.
    pub(crate) expires_at: DateTime<Utc>,
}

struct Entry {
    session: Session,
    expires: Instant,
}

/// Session id → session, with the time to live of new sessions.
pub(crate) struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a session: its fresh id and the session.
    pub(crate) fn create(&self) -> (String, Session) {
        let id = random_token();
        let session = Session {
            csrf_token: random_token(),
            expires_at: Utc::now()
                + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX),
        };
        let now = Instant::now();
        let entry = Entry {
            session: session.clone(),
            expires: now
                .checked_add(self.ttl)
                .unwrap_or(now + Duration::from_secs(86_400 * 365)),
        };
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, e| e.expires > now);
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), entry);
        (id, session)
    }

    /// The live session of `id`; an expired one is removed.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map.get(id)?;
        if entry.expires > Instant::now() {
            return Some(entry.session.clone());
        }
        map.remove(id);
        None
    }

    /// Ends the session of `id` (if there is one).
    pub(crate) fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// How long a new session lives.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// 256 random bits from the thread's cryptographically secure generator, in hex.
fn random_token() -> String {
    core_web::token::random_hex(TOKEN_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_random_and_expire() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let (a, sa) = sessions.create();
        let (b, sb) = sessions.create();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_ne!(sa.csrf_token, sb.csrf_token);
        assert_eq!(sessions.get(&a).unwrap().csrf_token, sa.csrf_token);
        sessions.remove(&a);
        assert!(sessions.get(&a).is_none());
        assert!(sessions.get(&b).is_some());

        let expired = Sessions::new(Duration::ZERO);
        let (c, _) = expired.create();
        assert!(expired.get(&c).is_none());
    }
}
