//! The Auth service's work on the member (etcd: etcdserver/v3_server.go, the Auth part):
//! tokens are checked here, passwords are hashed here before a change is proposed (never
//! in apply), reads of the auth store are served after the read barrier, changes go
//! through the log with the caller in the command's header and are checked in apply.

use prost::Message;

use super::error::{Error, Result};
use super::member::Member;
use crate::apply::{Applied, Request};
use crate::auth::{self, AuthInfo};
use crate::proto::authpb::Permission;
pub use crate::proto::etcdserverpb::AuthUserAddRequest;
use crate::proto::etcdserverpb::{
    AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthRoleDeleteRequest,
    AuthRoleGrantPermissionRequest, AuthRoleRevokePermissionRequest, AuthUserChangePasswordRequest,
    AuthUserDeleteRequest, AuthUserGrantRoleRequest, AuthUserRevokeRoleRequest,
};

/// bcrypt's bounds; etcd uses its default cost for a --bcrypt-cost outside them.
const MIN_COST: u32 = 4;
const MAX_COST: u32 = 31;
const DEFAULT_COST: u32 = 10;

/// The cost etcd would use for `--bcrypt-cost`.
pub fn bcrypt_cost(flag: u32) -> u32 {
    if (MIN_COST..=MAX_COST).contains(&flag) {
        flag
    } else {
        DEFAULT_COST
    }
}

impl From<auth::Error> for Error {
    fn from(e: auth::Error) -> Self {
        Error::Auth(e)
    }
}

/// A hash as the client may hand it (etcd 3.5's `hashedPassword`): the bcrypt string, or
/// its base64 encoding as etcd's server writes it.
fn given_hash(h: &str) -> String {
    if h.starts_with("$2") {
        return h.to_string();
    }
    base64_decode(h)
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| s.starts_with("$2"))
        .unwrap_or_else(|| h.to_string())
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

impl Member {
    /// The user a request's token stands for (etcd's AuthInfoFromCtx): none without a
    /// token; a token this member does not know is `invalid auth token`, auth on or off.
    /// Without a token, the common name of a verified client certificate (the transport
    /// passes one only under `--client-cert-auth`) is the user, at the current auth
    /// revision (etcd: AuthInfoFromTLS, asked only when no token came).
    pub fn auth_info(
        &self,
        token: Option<&str>,
        cert_cn: Option<&str>,
    ) -> Result<Option<AuthInfo>> {
        let auth = self.state.auth.read().expect("auth lock");
        match (token, cert_cn) {
            (Some(token), _) => Ok(Some(auth.auth_info_from_token(token)?)),
            (None, Some(cn)) => Ok(Some(AuthInfo {
                username: cn.to_string(),
                revision: auth.revision(),
            })),
            (None, None) => Ok(None),
        }
    }

    /// etcd's IsAdminPermitted for the services that check it at the edge (Cluster, and
    /// Maintenance with its own error form).
    pub fn check_admin(&self, ai: Option<&AuthInfo>) -> Result<()> {
        Ok(self
            .state
            .auth
            .read()
            .expect("auth lock")
            .is_admin_permitted(ai)?)
    }

    /// Read permission on `[key, range_end)` now (reads are checked at read time).
    pub fn check_range(&self, ai: &AuthInfo, key: &[u8], range_end: &[u8]) -> Result<()> {
        Ok(self
            .state
            .auth
            .read()
            .expect("auth lock")
            .is_range_permitted(ai, key, range_end)?)
    }

    /// etcd's doSerialize tail: a read checked at an auth revision that changed while it
    /// ran is answered with ErrAuthOldRevision.
    pub(super) fn check_auth_revision_after_read(&self, ai: &AuthInfo) -> Result<()> {
        let auth = self.state.auth.read().expect("auth lock");
        let checked = auth.is_enabled() && ai.revision != 0 && ai.revision != u64::MAX;
        if checked && ai.revision != auth.revision() {
            return Err(auth::Error::AuthOldRevision.into());
        }
        Ok(())
    }

