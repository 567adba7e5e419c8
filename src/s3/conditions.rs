//! Conditional requests, sans-IO: `If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since` on GET and HEAD, and their `x-amz-copy-source-if-*` twins on
//! CopyObject and UploadPartCopy, evaluated as S3 does (RFC 9110 §13.2.2 order):
//!
//! 1. `If-Match` present: false → 412. (`If-Unmodified-Since` is then ignored, so
//!    If-Match true + If-Unmodified-Since false → 200.)
//! 2. otherwise `If-Unmodified-Since` false → 412.
//! 3. `If-None-Match` present: false (an ETag matches) → 304 on GET/HEAD, 412 on a copy.
//!    (`If-Modified-Since` is then ignored, so If-None-Match false + If-Modified-Since
//!    true → 304.)
//! 4. otherwise `If-Modified-Since` false (not modified) → 304 / 412.
//!
//! Dates compare at one-second resolution (HTTP dates have no more); an unparseable date
//! is ignored, as S3 ignores it.

/// The four conditions as the request gave them (raw header values).
#[derive(Clone, Copy, Debug, Default)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Proceed,
    /// 304 Not Modified (GET/HEAD) — a copy answers 412 instead.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

pub use crate::meta::types::etags_equal;

/// A comma-separated ETag list (or `*`) names `etag`.
pub fn etag_list_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .any(|t| t.trim() == "*" || etags_equal(t, etag))
}

/// Seconds since the epoch of an HTTP date (IMF-fixdate, RFC 850, asctime, or RFC 2822
/// form: `crate::http::parse_http_date`); dates before the epoch count as the epoch.
pub fn parse_http_date(value: &str) -> Option<u64> {
    crate::http::parse_http_date(value).map(|t| u64::try_from(t).unwrap_or(0))
}

impl Conditions<'_> {
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
            && self.if_unmodified_since.is_none()
    }

    /// Evaluates the conditions against an object with this ETag, last modified at
    /// `modified_ms`.
    pub fn evaluate(&self, etag: &str, modified_ms: u64) -> Outcome {
        let modified_s = modified_ms / 1000;
        match self.if_match {
            Some(list) if !etag_list_matches(list, etag) => return Outcome::Failed,
            Some(_) => {}
            None => {
                if let Some(since) = self.if_unmodified_since.and_then(parse_http_date) {
                    if modified_s > since {
                        return Outcome::Failed;
                    }
                }
            }
        }
        match self.if_none_match {
            Some(list) if etag_list_matches(list, etag) => Outcome::NotModified,
            Some(_) => Outcome::Proceed,
            None => match self.if_modified_since.and_then(parse_http_date) {
                Some(since) if modified_s <= since => Outcome::NotModified,
                _ => Outcome::Proceed,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETAG: &str = "\"abc\"";
    // Sun, 06 Nov 1994 08:49:37 GMT
    const T: u64 = 784_111_777;
    const AT: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    fn eval(c: Conditions) -> Outcome {
        c.evaluate(ETAG, T * 1000 + 500)
    }

    #[test]
    fn each_header_alone() {
        use Outcome::*;
        let c = Conditions::default;
        assert_eq!(eval(c()), Proceed);
        for (list, want) in [
            ("\"abc\"", Proceed),
            ("abc", Proceed),
            ("*", Proceed),
            ("\"x\", \"abc\"", Proceed),
            ("\"x\"", Failed),
        ] {
            let got = eval(Conditions {
                if_match: Some(list),
                ..c()
            });
            assert_eq!(got, want, "If-Match {list}");
        }
        for (list, want) in [
            ("\"abc\"", NotModified),
            ("*", NotModified),
            ("\"x\"", Proceed),
        ] {
            let got = eval(Conditions {
                if_none_match: Some(list),
                ..c()
            });
            assert_eq!(got, want, "If-None-Match {list}");
        }
        for (date, want) in [(BEFORE, Proceed), (AT, NotModified), (AFTER, NotModified)] {
            let got = eval(Conditions {
                if_modified_since: Some(date),
                ..c()
            });
            assert_eq!(got, want, "If-Modified-Since {date}");
        }
        for (date, want) in [(BEFORE, Failed), (AT, Proceed), (AFTER, Proceed)] {
            let got = eval(Conditions {
                if_unmodified_since: Some(date),
                ..c()
            });
            assert_eq!(got, want, "If-Unmodified-Since {date}");
        }
        // Unparseable dates are ignored.
        let junk = Conditions {
            if_modified_since: Some("yesterday"),
            if_unmodified_since: Some("tomorrow"),
            ..c()
        };
        assert_eq!(eval(junk), Proceed);
    }

    #[test]
    fn precedence_as_s3() {
        use Outcome::*;
        // If-Match true + If-Unmodified-Since false → 200.
        let c = Conditions {
            if_match: Some(ETAG),
            if_unmodified_since: Some(BEFORE),
            ..Default::default()
        };
        assert_eq!(eval(c), Proceed);
        // If-None-Match false + If-Modified-Since true → 304.
        let c = Conditions {
            if_none_match: Some(ETAG),
            if_modified_since: Some(BEFORE),
            ..Default::default()
        };
        assert_eq!(eval(c), NotModified);
        // If-None-Match true + If-Modified-Since false → 200 (IMS ignored).
        let c = Conditions {
            if_none_match: Some("\"other\""),
            if_modified_since: Some(AFTER),
            ..Default::default()
        };
        assert_eq!(eval(c), Proceed);
        // 412 wins over 304.
        let c = Conditions {
            if_match: Some("\"other\""),
            if_none_match: Some(ETAG),
            ..Default::default()
        };
        assert_eq!(eval(c), Failed);
    }

    #[test]
    fn etag_forms() {
        assert!(etags_equal("\"a\"", "a"));
        assert!(etags_equal(" W/\"a\" ", "\"a\""));
        assert!(!etags_equal("\"a\"", "\"b\""));
        assert_eq!(parse_http_date(AT), Some(T));
        assert_eq!(parse_http_date("nope"), None);
    }
}
