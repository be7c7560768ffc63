//! The gauges of `crate::metrics` that describe the member's state, set from it when
//! `/metrics` is scraped (etcd sets each as its state changes; a scrape sees the same).

use super::member::Member;
use crate::metrics as m;

fn set(g: &prometheus::IntGauge, v: impl TryInto<i64>) {
    g.set(v.try_into().unwrap_or(i64::MAX));
}

impl Member {
    pub fn refresh_metrics(&self) {
        let s = self.raft_status();
        set(&m::HAS_LEADER, u8::from(s.leader != 0));
        set(&m::IS_LEADER, u8::from(s.leader == self.member_id));
        set(&m::IS_LEARNER, u8::from(self.is_learner()));
        set(&m::PROPOSALS_COMMITTED, s.index);
        set(&m::PROPOSALS_APPLIED, s.applied);
        set(&m::SERVER_TERM, s.term);
        set(&m::QUOTA_BACKEND_BYTES, self.settings.quota_backend_bytes);
        for g in [
            &m::DB_TOTAL_SIZE,
            &m::DB_TOTAL_SIZE_IN_USE,
            &m::DEBUGGING_DB_TOTAL_SIZE,
        ] {
            set(g, s.db_size);
        }
        let (keys, current) = {
            let kv = self.state.kv.read().expect("kv lock");
            (kv.index().live_len(), kv.current_rev())
        };
        set(&m::KEYS_TOTAL, keys);
        set(&m::CURRENT_REVISION, current);
        set(&m::COMPACT_REVISION, self.compact_revision());
        set(
            &m::AUTH_REVISION,
            self.state.auth.read().expect("auth lock").revision(),
        );
        let (streams, watchers, unsynced) = self.watch.counts();
        set(&m::WATCH_STREAM_TOTAL, streams);
        set(&m::WATCHER_TOTAL, watchers);
        set(&m::SLOW_WATCHER_TOTAL, unsynced);
        let labelled = [
            (&m::SERVER_ID, format!("{:x}", self.member_id)),
            (&m::SERVER_VERSION, self.settings.report_version.clone()),
            // etcd labels the cluster version major.minor
            (
                &m::CLUSTER_VERSION,
                self.cluster_version().trim_end_matches(".0").to_string(),
            ),
        ];
        for (g, label) in labelled {
            g.reset();
            g.with_label_values(&[&label]).set(1);
        }
    }
}