    async fn hash(&self, password: String) -> Result<String> {
        let cost = bcrypt_cost(self.settings.bcrypt_cost);
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Internal(e.to_string()))
    }

    async fn auth_change(&self, ai: &AuthInfo, req: Request, size: usize) -> Result<()> {
        match self.propose_as(ai, req, size).await? {
            Applied::None => Ok(()),
            other => Err(super::member::unexpected(other)),
        }
    }

    pub async fn auth_enable(&self, ai: &AuthInfo) -> Result<()> {
        let req = AuthEnableRequest {};
        self.auth_change(ai, Request::AuthEnable(req), 0).await
    }

    pub async fn auth_disable(&self, ai: &AuthInfo) -> Result<()> {
        let req = AuthDisableRequest {};
        self.auth_change(ai, Request::AuthDisable(req), 0).await
    }

    /// Whether auth is on, as this member has applied it (no read barrier).
    pub fn auth_enabled_now(&self) -> bool {
        self.state.auth.read().expect("auth lock").is_enabled()
    }

    /// (enabled, auth revision), as of the read barrier.
    pub async fn auth_status(&self) -> Result<(bool, u64)> {
        self.read_barrier().await?;
        let auth = self.state.auth.read().expect("auth lock");
        Ok((auth.is_enabled(), auth.revision()))
    }

    /// etcd's Authenticate: the password is checked against the hash of the revision
    /// read, and checked again if an auth change applied meanwhile.
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<String> {
        self.read_barrier().await?;
        loop {
            let (hash, rev) = self
                .state
                .auth
                .read()
                .expect("auth lock")
                .password_hash(name)?;
            let pw = password.to_string();
            let ok = tokio::task::spawn_blocking(move || {
                let hash = String::from_utf8_lossy(&hash).into_owned();
                bcrypt::verify(pw, &hash).unwrap_or(false)
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
            if !ok {
                return Err(auth::Error::AuthFailed.into());
            }
            let auth = self.state.auth.read().expect("auth lock");
            if auth.revision() != rev {
                continue;
            }
            if !auth.is_enabled() {
                return Err(auth::Error::AuthNotEnabled.into());
            }
            // a verify-only JWT member: etcd's text, code Unknown
            return auth
                .tokens()
                .assign(name, auth.revision())
                .map_err(Error::Internal);
        }
    }

    /// UserAdd: the password is hashed here unless the options say `no_password` (a
    /// request without options gets one, as etcd 3.4.23 and 3.5 do); a `hashedPassword`
    /// (etcd 3.5) is taken as it is.
    pub async fn user_add(&self, ai: &AuthInfo, mut req: AuthUserAddRequest) -> Result<()> {
        if req.name.is_empty() {
            return Err(auth::Error::UserEmpty.into());
        }
        let wants_password = req.options.as_ref().is_none_or(|o| !o.no_password);
        if !req.hashed_password.is_empty() && req.password.is_empty() {
            req.hashed_password = given_hash(&req.hashed_password);
        } else if wants_password {
            req.hashed_password = self.hash(std::mem::take(&mut req.password)).await?;
        } else {
            req.hashed_password.clear();
        }
        req.password.clear();
        let size = req.encoded_len();
        self.auth_change(ai, Request::AuthUserAdd(req), size).await
    }

    pub async fn user_delete(&self, ai: &AuthInfo, name: String) -> Result<()> {
        let req = AuthUserDeleteRequest { name };
        let size = req.encoded_len();
        self.auth_change(ai, Request::AuthUserDelete(req), size)
            .await
    }

    pub async fn user_change_password(
        &self,
        ai: &AuthInfo,
        mut req: AuthUserChangePasswordRequest,
    ) -> Result<()> {
        if !req.hashed_password.is_empty() && req.password.is_empty() {
            req.hashed_password = given_hash(&req.hashed_password);
        } else {
            req.hashed_password = self.hash(std::mem::take(&mut req.password)).await?;
        }
        req.password.clear();
        let size = req.encoded_len();
        self.auth_change(ai, Request::AuthUserChangePassword(req), size)
            .await
    }

    pub async fn user_grant_role(&self, ai: &AuthInfo, user: String, role: String) -> Result<()> {
        let req = AuthUserGrantRoleRequest { user, role };
        let size = req.encoded_len();
        self.auth_change(ai, Request::AuthUserGrantRole(req), size)
            .await
    }

    pub async fn user_revoke_role(&self, ai: &AuthInfo, name: String, role: String) -> Result<()> {
        let req = AuthUserRevokeRoleRequest { name, role };
        let size = req.encoded_len();
        self.auth_change(ai, Request::AuthUserRevokeRole(req), size)
            .await
    }

    pub async fn role_add(&self, ai: &AuthInfo, name: String) -> Result<()> {
        let req = AuthRoleAddRequest { name };
        let size = req.encoded_len();
        self.auth_change(ai, Request::AuthRoleAdd(req), size).await
    }

    pub async fn role_delete(&self, ai: &AuthInfo, role: String) -> Result<()> {
        let req = AuthRoleDeleteRequest { role };
        let size = req.encoded_len();
        self.auth_change(ai, Request::AuthRoleDelete(req), size)
            .await
    }

    pub async fn role_grant_permission(
        &self,
        ai: &AuthInfo,
        req: AuthRoleGrantPermissionRequest,
    ) -> Result<()> {
        let size = req.encoded_len();
        self.auth_change(ai, Request::AuthRoleGrantPermission(req), size)
            .await
    }

    pub async fn role_revoke_permission(
        &self,
        ai: &AuthInfo,
        req: AuthRoleRevokePermissionRequest,
    ) -> Result<()> {
        let size = req.encoded_len();
        self.auth_change(ai, Request::AuthRoleRevokePermission(req), size)
            .await
    }

    /// UserGet: root, or the user asking about itself (etcd's authApplierV3.UserGet).
    pub async fn user_get(&self, ai: &AuthInfo, name: &str) -> Result<Vec<String>> {
        self.read_barrier().await?;
        let auth = self.state.auth.read().expect("auth lock");
        if let Err(e) = auth.is_admin_permitted(Some(ai)) {
            if name != ai.username {
                return Err(e.into());
            }
        }
        Ok(auth.user_get(name)?)
    }

    pub async fn user_list(&self, ai: &AuthInfo) -> Result<Vec<String>> {
        self.read_barrier().await?;
        let auth = self.state.auth.read().expect("auth lock");
        auth.is_admin_permitted(Some(ai))?;
        Ok(auth.user_list())
    }

    /// RoleGet: root, or a user holding the role (etcd's authApplierV3.RoleGet).
    pub async fn role_get(&self, ai: &AuthInfo, role: &str) -> Result<Vec<Permission>> {
        self.read_barrier().await?;
        let auth = self.state.auth.read().expect("auth lock");
        if let Err(e) = auth.is_admin_permitted(Some(ai)) {
            if !auth.has_role(&ai.username, role) {
                return Err(e.into());
            }
        }
        Ok(auth.role_get(role)?)
    }

    pub async fn role_list(&self, ai: &AuthInfo) -> Result<Vec<String>> {
        self.read_barrier().await?;
        let auth = self.state.auth.read().expect("auth lock");
        auth.is_admin_permitted(Some(ai))?;
        Ok(auth.role_list())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_hash_is_taken_raw_or_base64() {
        let h = "$2b$04$abcdefghijklmnopqrstuu";
        assert_eq!(given_hash(h), h);
        // base64 of the same string, as etcd's server encodes hashedPassword
        let b64 = "JDJiJDA0JGFiY2RlZmdoaWprbG1ub3BxcnN0dXU=";
        assert_eq!(given_hash(b64), h);
        assert_eq!(bcrypt_cost(3), 10);
        assert_eq!(bcrypt_cost(4), 4);
        assert_eq!(bcrypt_cost(32), 10);
    }
}
