//! The Auth service (etcd: v3rpc/auth.go): each RPC takes the caller from its token, calls
//! the member and fills the header.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::header::fill;
use crate::proto::etcdserverpb::{
    auth_server::Auth, AuthDisableRequest, AuthDisableResponse, AuthEnableRequest,
    AuthEnableResponse, AuthRoleAddRequest, AuthRoleAddResponse, AuthRoleDeleteRequest,
    AuthRoleDeleteResponse, AuthRoleGetRequest, AuthRoleGetResponse,
    AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse, AuthRoleListRequest,
    AuthRoleListResponse, AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse,
    AuthStatusRequest, AuthStatusResponse, AuthUserAddRequest, AuthUserAddResponse,
    AuthUserChangePasswordRequest, AuthUserChangePasswordResponse, AuthUserDeleteRequest,
    AuthUserDeleteResponse, AuthUserGetRequest, AuthUserGetResponse, AuthUserGrantRoleRequest,
    AuthUserGrantRoleResponse, AuthUserListRequest, AuthUserListResponse,
    AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse, AuthenticateRequest,
    AuthenticateResponse,
};
use crate::server::{AuthInfo, Member};

/// The metadata keys etcd reads a token from (rpctypes.TokenFieldNameGRPC and
/// TokenFieldNameSwagger).
const TOKEN_KEYS: [&str; 2] = ["token", "authorization"];

/// The token a request carries, if any.
pub fn token<T>(req: &Request<T>) -> Option<String> {
    token_of(req.metadata())
}

pub fn token_of(md: &tonic::metadata::MetadataMap) -> Option<String> {
    TOKEN_KEYS
        .iter()
        .find_map(|k| md.get(*k))
        .map(|v| v.to_str().unwrap_or_default().to_string())
}

/// The caller of a request: its token's user, or no credentials (etcd's AuthInfoFromCtx,
/// with an empty AuthInfo where etcd's checks take one).
pub fn caller<T>(member: &Member, req: &Request<T>) -> Result<AuthInfo, Status> {
    Ok(caller_opt(member, req)?.unwrap_or_default())
}

/// The same, keeping "no credentials" apart (etcd's nil AuthInfo).
pub fn caller_opt<T>(member: &Member, req: &Request<T>) -> Result<Option<AuthInfo>, Status> {
    Ok(member.auth_info(token(req).as_deref(), cert_cn(req).as_deref())?)
}

/// The common name of the client's verified certificate (there is one only under
/// `--client-cert-auth`): without a token, etcd takes it as the user.
pub fn cert_cn<T>(req: &Request<T>) -> Option<String> {
    req.extensions()
        .get::<crate::api::transport::ClientInfo>()
        .and_then(|c| c.common_name.clone())
}

pub struct AuthService {
    pub member: Arc<Member>,
}

macro_rules! answer {
    ($self:ident, $resp:expr) => {{
        let mut resp = $resp;
        fill(&$self.member, &mut resp.header);
        Ok(Response::new(resp))
    }};
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        req: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        self.member.auth_enable(&ai).await?;
        answer!(self, AuthEnableResponse::default())
    }

    async fn auth_disable(
        &self,
        req: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        self.member.auth_disable(&ai).await?;
        answer!(self, AuthDisableResponse::default())
    }

    async fn auth_status(
        &self,
        _req: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        let (enabled, auth_revision) = self.member.auth_status().await?;
        answer!(
            self,
            AuthStatusResponse {
                header: None,
                enabled,
                auth_revision,
            }
        )
    }

    async fn authenticate(
        &self,
        req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        let r = req.into_inner();
        let token = self.member.authenticate(&r.name, &r.password).await?;
        answer!(
            self,
            AuthenticateResponse {
                header: None,
                token,
            }
        )
    }

    async fn user_add(
        &self,
        req: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        self.member.user_add(&ai, req.into_inner()).await?;
        answer!(self, AuthUserAddResponse::default())
    }

    async fn user_get(
        &self,
        req: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let roles = self.member.user_get(&ai, &req.into_inner().name).await?;
        answer!(
            self,
            AuthUserGetResponse {
                header: None,
                roles,
            }
        )
    }

    async fn user_list(
        &self,
        req: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let users = self.member.user_list(&ai).await?;
        answer!(
            self,
            AuthUserListResponse {
                header: None,
                users,
            }
        )
    }

    async fn user_delete(
        &self,
        req: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        self.member.user_delete(&ai, req.into_inner().name).await?;
        answer!(self, AuthUserDeleteResponse::default())
    }

    async fn user_change_password(
        &self,
        req: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        self.member
            .user_change_password(&ai, req.into_inner())
            .await?;
        answer!(self, AuthUserChangePasswordResponse::default())
    }

    async fn user_grant_role(
        &self,
        req: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let r = req.into_inner();
        self.member.user_grant_role(&ai, r.user, r.role).await?;
        answer!(self, AuthUserGrantRoleResponse::default())
    }

    async fn user_revoke_role(
        &self,
        req: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let r = req.into_inner();
        self.member.user_revoke_role(&ai, r.name, r.role).await?;
        answer!(self, AuthUserRevokeRoleResponse::default())
    }

    async fn role_add(
        &self,
        req: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        self.member.role_add(&ai, req.into_inner().name).await?;
        answer!(self, AuthRoleAddResponse::default())
    }

    async fn role_get(
        &self,
        req: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let perm = self.member.role_get(&ai, &req.into_inner().role).await?;
        answer!(self, AuthRoleGetResponse { header: None, perm })
    }

    async fn role_list(
        &self,
        req: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        let roles = self.member.role_list(&ai).await?;
        answer!(
            self,
            AuthRoleListResponse {
                header: None,
                roles,
            }
        )
    }

    async fn role_delete(
        &self,
        req: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        self.member.role_delete(&ai, req.into_inner().role).await?;
        answer!(self, AuthRoleDeleteResponse::default())
    }

    async fn role_grant_permission(
        &self,
        req: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        self.member
            .role_grant_permission(&ai, req.into_inner())
            .await?;
        answer!(self, AuthRoleGrantPermissionResponse::default())
    }

    async fn role_revoke_permission(
        &self,
        req: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let ai = caller(&self.member, &req)?;
        self.member
            .role_revoke_permission(&ai, req.into_inner())
            .await?;
        answer!(self, AuthRoleRevokePermissionResponse::default())
    }
}
