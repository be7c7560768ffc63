//! The member's side of its peers: binding and serving the peer port (with the peer TLS
//! of the `--peer-*` flags), joining an existing cluster, and stopping once removed from it.

use std::sync::Arc;
use std::time::Duration;

use super::error::{Error, Result};
use crate::config::Config;
use crate::raft::peer_service::PeerService;
use crate::raft::MemberNode;
use crate::tls::listener::ClientListener;

/// A member started with `--initial-cluster-state existing` for the first time: ask the
/// other members of `--initial-cluster` for the cluster, and find this member (added with
/// `member add`) by its peer URLs (etcd: GetClusterFromRemotePeers).
pub(super) async fn join_existing(
    members: &[crate::config::InitialMember],
    name: &str,
    peer_urls: &[String],
) -> Result<(u64, u64)> {
    let mut mine = peer_urls.to_vec();
    mine.sort();
    let mut errors = Vec::new();
    for m in members.iter().filter(|m| m.name != name) {
        for url in &m.peer_urls {
            match crate::raft::network::cluster_members(url, Duration::from_secs(2)).await {
                Ok(found) => {
                    let me = found.members.iter().find(|r| {
                        let mut urls = r.peer_urls.clone();
                        urls.sort();
                        urls == mine
                    });
                    return match me {
                        Some(r) => Ok((r.id, found.cluster_id)),
                        None => Err(Error::Internal(format!(
                            "no member with peer URLs {mine:?} in cluster {:x} (add it first with `member add`)",
                            found.cluster_id
                        ))),
                    };
                }
                Err(e) => errors.push(e),
            }
        }
    }
    Err(Error::Internal(format!(
        "could not retrieve the cluster from its members: {}",
        errors.join("; ")
    )))
}

/// How long a removed member goes on answering before it stops (etcd: 10 * 100 ms).
const REMOVED_STOP_DELAY: Duration = Duration::from_secs(1);

/// A member removed from the cluster stops (etcd: "the member has been permanently removed
/// from the cluster"): when it applies its removal, or when a peer refuses it as removed.
pub(super) async fn watch_removed(
    mut metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, MemberNode>>,
    mut refused: tokio::sync::watch::Receiver<std::collections::HashSet<u64>>,
    me: u64,
    fatal: tokio::sync::watch::Sender<Option<String>>,
) {
    // Only a member that has seen itself in the membership can be removed from it: a
    // member that joins installs a snapshot whose membership may predate its addition.
    let mut seen_self = false;
    loop {
        let removed = {
            let m = metrics.borrow_and_update();
            let membership = m.membership_config.membership();
            let listed = membership.get_node(&me).is_some();
            seen_self |= listed;
            let applied = seen_self && !listed && membership.nodes().next().is_some();
            // Refused as removed by most of the other voters this member knows of (one
            // peer that lags behind a member's addition must not stop it).
            let others: Vec<u64> = membership.voter_ids().filter(|id| *id != me).collect();
            let refused = refused.borrow_and_update();
            let refusing = others.iter().filter(|id| refused.contains(id)).count();
            applied || (!others.is_empty() && refusing * 2 > others.len())
        };
        if removed {
            // As etcd's stopWithDelay: a second for the answers in flight (the member
            // change that removed this member among them) to reach their clients.
            tokio::time::sleep(REMOVED_STOP_DELAY).await;
            fatal.send_replace(Some(
                "the member has been permanently removed from the cluster".to_string(),
            ));
            return;
        }
        tokio::select! {
            r = metrics.changed() => if r.is_err() { return },
            r = refused.changed() => if r.is_err() { return },
        }
    }
}

/// `--force-new-cluster`: make this member the only voter of its cluster, with its data.
pub(super) fn force_new_cluster(
    log_store: &crate::raft::LogStore,
    backend: &dyn crate::storage::Backend,
    member_id: u64,
) -> Result<()> {
    let internal = |e: &dyn std::fmt::Display| Error::Internal(e.to_string());
    let current =
        crate::raft::state_machine::applied_membership(backend).map_err(|e| internal(&e))?;
    if log_store
        .force_single_voter(member_id, current.as_ref())
        .map_err(|e| internal(&e))?
    {
        tracing::warn!(
            local_member_id = %format!("{member_id:x}"),
            "forcing restart as a one-member cluster (--force-new-cluster)"
        );
    }
    Ok(())
}

/// Bind a listener on each peer URL with the peer port's TLS (a generated certificate for
/// `--peer-auto-tls`), and make the TLS this member dials `https://` peers with.
pub(super) async fn bind_peer_port(
    cfg: &Config,
) -> Result<(Vec<ClientListener>, Option<Arc<rustls::ClientConfig>>)> {
    let internal = |e: &dyn std::fmt::Display| Error::Internal(e.to_string());
    let mut info = cfg.peer_tls().map_err(|e| internal(&e))?;
    if let Some(info) = info.as_mut().filter(|i| i.self_signed) {
        let hosts = cfg.peer_hosts().map_err(|e| internal(&e))?;
        let (cert, key) = crate::tls::self_signed(
            &cfg.peer_auto_tls_dir(),
            &hosts,
            cfg.self_signed_cert_validity,
        )
        .map_err(|e| internal(&e))?;
        info.cert_file = Some(cert);
        info.key_file = Some(key);
    }
    let server = info
        .as_ref()
        .map(crate::tls::server_config)
        .transpose()
        .map_err(|e| internal(&e))?;
    let urls = cfg.listen_peer_urls().map_err(|e| internal(&e))?;
    let listeners = crate::tls::listener::bind(&urls, server)
        .await
        .map_err(|e| Error::Internal(format!("listen on peer URLs {urls:?}: {e}")))?
        .into_iter()
        .map(|l| {
            let allowed = info.as_ref();
            l.admit_only(
                allowed.and_then(|i| i.allowed_cn.clone()),
                allowed.and_then(|i| i.allowed_hostname.clone()),
            )
        })
        .collect();
    let dial = match info {
        Some(mut info) => {
            // --peer-client-cert-file/--peer-client-key-file, when given, are what this
            // member presents when it dials
            if let Some((cert, key)) = cfg.peer_client_cert() {
                info.cert_file = Some(cert);
                info.key_file = Some(key);
            }
            Some(crate::tls::client_config(&info).map_err(|e| internal(&e))?)
        }
        None => None,
    };
    Ok((listeners, dial))
}

/// Serve the peer service on every peer listener until the member stops.
pub(super) async fn serve_peers(
    listeners: Vec<ClientListener>,
    service: PeerService,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    use futures::StreamExt;
    let incoming = futures::stream::select_all(listeners.into_iter().map(|l| l.incoming().boxed()));
    let stopped = async move {
        let _ = closing.wait_for(|c| *c).await;
    };
    let served = tonic::transport::Server::builder()
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(incoming, stopped)
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "peer server stopped");
    }
}
