//! (to be written)

use std::sync::Arc;

use axum::Router;

use super::meta_http::MetaHttp;

pub fn routes() -> Router<Arc<MetaHttp>> {
    Router::new()
}
