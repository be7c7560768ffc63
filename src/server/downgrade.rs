//! Maintenance.Downgrade (etcd 3.5/3.6: etcdserver/v3_server.go Downgrade, version/).
//!
//! The cluster version is `major.minor.0` of the version this member reports
//! (`--experimental-report-version`). A target is valid only one minor below it ("3.4" or
//! "3.4.x" for 3.5); its patch is dropped, as etcd's.
//! - VALIDATE: the target parses (else "wrong downgrade target version format"), a
//!   linearizable read, the target is one minor below (else "invalid downgrade target
//!   version"), and no job is enabled (else "cluster has a downgrade job in progress").
//! - ENABLE: VALIDATE, then the job `{enabled, target major.minor.0}` goes through the log;
//!   every member keeps it (`membership::Members`) across restarts, Status shows it.
//! - CANCEL: a linearizable read, then the job is dropped through the log. With none
//!   enabled, 3.5 answers "no inflight downgrade job"; 3.6 succeeds.
//!
//! The answer's `version` is the cluster version: `3.5.0` when reporting 3.5, `3.6` (no
//! patch) from 3.6 on, as each etcd answers.
//!
//! etcd ends a job by itself once every member runs the target version. A metastore
//! member cannot be replaced by an etcd binary in place (the peer protocols differ), so
//! here a job stays enabled until cancelled; moving to etcd goes through a snapshot
//! (docs/operations.md). docs/compat.md lists the difference.

use prost::Message;

use super::error::{Error, Result};
use super::member::Member;
use crate::apply::Request;
use crate::proto::etcdserverpb::{downgrade_request::DowngradeAction, DowngradeResponse};
use crate::proto::metastorepb::DowngradeInfoSetRequest;

/// `major.minor` of a version etcd's parser takes: `X.Y.Z` (with an optional
/// pre-release or build suffix) or `X.Y`.
fn parse_major_minor(v: &str) -> Option<(u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let parts: Vec<&str> = core.split('.').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let num = |s: &str| -> Option<u64> {
        let leading_zero = s.len() > 1 && s.starts_with('0');
        if s.is_empty() || leading_zero || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (major, minor) = (num(parts[0])?, num(parts[1])?);
    if let Some(patch) = parts.get(2) {
        num(patch)?;
    }
    // "X.Y" parses as "X.Y.0" in etcd; a suffix needs the full form
    if parts.len() == 2 && core.len() != v.len() {
        return None;
    }
    Some((major, minor))
}

impl Member {
    /// The cluster version as (major, minor).
    fn cluster_major_minor(&self) -> (u64, u64) {
        parse_major_minor(&self.cluster_version()).unwrap_or((3, 5))
    }

    /// The cluster version as this etcd version's Downgrade answers it.
    fn downgrade_answer_version(&self) -> String {
        match self.cluster_major_minor() {
            (major, minor) if (major, minor) >= (3, 6) => format!("{major}.{minor}"),
            (major, minor) => format!("{major}.{minor}.0"),
        }
    }

    /// etcd's downgradeValidate: the target as `major.minor.0`.
    async fn downgrade_validate(&self, version: &str) -> Result<String> {
        let (major, minor) =
            parse_major_minor(version).ok_or(Error::WrongDowngradeVersionFormat)?;
        self.read_barrier().await?;
        let (cmajor, cminor) = self.cluster_major_minor();
        if major != cmajor || cminor == 0 || minor != cminor - 1 {
            return Err(Error::InvalidDowngradeTargetVersion);
        }
        if self.downgrade_info().enabled {
            return Err(Error::DowngradeInProcess);
        }
        Ok(format!("{major}.{minor}.0"))
    }

    /// The replicated downgrade job (disabled when none).
    pub fn downgrade_info(&self) -> crate::proto::etcdserverpb::DowngradeInfo {
        self.state
            .members
            .read()
            .expect("members lock")
            .downgrade()
            .clone()
    }

    async fn set_downgrade(&self, req: DowngradeInfoSetRequest) -> Result<()> {
        let size = req.encoded_len();
        self.propose(Request::DowngradeInfoSet(req), size).await?;
        Ok(())
    }

    /// Maintenance.Downgrade (the caller's admin check is the transport's).
    pub async fn downgrade(&self, action: i32, version: &str) -> Result<DowngradeResponse> {
        let action = DowngradeAction::try_from(action).map_err(|_| Error::UnknownMethod)?;
        match action {
            DowngradeAction::Validate => {
                self.downgrade_validate(version).await?;
            }
            DowngradeAction::Enable => {
                let target = self.downgrade_validate(version).await?;
                tracing::info!(target_version = %target, "enabling cluster downgrade");
                self.set_downgrade(DowngradeInfoSetRequest {
                    enabled: true,
                    ver: target,
                })
                .await?;
            }
            DowngradeAction::Cancel => {
                self.read_barrier().await?;
                if self.downgrade_info().enabled {
                    self.set_downgrade(DowngradeInfoSetRequest {
                        enabled: false,
                        ver: String::new(),
                    })
                    .await?;
                    tracing::info!("cancelled cluster downgrade");
                } else if self.cluster_major_minor() < (3, 6) {
                    return Err(Error::NoInflightDowngrade);
                } else {
                    tracing::warn!(
                        error = crate::rpctypes::NO_INFLIGHT_DOWNGRADE,
                        "failed to cancel downgrade"
                    );
                }
            }
        }
        Ok(DowngradeResponse {
            header: None,
            version: self.downgrade_answer_version(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_major_minor;

    #[test]
    fn versions_parse_as_etcds_semver_with_the_dot_zero_retry() {
        for (v, want) in [
            ("3.4.0", Some((3, 4))),
            ("3.4.2", Some((3, 4))),
            ("3.4", Some((3, 4))),
            ("3.4.0-rc.1", Some((3, 4))),
            ("3", None),
            ("3*.9", None),
            ("v3.4", None),
            ("3.4.0.1", None),
            ("03.4", None),
            ("", None),
            ("3.4-rc", None),
        ] {
            assert_eq!(parse_major_minor(v), want, "{v}");
        }
    }
}
