//! The member's token provider (etcd: auth.TokenProvider): simple tokens by default, JWT
//! once `--auth-token jwt,...` has given its keys ([`Tokens::use_jwt`], at member start).

use std::sync::OnceLock;
use std::time::Duration;

use super::{JwtTokens, SimpleTokens};

#[derive(Default)]
pub struct Tokens {
    simple: SimpleTokens,
    jwt: OnceLock<JwtTokens>,
}

impl Tokens {
    /// From now on tokens are JWTs signed and verified with `jwt`'s keys; false if JWT
    /// was already set.
    pub fn use_jwt(&self, jwt: JwtTokens) -> bool {
        self.jwt.set(jwt).is_ok()
    }

    /// `--auth-token-ttl`: how long a simple token lives without use (a JWT has its own
    /// `ttl` option).
    pub fn set_ttl(&self, ttl: Duration) {
        self.simple.set_ttl(ttl);
    }

    /// A new token for `user`, authenticated at auth revision `revision`. Fails only on
    /// a verify-only JWT member, with etcd's text.
    pub fn assign(&self, user: &str, revision: u64) -> Result<String, String> {
        match self.jwt.get() {
            Some(jwt) => jwt.assign(user, revision),
            None => Ok(self.simple.assign(user)),
        }
    }

    /// The user of a live token, and the auth revision a JWT carries (`None` for a simple
    /// token: it stands for the store's current revision).
    pub fn info(&self, token: &str) -> Option<(String, Option<u64>)> {
        match self.jwt.get() {
            Some(jwt) => jwt.info(token).map(|(user, rev)| (user, Some(rev))),
            None => self.simple.info(token).map(|user| (user, None)),
        }
    }

    /// Forget every simple token of `user` (a JWT of an older auth revision is refused as
    /// old instead).
    pub fn invalidate_user(&self, user: &str) {
        self.simple.invalidate_user(user);
    }

    /// Forget every simple token (auth disabled).
    pub fn clear(&self) {
        self.simple.clear();
    }
}
