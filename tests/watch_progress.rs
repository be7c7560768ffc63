//! Periodic progress notifications (`--experimental-watch-progress-notify-interval`) reach
//! watchers that asked for them, carry the current revision, and no one else gets them.

mod common;

use std::time::Duration;

use common::{Kind, Server};
use etcd_client::{Client, WatchOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_notifications_arrive_at_the_interval() {
    let s = Server::start(
        Kind::Metastore,
        &["--experimental-watch-progress-notify-interval", "500ms"],
    );
    let mut c = Client::connect([s.endpoint.as_str()], None).await.unwrap();
    c.put("p/a", "1", None).await.unwrap();
    let rev = c
        .get("p/a", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let mut with = c
        .watch(
            "p/",
            Some(WatchOptions::new().with_prefix().with_progress_notify()),
        )
        .await
        .unwrap();
    let mut without = c
        .watch("p/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(with.message().await.unwrap().unwrap().created());
    assert!(without.message().await.unwrap().unwrap().created());
    for _ in 0..2 {
        let r = tokio::time::timeout(Duration::from_secs(5), with.message())
            .await
            .expect("no progress notification");
        let r = r.unwrap().unwrap();
        assert!(
            r.events().is_empty() && !r.canceled() && !r.created(),
            "{r:?}"
        );
        assert_eq!(r.header().unwrap().revision(), rev);
    }
    let quiet = tokio::time::timeout(Duration::from_millis(1200), without.message()).await;
    assert!(quiet.is_err(), "a watcher that did not ask got {quiet:?}");
}
