//! The typed metadata APIs against a metastore embedded in this process: resource groups
//! and regions, then a watcher that mirrors the regions.
//!
//! ```text
//! cargo run --release --example embedded_meta
//! ```

use std::error::Error;

use metastore::config::Config;
use metastore::embed::Server;
use metastore::meta::region::{self, Peer, PeerRole, Regions, Store, StoreState};
use metastore::meta::resource_group::{ResourceGroup, ResourceGroups, WriteRole, NULL_KEYSPACE_ID};
use metastore::meta::watcher::{Options, Watcher};
use metastore::meta::Layout;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data").to_string_lossy().into_owned();
    let cfg = Config::from_args(
        [
            "metastore",
            "--data-dir",
            &data_dir,
            "--listen-client-urls",
            "http://127.0.0.1:0",
            "--listen-peer-urls",
            "http://127.0.0.1:0",
            "--log-level",
            "warn",
        ]
        .map(String::from),
    )?;
    let server = Server::start(cfg).await?;
    let client = server.client().await?;
    let layout = Layout::default();
    println!("embedded metastore serving on {}", server.client_url());

    // Resource groups: add, modify, list.
    let groups = ResourceGroups::new(client.clone(), &layout, WriteRole::LegacyAll);
    let group: ResourceGroup = serde_json::from_value(serde_json::json!({
        "name": "analytics", "mode": 1, "priority": 8,
        "r_u_settings": {"r_u": {"settings": {"fill_rate": 2000, "burst_limit": -1}}}
    }))?;
    groups.add(NULL_KEYSPACE_ID, group.clone()).await??;
    let mut faster = group;
    faster.priority = 16;
    groups.modify(NULL_KEYSPACE_ID, faster).await??;
    for g in groups.list(NULL_KEYSPACE_ID).await? {
        println!("resource group {}: {}", g.name, serde_json::to_string(&g)?);
    }

    // Regions: bootstrap, split, locate; a watcher mirrors them.
    let regions = Regions::new(&client, &layout);
    for id in 1..=3 {
        let store = Store {
            id,
            address: format!("10.0.0.{id}:20160"),
            state: StoreState::Up,
        };
        regions.put_store(store).await??;
    }
    let peer = |id, store_id| Peer {
        id,
        store_id,
        role: PeerRole::Voter,
    };
    let first = regions
        .bootstrap(1, vec![peer(11, 1), peer(12, 2), peer(13, 3)])
        .await??;
    let prefix = format!("{}index/", layout.namespace("region"));
    let watcher = Watcher::start(client.clone(), prefix, Options::default())?;
    watcher.ready().await;
    // a split hands the left part to the new region; the parent keeps the right part
    let (left, right) = regions.split(1, b"m", 2, first.epoch).await??;
    let (middle, right) = regions.split(right.id, b"t", 3, right.epoch).await??;
    println!(
        "split: region {} [..m), region {} [m..t), region {} [t..)",
        left.id, middle.id, right.id
    );
    for key in [&b"apple"[..], b"melon", b"zucchini"] {
        let r = regions.locate(key).await??;
        println!(
            "{} is in region {} (epoch {})",
            String::from_utf8_lossy(key),
            r.id,
            r.epoch
        );
    }
    let all = regions.scan(0).await?;
    region::check_tiling(&all.regions)?;
    println!(
        "{} regions tile the key space at revision {}",
        all.regions.len(),
        all.revision
    );
    // the last write was the last split, under the watched prefix
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        watcher.wait_for(all.revision),
    )
    .await?;
    println!("the watcher mirrors {} index entries", watcher.list().len());

    drop(watcher);
    server.close().await;
    Ok(())
}
