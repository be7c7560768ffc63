//! Users, roles, permissions and the auth revision (etcd: auth/), and the tokens that
//! stand for an authenticated user.
//!
//! Owns: [`AuthStore`], the replicated auth state, changed only by `apply` and kept in the
//! state tree (etcd's `auth`, `authUsers` and `authRoles` buckets); the permission checks
//! every request path asks ([`AuthStore::is_range_permitted`] ...); [`Tokens`], the
//! member's token provider: [`SimpleTokens`] (`--auth-token simple`, member-local) or
//! [`JwtTokens`] (`--auth-token jwt,...`, verified by every member holding the key).
//! Imports: `storage`, `proto`, `rpctypes`. Must never: import `apply` or anything above it.

mod es512;
pub mod jwt_token;
pub mod range_perm;
pub mod simple_token;
pub mod store;
pub mod tokens;

pub use jwt_token::JwtTokens;
pub use simple_token::SimpleTokens;
pub use store::{AuthInfo, AuthStore, ROOT_ROLE, ROOT_USER};
pub use tokens::Tokens;

use crate::rpctypes;

/// etcd's auth errors. Each is also a refusal of a committed request (the log carries
/// them back to the proposer), so the enum is small and `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{}", rpctypes::ROOT_USER_NOT_EXIST)]
    RootUserNotExist,
    #[error("{}", rpctypes::ROOT_ROLE_NOT_EXIST)]
    RootRoleNotExist,
    #[error("{}", rpctypes::USER_ALREADY_EXIST)]
    UserAlreadyExist,
    #[error("{}", rpctypes::USER_EMPTY)]
    UserEmpty,
    #[error("{}", rpctypes::USER_NOT_FOUND)]
    UserNotFound,
    #[error("{}", rpctypes::ROLE_ALREADY_EXIST)]
    RoleAlreadyExist,
    #[error("{}", rpctypes::ROLE_NOT_FOUND)]
    RoleNotFound,
    #[error("{}", rpctypes::ROLE_EMPTY)]
    RoleEmpty,
    #[error("{}", rpctypes::AUTH_FAILED)]
    AuthFailed,
    #[error("{}", rpctypes::PERMISSION_DENIED)]
    PermissionDenied,
    #[error("{}", rpctypes::ROLE_NOT_GRANTED)]
    RoleNotGranted,
    #[error("{}", rpctypes::PERMISSION_NOT_GRANTED)]
    PermissionNotGranted,
    #[error("{}", rpctypes::AUTH_NOT_ENABLED)]
    AuthNotEnabled,
    #[error("{}", rpctypes::INVALID_AUTH_TOKEN)]
    InvalidAuthToken,
    #[error("{}", rpctypes::INVALID_AUTH_MGMT)]
    InvalidAuthMgmt,
    #[error("{}", rpctypes::AUTH_OLD_REVISION)]
    AuthOldRevision,
    #[error("{}", rpctypes::PERMISSION_NOT_GIVEN)]
    PermissionNotGiven,
    /// etcd 3.4.23's ErrNoPasswordUser: a password given for a user added with
    /// `--no-password`. Not in rpctypes, so etcd sends its own text with code Unknown.
    #[error("authentication failed, password was given for no password user")]
    NoPasswordUser,
}

impl Error {
    /// The text of etcd's own `auth` package error (`auth: permission denied`), which
    /// etcd 3.4's Maintenance service sends as it is, with code Unknown, where the other
    /// services send the `etcdserver:` message.
    pub fn raw(self) -> &'static str {
        match self {
            Error::RootUserNotExist => "auth: root user does not exist",
            Error::RootRoleNotExist => "auth: root user does not have root role",
            Error::UserAlreadyExist => "auth: user already exists",
            Error::UserEmpty => "auth: user name is empty",
            Error::UserNotFound => "auth: user not found",
            Error::RoleAlreadyExist => "auth: role already exists",
            Error::RoleNotFound => "auth: role not found",
            Error::RoleEmpty => "auth: role name is empty",
            Error::AuthFailed => "auth: authentication failed, invalid user ID or password",
            Error::PermissionDenied => "auth: permission denied",
            Error::RoleNotGranted => "auth: role is not granted to the user",
            Error::PermissionNotGranted => "auth: permission is not granted to the role",
            Error::AuthNotEnabled => "auth: authentication is not enabled",
            Error::InvalidAuthToken => "auth: invalid auth token",
            Error::InvalidAuthMgmt => "auth: invalid auth management",
            Error::AuthOldRevision => "auth: revision in header is old",
            Error::PermissionNotGiven => "auth: permission not given",
            Error::NoPasswordUser => {
                "auth: authentication failed, password was given for no password user"
            }
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
