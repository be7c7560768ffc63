//! The replicated auth store (etcd: auth/store.go): whether auth is on, the auth revision,
//! users and roles. Changed only by `apply` (each change adds its records to the apply's
//! batch and, as etcd's `commitRevision`, bumps the revision); read by the permission
//! checks of every request path.
//!
//! The rules are etcd 3.4's: `root` can be neither deleted nor lose the `root` role while
//! auth is on, nor can the `root` role be deleted; granting a role twice changes nothing;
//! deleting a role takes it from every user; a user holding `root` may do anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use super::range_perm::UnifiedPerms;
use super::{Error, Result, Tokens};
use crate::proto::authpb::{Permission, Role, User, UserAddOptions};
use crate::storage::{schema, WriteBatch};

pub const ROOT_USER: &str = "root";
pub const ROOT_ROLE: &str = "root";

/// Who a request is checked for: a user and the auth revision its credentials were
/// checked against (etcd's AuthInfo). The default, no user and revision 0, is a request
/// that brought no credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthInfo {
    pub username: String,
    pub revision: u64,
}

impl AuthInfo {
    /// The member acting on its own (etcd's `WithRoot`: expired-lease revokes,
    /// auto-compaction, health probes): `root` at a revision no auth change outdates.
    pub fn member() -> Self {
        AuthInfo {
            username: ROOT_USER.to_string(),
            revision: u64::MAX,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.username.is_empty() && self.revision == 0
    }
}

pub struct AuthStore {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    tokens: Arc<Tokens>,
}

impl Default for AuthStore {
    fn default() -> Self {
        AuthStore {
            enabled: false,
            // etcd's NewAuthStore commits revision 1 into an empty store.
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
            tokens: Arc::new(Tokens::default()),
        }
    }
}

fn user_key(name: &str) -> Bytes {
    [schema::AUTH_USER, name.as_bytes()].concat().into()
}

fn role_key(name: &str) -> Bytes {
    [schema::AUTH_ROLE, name.as_bytes()].concat().into()
}

fn name_of(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn has_root_role(u: &User) -> bool {
    u.roles.iter().any(|r| r == ROOT_ROLE)
}

impl AuthStore {
    /// Rebuild from the state tree's auth records (prefix `schema::AUTH`), keeping the
    /// token table (tokens are the member's, not the state's).
    pub fn restore(
        entries: impl IntoIterator<Item = (Bytes, Bytes)>,
        tokens: Arc<Tokens>,
    ) -> std::result::Result<Self, String> {
        let mut s = AuthStore {
            tokens,
            ..Default::default()
        };
        for (k, v) in entries {
            if k.as_ref() == schema::AUTH_ENABLED {
                s.enabled = v.as_ref() == [1];
            } else if k.as_ref() == schema::AUTH_REVISION {
                let b: [u8; 8] = v
                    .as_ref()
                    .try_into()
                    .map_err(|_| "auth revision record of the wrong size".to_string())?;
                s.revision = u64::from_be_bytes(b);
            } else if let Some(name) = k.strip_prefix(schema::AUTH_USER) {
                let u = User::decode(v).map_err(|e| format!("auth user record: {e}"))?;
                s.users
                    .insert(String::from_utf8_lossy(name).into_owned(), u);
            } else if let Some(name) = k.strip_prefix(schema::AUTH_ROLE) {
                let r = Role::decode(v).map_err(|e| format!("auth role record: {e}"))?;
                s.roles
                    .insert(String::from_utf8_lossy(name).into_owned(), r);
            }
        }
        Ok(s)
    }

    pub fn tokens(&self) -> &Arc<Tokens> {
        &self.tokens
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    fn commit_revision(&mut self, batch: &mut WriteBatch) {
        self.revision += 1;
        batch.put(
            Bytes::from_static(schema::AUTH_REVISION),
            self.revision.to_be_bytes().to_vec(),
        );
    }

    fn put_user(&mut self, u: User, batch: &mut WriteBatch) {
        let name = name_of(&u.name);
        batch.put(user_key(&name), u.encode_to_vec());
        self.users.insert(name, u);
    }

    fn put_role(&mut self, r: Role, batch: &mut WriteBatch) {
        let name = name_of(&r.name);
        batch.put(role_key(&name), r.encode_to_vec());
        self.roles.insert(name, r);
    }

    // ---- changes, applied from the log ----

    pub fn enable(&mut self, batch: &mut WriteBatch) -> Result<()> {
        if self.enabled {
            return Ok(());
        }
        let root = self.users.get(ROOT_USER).ok_or(Error::RootUserNotExist)?;
        if !has_root_role(root) {
            return Err(Error::RootRoleNotExist);
        }
        self.enabled = true;
        batch.put(Bytes::from_static(schema::AUTH_ENABLED), vec![1u8]);
        Ok(())
    }

    pub fn disable(&mut self, batch: &mut WriteBatch) {
        if !self.enabled {
            return;
        }
        self.enabled = false;
        batch.put(Bytes::from_static(schema::AUTH_ENABLED), vec![0u8]);
        self.commit_revision(batch);
        self.tokens.clear();
    }

    /// `hashed` is the bcrypt hash the proposer made (empty for a user without password).
    pub fn user_add(
        &mut self,
        name: &str,
        hashed: &[u8],
        options: Option<UserAddOptions>,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        if name.is_empty() {
            return Err(Error::UserEmpty);
        }
        if self.users.contains_key(name) {
            return Err(Error::UserAlreadyExist);
        }
        let options = options.unwrap_or_default();
        let password = if options.no_password {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(hashed)
        };
        let u = User {
            name: Bytes::copy_from_slice(name.as_bytes()),
            password,
            roles: Vec::new(),
            options: Some(options),
        };
        self.put_user(u, batch);
        self.commit_revision(batch);
        Ok(())
    }

    pub fn user_delete(&mut self, name: &str, batch: &mut WriteBatch) -> Result<()> {
        if self.enabled && name == ROOT_USER {
            return Err(Error::InvalidAuthMgmt);
        }
        if self.users.remove(name).is_none() {
            return Err(Error::UserNotFound);
        }
        batch.remove(user_key(name));
        self.commit_revision(batch);
        self.tokens.invalidate_user(name);
        Ok(())
    }

    pub fn user_change_password(
        &mut self,
        name: &str,
        hashed: &[u8],
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let mut u = self.users.get(name).cloned().ok_or(Error::UserNotFound)?;
        u.password = Bytes::copy_from_slice(hashed);
        self.put_user(u, batch);
        self.commit_revision(batch);
        self.tokens.invalidate_user(name);
        Ok(())
    }

    pub fn user_grant_role(
        &mut self,
        user: &str,
        role: &str,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let mut u = self.users.get(user).cloned().ok_or(Error::UserNotFound)?;
        if role != ROOT_ROLE && !self.roles.contains_key(role) {
            return Err(Error::RoleNotFound);
        }
        match u.roles.binary_search_by(|r| r.as_str().cmp(role)) {
            Ok(_) => Ok(()),
            Err(at) => {
                u.roles.insert(at, role.to_string());
                self.put_user(u, batch);
                self.commit_revision(batch);
                Ok(())
            }
        }
    }

    pub fn user_revoke_role(
        &mut self,
        user: &str,
        role: &str,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        if self.enabled && user == ROOT_USER && role == ROOT_ROLE {
            return Err(Error::InvalidAuthMgmt);
        }
        let mut u = self.users.get(user).cloned().ok_or(Error::UserNotFound)?;
        let before = u.roles.len();
        u.roles.retain(|r| r != role);
        if u.roles.len() == before {
            return Err(Error::RoleNotGranted);
        }
        self.put_user(u, batch);
        self.commit_revision(batch);
        Ok(())
    }

    pub fn role_add(&mut self, name: &str, batch: &mut WriteBatch) -> Result<()> {
        if name.is_empty() {
            return Err(Error::RoleEmpty);
        }
        if self.roles.contains_key(name) {
            return Err(Error::RoleAlreadyExist);
        }
        let r = Role {
            name: Bytes::copy_from_slice(name.as_bytes()),
            key_permission: Vec::new(),
        };
        self.put_role(r, batch);
        self.commit_revision(batch);
        Ok(())
    }

    pub fn role_delete(&mut self, name: &str, batch: &mut WriteBatch) -> Result<()> {
        if self.enabled && name == ROOT_ROLE {
            return Err(Error::InvalidAuthMgmt);
        }
        if self.roles.remove(name).is_none() {
            return Err(Error::RoleNotFound);
        }
        batch.remove(role_key(name));
        let holders: Vec<User> = self
            .users
            .values()
            .filter(|u| u.roles.iter().any(|r| r == name))
            .cloned()
            .collect();
        for mut u in holders {
            u.roles.retain(|r| r != name);
            self.put_user(u, batch);
        }
        self.commit_revision(batch);
        Ok(())
    }

    pub fn role_grant_permission(
        &mut self,
        name: &str,
        perm: Option<Permission>,
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let perm = perm.ok_or(Error::PermissionNotGiven)?;
        let mut r = self.roles.get(name).cloned().ok_or(Error::RoleNotFound)?;
        let at = r.key_permission.partition_point(|p| p.key < perm.key);
        match r.key_permission.get_mut(at) {
            Some(p) if p.key == perm.key && p.range_end == perm.range_end => {
                p.perm_type = perm.perm_type;
            }
            _ => {
                r.key_permission.push(Permission {
                    perm_type: perm.perm_type,
                    key: perm.key,
                    range_end: perm.range_end,
                });
                r.key_permission.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
        self.put_role(r, batch);
        self.commit_revision(batch);
        Ok(())
    }

    pub fn role_revoke_permission(
        &mut self,
        name: &str,
        key: &[u8],
        range_end: &[u8],
        batch: &mut WriteBatch,
    ) -> Result<()> {
        let mut r = self.roles.get(name).cloned().ok_or(Error::RoleNotFound)?;
        let before = r.key_permission.len();
        r.key_permission
            .retain(|p| p.key.as_ref() != key || p.range_end.as_ref() != range_end);
        if r.key_permission.len() == before {
            return Err(Error::PermissionNotGranted);
        }
        self.put_role(r, batch);
        self.commit_revision(batch);
        Ok(())
    }

    // ---- reads ----

    pub fn user_get(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .users
            .get(name)
            .ok_or(Error::UserNotFound)?
            .roles
            .clone())
    }

    pub fn user_list(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    pub fn role_get(&self, name: &str) -> Result<Vec<Permission>> {
        Ok(self
            .roles
            .get(name)
            .ok_or(Error::RoleNotFound)?
            .key_permission
            .clone())
    }

    pub fn role_list(&self) -> Vec<String> {
        self.roles.keys().cloned().collect()
    }

    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    pub fn user_exists(&self, name: &str) -> bool {
        self.users.contains_key(name)
    }

    /// What a password check needs, taken under the lock (the bcrypt comparison is slow
    /// and runs without it): the stored hash and the revision it was read at (etcd's
    /// CheckPassword, up to the comparison).
    pub fn password_hash(&self, name: &str) -> Result<(Bytes, u64)> {
        if !self.enabled {
            return Err(Error::AuthNotEnabled);
        }
        let u = self.users.get(name).ok_or(Error::AuthFailed)?;
        if u.options.as_ref().is_some_and(|o| o.no_password) {
            return Err(Error::NoPasswordUser);
        }
        Ok((u.password.clone(), self.revision))
    }

    /// Whether `ai` may read (`write == false`) or write `[key, range_end)` (etcd's
    /// isOpPermitted).
    pub fn is_op_permitted(
        &self,
        ai: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
        write: bool,
    ) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if ai.revision == 0 {
            return Err(Error::UserEmpty);
        }
        if ai.revision < self.revision {
            return Err(Error::AuthOldRevision);
        }
        let u = self
            .users
            .get(&ai.username)
            .ok_or(Error::PermissionDenied)?;
        if has_root_role(u) {
            return Ok(());
        }
        let perms = UnifiedPerms::new(
            u.roles
                .iter()
                .filter_map(|r| self.roles.get(r))
                .flat_map(|r| r.key_permission.iter()),
        );
        let ok = if write {
            perms.can_write(key, range_end)
        } else {
            perms.can_read(key, range_end)
        };
        if ok {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    pub fn is_range_permitted(&self, ai: &AuthInfo, key: &[u8], range_end: &[u8]) -> Result<()> {
        self.is_op_permitted(ai, key, range_end, false)
    }

    pub fn is_put_permitted(&self, ai: &AuthInfo, key: &[u8]) -> Result<()> {
        self.is_op_permitted(ai, key, &[], true)
    }

    pub fn is_delete_range_permitted(
        &self,
        ai: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<()> {
        self.is_op_permitted(ai, key, range_end, true)
    }

    /// Whether `ai` holds the root role (etcd's IsAdminPermitted); `None` or no user name
    /// is a request with no credentials.
    pub fn is_admin_permitted(&self, ai: Option<&AuthInfo>) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        // etcd 3.4.23 answers a request without a user this way, token or not
        let ai = ai
            .filter(|a| !a.username.is_empty())
            .ok_or(Error::UserEmpty)?;
        let u = self.users.get(&ai.username).ok_or(Error::UserNotFound)?;
        if has_root_role(u) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    /// The user of a token, as an AuthInfo at the revision the token stands for: a JWT's
    /// own, the current one for a simple token (etcd's simple provider answers every
    /// token with the store's current revision).
    pub fn auth_info_from_token(&self, token: &str) -> Result<AuthInfo> {
        let (username, revision) = self.tokens.info(token).ok_or(Error::InvalidAuthToken)?;
        Ok(AuthInfo {
            username,
            revision: revision.unwrap_or(self.revision),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::authpb::permission::Type;

    fn store_with_root() -> (AuthStore, WriteBatch) {
        let mut s = AuthStore::default();
        let mut b = WriteBatch::default();
        s.user_add("root", b"h", None, &mut b).unwrap();
        (s, b)
    }

    #[test]
    fn enable_needs_root_with_the_root_role_and_root_is_kept() {
        let mut s = AuthStore::default();
        let mut b = WriteBatch::default();
        assert_eq!(s.enable(&mut b), Err(Error::RootUserNotExist));
        s.user_add("root", b"h", None, &mut b).unwrap();
        assert_eq!(s.enable(&mut b), Err(Error::RootRoleNotExist));
        s.user_grant_role("root", "root", &mut b).unwrap();
        let rev = s.revision();
        s.enable(&mut b).unwrap();
        assert_eq!(
            s.revision(),
            rev,
            "enabling does not bump the revision (etcd)"
        );
        assert_eq!(s.user_delete("root", &mut b), Err(Error::InvalidAuthMgmt));
        assert_eq!(
            s.user_revoke_role("root", "root", &mut b),
            Err(Error::InvalidAuthMgmt)
        );
        assert_eq!(s.role_delete("root", &mut b), Err(Error::InvalidAuthMgmt));
        s.disable(&mut b);
        assert_eq!(s.revision(), rev + 1);
        s.user_revoke_role("root", "root", &mut b).unwrap();
    }

    #[test]
    fn changes_survive_a_restore_from_their_records() {
        let (mut s, mut b) = store_with_root();
        s.role_add("r", &mut b).unwrap();
        let perm = Permission {
            perm_type: Type::Readwrite as i32,
            key: Bytes::from_static(b"a"),
            range_end: Bytes::from_static(b"b"),
        };
        s.role_grant_permission("r", Some(perm.clone()), &mut b)
            .unwrap();
        s.user_grant_role("root", "r", &mut b).unwrap();
        s.user_grant_role("root", "root", &mut b).unwrap();
        s.enable(&mut b).unwrap();
        let mut tree = BTreeMap::new();
        for (k, v) in b.ops {
            match v {
                Some(v) => tree.insert(k, v),
                None => tree.remove(&k),
            };
        }
        let back = AuthStore::restore(tree, Arc::new(Tokens::default())).unwrap();
        assert!(back.is_enabled());
        assert_eq!(back.revision(), s.revision());
        assert_eq!(back.user_get("root").unwrap(), vec!["r", "root"]);
        assert_eq!(back.role_get("r").unwrap(), vec![perm]);
    }

    #[test]
    fn permission_checks_follow_etcd() {
        let (mut s, mut b) = store_with_root();
        s.user_grant_role("root", "root", &mut b).unwrap();
        s.user_add("u", b"h", None, &mut b).unwrap();
        s.role_add("r", &mut b).unwrap();
        let perm = Permission {
            perm_type: Type::Read as i32,
            key: Bytes::from_static(b"a"),
            range_end: Bytes::new(),
        };
        s.role_grant_permission("r", Some(perm), &mut b).unwrap();
        s.user_grant_role("u", "r", &mut b).unwrap();
        let u = AuthInfo {
            username: "u".into(),
            revision: s.revision(),
        };
        // off: everything goes
        assert_eq!(s.is_put_permitted(&AuthInfo::default(), b"a"), Ok(()));
        s.enable(&mut b).unwrap();
        assert_eq!(
            s.is_put_permitted(&AuthInfo::default(), b"a"),
            Err(Error::UserEmpty)
        );
        assert_eq!(s.is_range_permitted(&u, b"a", b""), Ok(()));
        assert_eq!(s.is_put_permitted(&u, b"a"), Err(Error::PermissionDenied));
        assert_eq!(s.is_admin_permitted(Some(&u)), Err(Error::PermissionDenied));
        assert_eq!(s.is_admin_permitted(None), Err(Error::UserEmpty));
        assert_eq!(s.is_admin_permitted(Some(&AuthInfo::member())), Ok(()));
        s.role_add("other", &mut b).unwrap();
        assert_eq!(
            s.is_range_permitted(&u, b"a", b""),
            Err(Error::AuthOldRevision)
        );
    }
}
