//! Pure planning of region changes: the regions a split or a peer change would write, or
//! why it is refused. No IO: `regions.rs` reads, plans here, then commits.

use std::collections::HashSet;

use super::record::{Epoch, Outcome, Peer, PeerRole, Refusal, Region};

/// Peers are valid when ids and stores are unique and there is at least one voter.
pub(super) fn validate_peers(region_id: u64, peers: &[Peer]) -> Outcome<()> {
    let invalid = |reason: &str| {
        Err(Refusal::InvalidPeers {
            region_id,
            reason: reason.to_string(),
        })
    };
    let ids: HashSet<u64> = peers.iter().map(|p| p.id).collect();
    let stores: HashSet<u64> = peers.iter().map(|p| p.store_id).collect();
    if ids.len() != peers.len() {
        return invalid("duplicate peer id");
    }
    if stores.len() != peers.len() {
        return invalid("two peers on one store");
    }
    if !peers.iter().any(|p| p.role == PeerRole::Voter) {
        return invalid("no voter");
    }
    Ok(())
}

/// The two halves of a split, or why the key does not split the region.
pub(super) fn plan_split(
    parent: &Region,
    split_key: &[u8],
    new_region_id: u64,
) -> Outcome<(Region, Region)> {
    if split_key <= parent.start.as_slice() || !parent.contains(split_key) {
        return Err(Refusal::SplitKeyNotInside {
            region_id: parent.id,
            split_key: split_key.to_vec(),
        });
    }
    if new_region_id == parent.id {
        return Err(Refusal::RegionExists {
            region_id: new_region_id,
        });
    }
    let epoch = Epoch {
        conf_ver: parent.epoch.conf_ver,
        version: parent.epoch.version + 1,
    };
    let left = Region {
        id: new_region_id,
        start: parent.start.clone(),
        end: split_key.to_vec(),
        epoch,
        peers: parent.peers.clone(),
    };
    let right = Region {
        id: parent.id,
        start: split_key.to_vec(),
        end: parent.end.clone(),
        epoch,
        peers: parent.peers.clone(),
    };
    Ok((left, right))
}

pub(super) fn plan_add_peer(region: &Region, peer: Peer) -> Outcome<Region> {
    let mut changed = region.clone();
    changed.peers.push(peer);
    changed.epoch.conf_ver += 1;
    validate_peers(region.id, &changed.peers)?;
    Ok(changed)
}

pub(super) fn plan_remove_peer(region: &Region, peer_id: u64) -> Outcome<Region> {
    let mut changed = region.clone();
    let before = changed.peers.len();
    changed.peers.retain(|p| p.id != peer_id);
    if changed.peers.len() == before {
        return Err(Refusal::PeerNotFound {
            region_id: region.id,
            peer_id,
        });
    }
    if !changed.peers.iter().any(|p| p.role == PeerRole::Voter) {
        return Err(Refusal::LastVoter {
            region_id: region.id,
            peer_id,
        });
    }
    changed.epoch.conf_ver += 1;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{region, voter};
    use super::*;

    #[test]
    fn split_plans() {
        let parent = region(1, b"b", b"f");
        let (left, right) = plan_split(&parent, b"d", 2).unwrap();
        assert_eq!(
            (left.id, left.start.as_slice(), left.end.as_slice()),
            (2, &b"b"[..], &b"d"[..])
        );
        assert_eq!(
            (right.id, right.start.as_slice(), right.end.as_slice()),
            (1, &b"d"[..], &b"f"[..])
        );
        assert_eq!(
            left.epoch,
            Epoch {
                conf_ver: 1,
                version: 2
            }
        );
        assert_eq!(right.epoch, left.epoch);
        for bad in [&b"b"[..], b"a", b"f", b"g", b""] {
            assert!(
                matches!(
                    plan_split(&parent, bad, 2),
                    Err(Refusal::SplitKeyNotInside { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            plan_split(&parent, b"c", 1),
            Err(Refusal::RegionExists { .. })
        ));
        // an infinite end takes any key after the start
        assert!(plan_split(&region(1, b"", b""), b"\xff\xff", 2).is_ok());
    }

    #[test]
    fn peer_plans() {
        let r = region(1, b"", b"");
        let added = plan_add_peer(&r, voter(2, 2)).unwrap();
        assert_eq!(
            added.epoch,
            Epoch {
                conf_ver: 2,
                version: 1
            }
        );
        assert!(matches!(
            plan_add_peer(&r, voter(1, 2)),
            Err(Refusal::InvalidPeers { .. })
        ));
        assert!(matches!(
            plan_add_peer(&r, voter(2, 1)),
            Err(Refusal::InvalidPeers { .. })
        ));
        let removed = plan_remove_peer(&added, 1).unwrap();
        assert_eq!(removed.peers, vec![voter(2, 2)]);
        assert_eq!(removed.epoch.conf_ver, 3);
        assert!(matches!(
            plan_remove_peer(&removed, 2),
            Err(Refusal::LastVoter { .. })
        ));
        assert!(matches!(
            plan_remove_peer(&removed, 9),
            Err(Refusal::PeerNotFound { .. })
        ));
        assert!(validate_peers(1, &[]).is_err());
    }
}
