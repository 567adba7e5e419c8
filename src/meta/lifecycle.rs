//! A bucket's lifecycle configuration as stored in its row, and the pure rules that decide
//! what expires. The XML form is in `s3::xml::lifecycle`; the worker that applies the rules
//! is `server::lifecycle`.
//!
//! Time is counted in lifecycle "days" of `day_ms` milliseconds (86 400 000 normally; the
//! `--lifecycle-day-secs` flag shortens it for tests). As in S3, an object that becomes
//! eligible after `Days` is expired at the first day boundary (midnight UTC) at or after
//! `last_modified + Days`, and an upload at the first boundary after `initiated +
//! DaysAfterInitiation`.

use serde::{Deserialize, Serialize};

/// When the current version of an object expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiration {
    /// This many days after the object's last modification (rounded up to a day boundary).
    Days(u32),
    /// At this instant (milliseconds since the epoch; S3 requires midnight UTC).
    Date(u64),
}

/// One rule. Filters other than a key prefix (tags, sizes) are refused when the
/// configuration is put, so a rule always applies to every object under `prefix`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    pub id: String,
    pub enabled: bool,
    pub prefix: String,
    /// The rule named its prefix with the legacy `<Prefix>` element rather than `<Filter>`
    /// (GetBucketLifecycleConfiguration answers in the same form).
    pub legacy_prefix: bool,
    pub expiration: Option<Expiration>,
    pub abort_incomplete_days: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleConfig {
    pub rules: Vec<LifecycleRule>,
}

/// The first day boundary at or after `ms`.
fn round_up_to_day(ms: u64, day_ms: u64) -> u64 {
    ms.div_ceil(day_ms).saturating_mul(day_ms)
}

/// The instant `days` lifecycle days after `from_ms`, rounded up to a day boundary.
pub fn days_after(from_ms: u64, days: u32, day_ms: u64) -> u64 {
    round_up_to_day(
        from_ms.saturating_add(u64::from(days).saturating_mul(day_ms)),
        day_ms,
    )
}

impl LifecycleRule {
    pub fn applies_to(&self, key: &str) -> bool {
        self.enabled && key.starts_with(&self.prefix)
    }

    /// Whether an object under this rule, last modified at `modified_ms`, has expired.
    pub fn object_expired(&self, key: &str, modified_ms: u64, now_ms: u64, day_ms: u64) -> bool {
        if !self.applies_to(key) {
            return false;
        }
        match self.expiration {
            Some(Expiration::Days(days)) => now_ms >= days_after(modified_ms, days, day_ms),
            Some(Expiration::Date(at)) => now_ms >= at,
            None => false,
        }
    }

    /// Whether an incomplete multipart upload of `key`, initiated at `initiated_ms`, is
    /// to be aborted.
    pub fn upload_stale(&self, key: &str, initiated_ms: u64, now_ms: u64, day_ms: u64) -> bool {
        match self.abort_incomplete_days {
            Some(days) if self.applies_to(key) => now_ms >= days_after(initiated_ms, days, day_ms),
            _ => false,
        }
    }
}

impl LifecycleConfig {
    pub fn object_expired(&self, key: &str, modified_ms: u64, now_ms: u64, day_ms: u64) -> bool {
        self.rules
            .iter()
            .any(|r| r.object_expired(key, modified_ms, now_ms, day_ms))
    }

    pub fn upload_stale(&self, key: &str, initiated_ms: u64, now_ms: u64, day_ms: u64) -> bool {
        self.rules
            .iter()
            .any(|r| r.upload_stale(key, initiated_ms, now_ms, day_ms))
    }

    /// When an object expires, and by which rule: the earliest of the enabled expiration
    /// rules that apply to it (S3's `x-amz-expiration` header).
    pub fn object_expiry(&self, key: &str, modified_ms: u64, day_ms: u64) -> Option<(u64, &str)> {
        self.rules
            .iter()
            .filter(|r| r.applies_to(key))
            .filter_map(|r| {
                let at = match r.expiration.as_ref()? {
                    Expiration::Days(days) => days_after(modified_ms, *days, day_ms),
                    Expiration::Date(at) => *at,
                };
                Some((at, r.id.as_str()))
            })
            .min_by_key(|(at, _)| *at)
    }

    /// Some enabled rule expires objects / aborts uploads.
    pub fn expires_objects(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.enabled && r.expiration.is_some())
    }
    pub fn aborts_uploads(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.enabled && r.abort_incomplete_days.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    fn rule(prefix: &str, expiration: Option<Expiration>, abort: Option<u32>) -> LifecycleRule {
        LifecycleRule {
            id: "r".into(),
            enabled: true,
            prefix: prefix.into(),
            legacy_prefix: false,
            expiration,
            abort_incomplete_days: abort,
        }
    }

    #[test]
    fn days_round_up_to_the_next_midnight() {
        // Modified at 10:00 on day 5: one day later is 10:00 on day 6, expired at midnight
        // starting day 7.
        let modified = 5 * DAY + 10 * 3_600_000;
        assert_eq!(days_after(modified, 1, DAY), 7 * DAY);
        // Exactly at midnight: no rounding.
        assert_eq!(days_after(5 * DAY, 1, DAY), 6 * DAY);
        // Far future saturates (never expires) rather than wrapping.
        assert_eq!(days_after(u64::MAX - 5, 3, DAY), u64::MAX);
    }

    #[test]
    fn objects_expire_under_their_prefix_only() {
        let r = rule("logs/", Some(Expiration::Days(2)), None);
        let modified = 10 * DAY + 1;
        assert!(!r.object_expired("logs/a", modified, 12 * DAY, DAY));
        assert!(r.object_expired("logs/a", modified, 13 * DAY, DAY));
        assert!(!r.object_expired("data/a", modified, 100 * DAY, DAY));
        let disabled = LifecycleRule {
            enabled: false,
            ..r.clone()
        };
        assert!(!disabled.object_expired("logs/a", modified, 100 * DAY, DAY));
        let dated = rule("", Some(Expiration::Date(20 * DAY)), None);
        assert!(!dated.object_expired("x", 0, 20 * DAY - 1, DAY));
        assert!(dated.object_expired("x", 0, 20 * DAY, DAY));
    }

    #[test]
    fn uploads_are_aborted_after_their_days() {
        let r = rule("tmp/", None, Some(1));
        assert!(!r.upload_stale("tmp/u", 3 * DAY, 4 * DAY - 1, DAY));
        assert!(r.upload_stale("tmp/u", 3 * DAY, 4 * DAY, DAY));
        assert!(!r.upload_stale("other", 0, 100 * DAY, DAY));
        assert!(!r.object_expired("tmp/u", 0, 100 * DAY, DAY));
        let config = LifecycleConfig {
            rules: vec![r, rule("", Some(Expiration::Days(1)), None)],
        };
        assert!(config.expires_objects() && config.aborts_uploads());
        assert_eq!(
            config.object_expiry("any", 10 * DAY + 1, DAY),
            Some((12 * DAY, "r"))
        );
        assert_eq!(config.object_expiry("tmp/x", 0, DAY), Some((DAY, "r")));
        // A short test day: one "day" of 2 s.
        assert!(config.object_expired("any", 1_000, 4_000, 2_000));
        assert!(!config.object_expired("any", 1_000, 3_999, 2_000));
    }
}
