//! etcd's simple tokens (auth/simple_token.go): a random string handed out by the member
//! that authenticated the user, known only to that member, and forgotten after
//! `--auth-token-ttl` without use. A token the member does not know is answered with
//! `invalid auth token`, and clients authenticate again.
//!
//! The replicated auth store drops tokens when it applies what invalidates them (a user
//! deleted or given a new password, auth disabled): that needs no clock, so apply stays
//! deterministic; only [`SimpleTokens::info`] and [`SimpleTokens::assign`] read the clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

/// etcd's --auth-token-ttl default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// Letters of the random part of a token (etcd: 16 of `[a-zA-Z]`).
const TOKEN_LETTERS: usize = 16;

struct Entry {
    user: String,
    deadline: Instant,
}

pub struct SimpleTokens {
    tokens: Mutex<HashMap<String, Entry>>,
    ttl: Mutex<Duration>,
    /// etcd appends the raft index of the Authenticate request; a counter keeps tokens
    /// distinct the same way.
    index: AtomicU64,
}

impl Default for SimpleTokens {
    fn default() -> Self {
        SimpleTokens {
            tokens: Mutex::new(HashMap::new()),
            ttl: Mutex::new(DEFAULT_TTL),
            index: AtomicU64::new(0),
        }
    }
}

impl SimpleTokens {
    pub fn set_ttl(&self, ttl: Duration) {
        *self.ttl.lock().expect("token ttl lock") = ttl;
    }

    fn ttl(&self) -> Duration {
        *self.ttl.lock().expect("token ttl lock")
    }

    /// A new token for `user`.
    pub fn assign(&self, user: &str) -> String {
        let mut rng = rand::thread_rng();
        let random: String = (0..TOKEN_LETTERS)
            .map(|_| {
                let i = rng.gen_range(0..52u8);
                char::from(if i < 26 { b'a' + i } else { b'A' + i - 26 })
            })
            .collect();
        let index = self.index.fetch_add(1, Ordering::Relaxed) + 1;
        let token = format!("{random}.{index}");
        let now = Instant::now();
        let ttl = self.ttl();
        let mut tokens = self.tokens.lock().expect("tokens lock");
        // Forget expired tokens here, so that memory stays bounded by the live ones.
        tokens.retain(|_, e| e.deadline > now);
        tokens.insert(
            token.clone(),
            Entry {
                user: user.to_string(),
                deadline: now + ttl,
            },
        );
        token
    }

    /// The user of a live token; using it extends its life by the TTL.
    pub fn info(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let ttl = self.ttl();
        let mut tokens = self.tokens.lock().expect("tokens lock");
        match tokens.get_mut(token) {
            Some(e) if e.deadline > now => {
                e.deadline = now + ttl;
                Some(e.user.clone())
            }
            Some(_) => {
                tokens.remove(token);
                None
            }
            None => None,
        }
    }

    /// Forget every token of `user` (deleted, or given a new password).
    pub fn invalidate_user(&self, user: &str) {
        self.tokens
            .lock()
            .expect("tokens lock")
            .retain(|_, e| e.user != user);
    }

    /// Forget every token (auth disabled).
    pub fn clear(&self) {
        self.tokens.lock().expect("tokens lock").clear();
    }

    pub fn len(&self) -> usize {
        self.tokens.lock().expect("tokens lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_after_disuse_and_are_invalidated() {
        let t = SimpleTokens::default();
        t.set_ttl(Duration::from_millis(200));
        let a = t.assign("alice");
        let b = t.assign("bob");
        assert_ne!(a, b);
        assert_eq!(a.split('.').next().unwrap().len(), TOKEN_LETTERS);
        assert_eq!(t.info(&a).as_deref(), Some("alice"));
        // an unused token expires once the TTL has passed since it was last used
        let unused_since = Instant::now();
        while unused_since.elapsed() <= Duration::from_millis(250) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(t.info(&b), None);
        let c = t.assign("carol");
        t.invalidate_user("carol");
        assert_eq!(t.info(&c), None);
        let d = t.assign("dave");
        t.clear();
        assert_eq!(t.info(&d), None);
        assert!(t.is_empty());
    }
}
