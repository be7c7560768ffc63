//! The metadata HTTP APIs on the client port: the resource manager's paths
//! (`resource_manager.rs`) and the capture drain paths (`captures.rs`), over `meta`.
//!
//! They reach the data the way any client would, through a `meta::Client` connected to
//! this member's own client URL (made on first use), so the same router also serves in
//! front of any etcd endpoint (`serve`, used by the tests against real etcd).

pub mod captures;
pub mod own_client;
pub mod resource_manager;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use tokio::net::TcpListener;

use crate::meta::resource_group::WriteRole;
use crate::meta::{self, Client, Layout};
pub use own_client::OwnClient;

/// How long a metadata request waits for the store before it answers 503.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// What every metadata handler needs: where the store is and how the data is laid out.
pub struct MetaHttp {
    own: OwnClient,
    pub layout: Layout,
    /// What this server may write of the resource groups.
    pub role: WriteRole,
    /// The kept client (see [`OwnClient::connect`]); dropped when its token stops being
    /// taken (auth disabled, or its user's password changed), to connect afresh.
    client: std::sync::Mutex<Option<Client>>,
}

impl MetaHttp {
    pub fn new(endpoint: impl Into<String>, layout: Layout, role: WriteRole) -> Arc<Self> {
        MetaHttp::with_client(OwnClient::new(endpoint), layout, role)
    }

    /// As [`MetaHttp::new`], reaching the store as `own` says (TLS, credentials).
    pub fn with_client(own: OwnClient, layout: Layout, role: WriteRole) -> Arc<Self> {
        Arc::new(MetaHttp {
            own,
            layout,
            role,
            client: std::sync::Mutex::new(None),
        })
    }

    /// The client of the store, connected on first use (see [`OwnClient::connect`]).
    pub async fn client(&self) -> meta::Result<Client> {
        if let Some(c) = self.client.lock().expect("client lock").clone() {
            return Ok(c);
        }
        let (c, keep) = self.own.connect().await?;
        if keep {
            *self.client.lock().expect("client lock") = Some(c.clone());
        }
        Ok(c)
    }

    /// Run one request's work on the store, bounded by [`STORE_TIMEOUT`]. A store that
    /// cannot be reached, has no leader or does not answer in time is a 503; any other
    /// failure of the store is a 500. Each path renders the pair in its own body format.
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, (StatusCode, String)>
    where
        F: FnOnce(Client, Layout) -> Fut,
        Fut: Future<Output = meta::Result<T>>,
    {
        let work = async {
            let client = self.client().await?;
            f(client, self.layout.clone()).await
        };
        match tokio::time::timeout(STORE_TIMEOUT, work).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_unavailable() => {
                Err((StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
            }
            Ok(Err(e)) => {
                let text = e.to_string();
                if text.contains("invalid auth token") || text.contains("is not enabled") {
                    self.client.lock().expect("client lock").take();
                }
                Err((StatusCode::INTERNAL_SERVER_ERROR, text))
            }
            Err(_) => Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the store did not answer within {STORE_TIMEOUT:?}"),
            )),
        }
    }
}

/// Every metadata path.
pub fn router(ctx: Arc<MetaHttp>) -> Router {
    Router::new()
        .merge(resource_manager::routes())
        .merge(captures::routes())
        .with_state(ctx)
}

/// Serve only the metadata paths on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, ctx: Arc<MetaHttp>) -> std::io::Result<()> {
    axum::serve(listener, router(ctx)).await
}
