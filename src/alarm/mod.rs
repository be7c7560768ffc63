//! Alarms raised on members (etcd: etcdserver/api/v3alarm): NOSPACE when a member's
//! backend passes its quota, CORRUPT when a hash check fails. Replicated state, kept in the
//! state tree (etcd's `alarm` bucket), changed only by applying an AlarmRequest.
//!
//! Imports: `storage`, `proto`. Must never: import `apply` or anything above it.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::proto::etcdserverpb::{AlarmMember, AlarmType};
use crate::storage::{schema, WriteBatch};

/// Every raised alarm, as (alarm type, member id).
#[derive(Debug, Default, Clone)]
pub struct AlarmStore {
    alarms: BTreeSet<(i32, u64)>,
}

fn backend_key(alarm: i32, member: u64) -> Bytes {
    let mut k = Vec::with_capacity(10);
    k.push(schema::ALARM);
    k.push(u8::try_from(alarm).unwrap_or(u8::MAX));
    k.extend_from_slice(&member.to_be_bytes());
    Bytes::from(k)
}

fn member(alarm: i32, member_id: u64) -> AlarmMember {
    AlarmMember { member_id, alarm }
}

impl AlarmStore {
    /// Rebuild from the stored keys (prefix `schema::ALARM`); malformed keys are skipped.
    pub fn restore(keys: impl IntoIterator<Item = Bytes>) -> Self {
        let alarms = keys
            .into_iter()
            .filter(|k| k.len() == 10)
            .map(|k| {
                let id = u64::from_be_bytes(k[2..10].try_into().expect("10-byte key"));
                (i32::from(k[1]), id)
            })
            .collect();
        AlarmStore { alarms }
    }

    /// The alarms of one type, or all of them for `NONE` (etcd's AlarmStore.Get).
    pub fn get(&self, alarm: i32) -> Vec<AlarmMember> {
        self.alarms
            .iter()
            .filter(|(a, _)| alarm == AlarmType::None as i32 || *a == alarm)
            .map(|&(a, m)| member(a, m))
            .collect()
    }

    /// Whether any member has raised `alarm`.
    pub fn is_raised(&self, alarm: AlarmType) -> bool {
        self.alarms.iter().any(|(a, _)| *a == alarm as i32)
    }

    /// Raise `alarm` on `member_id`; the alarm, whether new or already raised.
    pub fn activate(&mut self, member_id: u64, alarm: i32, batch: &mut WriteBatch) -> AlarmMember {
        if self.alarms.insert((alarm, member_id)) {
            batch.put(backend_key(alarm, member_id), Bytes::new());
        }
        member(alarm, member_id)
    }

    /// Clear `alarm` on `member_id`; the alarm if it was raised.
    pub fn deactivate(
        &mut self,
        member_id: u64,
        alarm: i32,
        batch: &mut WriteBatch,
    ) -> Option<AlarmMember> {
        if !self.alarms.remove(&(alarm, member_id)) {
            return None;
        }
        batch.remove(backend_key(alarm, member_id));
        Some(member(alarm, member_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activate_get_deactivate_and_restore() {
        let mut s = AlarmStore::default();
        let mut b = WriteBatch::default();
        let nospace = AlarmType::Nospace as i32;
        s.activate(7, nospace, &mut b);
        s.activate(7, nospace, &mut b);
        s.activate(8, AlarmType::Corrupt as i32, &mut b);
        assert_eq!(b.ops.len(), 2, "raising an alarm twice writes once");
        assert_eq!(s.get(AlarmType::None as i32).len(), 2);
        assert_eq!(s.get(nospace), vec![member(nospace, 7)]);
        assert!(s.is_raised(AlarmType::Corrupt));
        let keys: Vec<Bytes> = b.ops.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(AlarmStore::restore(keys).get(0), s.get(0));
        assert!(s.deactivate(9, nospace, &mut b).is_none());
        assert!(s.deactivate(7, nospace, &mut b).is_some());
        assert!(!s.is_raised(AlarmType::Nospace));
    }
}
