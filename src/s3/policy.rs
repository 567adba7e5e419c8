//! Browser-based uploads (POST Object with a form), sans-IO: parse the signed POST policy,
//! verify its SigV4 signature, and check the form fields against its conditions as S3
//! does.
//!
//! - The signature is `hex(HMAC(signing_key, <policy as base64, as sent>))`, the key
//!   derived from `x-amz-credential`'s scope (see `sigv4::signing_key`). Forms signed the
//!   V2 way (`AWSAccessKeyId`, `signature`: `base64(HMAC-SHA1(secret, <policy>))`) are
//!   accepted too, as S3 accepts them and boto3 still makes them by default.
//! - Conditions: `{"field": "value"}` and `["eq", "$field", "value"]` (exact),
//!   `["starts-with", "$field", "prefix"]` (an empty prefix allows anything; for
//!   `Content-Type`, each comma-separated type must match), and
//!   `["content-length-range", min, max]`. Field names compare case-insensitively.
//! - Every form field but `x-amz-signature` (V2: `AWSAccessKeyId` and `signature`),
//!   `file`, `policy` and `x-ignore-*` must be named by a condition, else "Extra input
//!   fields".
//! - The `bucket` condition is checked against the bucket of the request.
//! - Values are checked as given: a `${filename}` in `key` is the caller's to substitute
//!   before calling `check`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;

use crate::s3::error::S3Error;
use crate::s3::sigv4::{self, AuthError};

/// One condition of a POST policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Field (lowercase, without `$`) equals value.
    Eq { field: String, value: String },
    /// Field (lowercase, without `$`) starts with prefix.
    StartsWith { field: String, prefix: String },
    /// Body length in bytes, inclusive bounds.
    ContentLengthRange { min: u64, max: u64 },
}

/// A parsed POST policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostPolicy {
    pub expiration_unix_s: i64,
    pub conditions: Vec<Condition>,
}

fn invalid(msg: &str) -> S3Error {
    S3Error::InvalidPolicyDocument(format!("Invalid Policy: {msg}"))
}

fn denied(msg: String) -> S3Error {
    S3Error::AccessDenied(format!("Invalid according to Policy: {msg}"))
}

fn field_name(v: &Value) -> Result<String, S3Error> {
    let s = v
        .as_str()
        .ok_or_else(|| invalid("Condition field must be a string."))?;
    Ok(s.strip_prefix('$').unwrap_or(s).to_ascii_lowercase())
}

fn json_u64(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn parse_condition(c: &Value) -> Result<Condition, S3Error> {
    match c {
        Value::Object(m) => {
            if m.len() != 1 {
                return Err(invalid("Condition object must have exactly one entry."));
            }
            let (k, v) = m.iter().next().expect("one entry");
            let value = v
                .as_str()
                .ok_or_else(|| invalid("Condition value must be a string."))?;
            Ok(Condition::Eq {
                field: k.strip_prefix('$').unwrap_or(k).to_ascii_lowercase(),
                value: value.to_string(),
            })
        }
        Value::Array(a) if a.len() == 3 => {
            let op = a[0]
                .as_str()
                .ok_or_else(|| invalid("Condition operator must be a string."))?;
            match op.to_ascii_lowercase().as_str() {
                "eq" | "starts-with" => {
                    let field = field_name(&a[1])?;
                    let value = a[2]
                        .as_str()
                        .ok_or_else(|| invalid("Condition value must be a string."))?
                        .to_string();
                    Ok(if op.eq_ignore_ascii_case("eq") {
                        Condition::Eq { field, value }
                    } else {
                        Condition::StartsWith {
                            field,
                            prefix: value,
                        }
                    })
                }
                "content-length-range" => {
                    let (Some(min), Some(max)) = (json_u64(&a[1]), json_u64(&a[2])) else {
                        return Err(invalid("content-length-range bounds must be integers."));
                    };
                    if min > max {
                        return Err(invalid("content-length-range minimum exceeds maximum."));
                    }
                    Ok(Condition::ContentLengthRange { min, max })
                }
                _ => Err(invalid(&format!("Unknown condition operator \"{op}\"."))),
            }
        }
        _ => Err(invalid("Condition must be an object or a 3-element array.")),
    }
}

/// Parse the `policy` form field (base64 of the JSON document).
pub fn parse_policy(policy_base64: &str) -> Result<PostPolicy, S3Error> {
    let raw = B64
        .decode(policy_base64.trim())
        .map_err(|_| invalid("Invalid Base64 encoding."))?;
    let doc: Value = serde_json::from_slice(&raw).map_err(|_| invalid("Invalid JSON."))?;
    let exp = doc
        .get("expiration")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("Policy missing expiration."))?;
    let expiration =
        time::OffsetDateTime::parse(exp, &time::format_description::well_known::Rfc3339)
            .map_err(|_| invalid("Invalid 'expiration' value."))?;
    let conditions = doc
        .get("conditions")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("Policy missing conditions."))?
        .iter()
        .map(parse_condition)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PostPolicy {
        expiration_unix_s: expiration.unix_timestamp(),
        conditions,
    })
}

fn form_value<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Form fields that no condition needs to cover.
fn exempt(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "x-amz-signature" | "file" | "policy" | "awsaccesskeyid" | "signature"
    ) || n.starts_with("x-ignore-")
}

impl PostPolicy {
    /// Check expiration and every condition against the form fields (the file excluded)
    /// and the request's bucket.
    pub fn check(
        &self,
        fields: &[(String, String)],
        bucket: &str,
        now_unix_s: i64,
    ) -> Result<(), S3Error> {
        if now_unix_s > self.expiration_unix_s {
            return Err(denied("Policy expired.".into()));
        }
        let value_of = |field: &str| -> &str {
            if field == "bucket" {
                bucket
            } else {
                form_value(fields, field).unwrap_or("")
            }
        };
        for c in &self.conditions {
            let ok = match c {
                Condition::Eq { field, value } => value_of(field) == value,
                Condition::StartsWith { field, prefix } if field == "content-type" => {
                    value_of(field)
                        .split(',')
                        .all(|t| t.trim_start().starts_with(prefix.as_str()))
                }
                Condition::StartsWith { field, prefix } => value_of(field).starts_with(prefix),
                Condition::ContentLengthRange { .. } => true,
            };
            if !ok {
                return Err(denied(format!("Policy Condition failed: {}", describe(c))));
            }
        }
        for (name, _) in fields {
            if exempt(name) {
                continue;
            }
            let lname = name.to_ascii_lowercase();
            let covered = self.conditions.iter().any(|c| match c {
                Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => {
                    *field == lname
                }
                Condition::ContentLengthRange { .. } => false,
            });
            if !covered {
                return Err(denied(format!("Extra input fields: {name}")));
            }
        }
        Ok(())
    }

    /// The allowed body size, if the policy bounds it.
    pub fn content_length_range(&self) -> Option<(u64, u64)> {
        self.conditions.iter().find_map(|c| match c {
            Condition::ContentLengthRange { min, max } => Some((*min, *max)),
            _ => None,
        })
    }

    /// `EntityTooSmall` / `EntityTooLarge` when the file's size is outside the range.
    pub fn check_content_length(&self, len: u64) -> Result<(), S3Error> {
        match self.content_length_range() {
            Some((min, _)) if len < min => Err(S3Error::EntityTooSmall),
            Some((_, max)) if len > max => Err(S3Error::EntityTooLarge),
            _ => Ok(()),
        }
    }
}

fn describe(c: &Condition) -> String {
    match c {
        Condition::Eq { field, value } => format!("[\"eq\", \"${field}\", \"{value}\"]"),
        Condition::StartsWith { field, prefix } => {
            format!("[\"starts-with\", \"${field}\", \"{prefix}\"]")
        }
        Condition::ContentLengthRange { min, max } => {
            format!("[\"content-length-range\", {min}, {max}]")
        }
    }
}

/// How a POST form is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostSignatureVersion {
    /// `AWSAccessKeyId` and `signature` (HMAC-SHA1, base64).
    V2,
    /// `x-amz-algorithm`, `x-amz-credential`, `x-amz-date`, `x-amz-signature`.
    V4,
}

/// The credentials of a POST form. For V2, `date`, `region` and `amz_date` are empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostAuth {
    pub version: PostSignatureVersion,
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub amz_date: String,
    pub signature: String,
    pub policy_base64: String,
}

/// Read `policy`, `x-amz-algorithm`, `x-amz-credential`, `x-amz-date`, `x-amz-signature`
/// from the form fields. `Ok(None)`: an anonymous upload (no policy, no signature).
pub fn parse_post_auth(fields: &[(String, String)]) -> Result<Option<PostAuth>, S3Error> {
    let get = |n: &str| form_value(fields, n);
    let missing = |what: &str| {
        S3Error::InvalidArgument(format!(
            "Bucket POST must contain a field named '{what}'.  If it is specified, please check \
                the order of the fields."
        ))
    };
    if get("awsaccesskeyid").is_some() || get("signature").is_some() {
        let policy = get("policy").ok_or_else(|| missing("policy"))?;
        let key = get("awsaccesskeyid").ok_or_else(|| missing("AWSAccessKeyId"))?;
        let sig = get("signature").ok_or_else(|| missing("signature"))?;
        return Ok(Some(PostAuth {
            version: PostSignatureVersion::V2,
            access_key_id: key.to_string(),
            date: String::new(),
            region: String::new(),
            amz_date: String::new(),
            signature: sig.trim().to_string(),
            policy_base64: policy.to_string(),
        }));
    }
    let (policy, sig) = (get("policy"), get("x-amz-signature"));
    if policy.is_none() && sig.is_none() && get("x-amz-credential").is_none() {
        return Ok(None);
    }
    let policy = policy.ok_or_else(|| missing("policy"))?;
    let alg = get("x-amz-algorithm").ok_or_else(|| missing("x-amz-algorithm"))?;
    let cred = get("x-amz-credential").ok_or_else(|| missing("x-amz-credential"))?;
    let amz_date = get("x-amz-date").ok_or_else(|| missing("x-amz-date"))?;
    let sig = sig.ok_or_else(|| missing("x-amz-signature"))?;
    if alg != sigv4::ALGORITHM {
        return Err(S3Error::InvalidArgument(
            "x-amz-algorithm only supports \"AWS4-HMAC-SHA256\"".into(),
        ));
    }
    let mut parts = cred.rsplitn(5, '/');
    let (Some("aws4_request"), Some("s3"), Some(region), Some(date), Some(key)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(S3Error::InvalidArgument(format!(
            "Invalid argument: x-amz-credential \"{cred}\" is malformed."
        )));
    };
    if sigv4::parse_amz_date(amz_date).is_none() || !amz_date.starts_with(date) {
        return Err(S3Error::InvalidArgument(
            "x-amz-date must be in the ISO8601 Long Format and match the credential date".into(),
        ));
    }
    Ok(Some(PostAuth {
        version: PostSignatureVersion::V4,
        access_key_id: key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        amz_date: amz_date.to_string(),
        signature: sig.trim().to_ascii_lowercase(),
        policy_base64: policy.to_string(),
    }))
}

/// The signature of a POST policy (for tests and tools).
pub fn sign_policy(
    secret_access_key: &str,
    date: &str,
    region: &str,
    policy_base64: &str,
) -> String {
    let key = sigv4::signing_key(secret_access_key, date, region, "s3");
    let mut m = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&key)
        .expect("HMAC accepts any key length");
    hmac::Mac::update(&mut m, policy_base64.as_bytes());
    hex::encode(hmac::Mac::finalize(m).into_bytes())
}

/// Verify the policy signature with the secret of `auth.access_key_id`.
pub fn verify_post_signature(auth: &PostAuth, secret_access_key: &str) -> Result<(), AuthError> {
    let expected = match auth.version {
        PostSignatureVersion::V4 => sign_policy(
            secret_access_key,
            &auth.date,
            &auth.region,
            &auth.policy_base64,
        ),
        PostSignatureVersion::V2 => {
            crate::s3::sigv2::signature(secret_access_key, &auth.policy_base64)
        }
    };
    let (a, b) = (expected.as_bytes(), auth.signature.as_bytes());
    let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if same {
        Ok(())
    } else {
        Err(AuthError::SignatureDoesNotMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn policy_b64(json: &str) -> String {
        B64.encode(json)
    }

    const POLICY: &str = r#"{ "expiration": "2015-12-30T12:00:00.000Z",
      "conditions": [
        {"bucket": "sigv4examplebucket"},
        ["starts-with", "$key", "user/user1/"],
        {"acl": "public-read"},
        {"success_action_redirect":
            "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html"},
        ["starts-with", "$Content-Type", "image/"],
        {"x-amz-meta-uuid": "14365123651274"},
        {"x-amz-server-side-encryption": "AES256"},
        ["starts-with", "$x-amz-meta-tag", ""],
        {"x-amz-credential": "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request"},
        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"x-amz-date": "20151229T000000Z" },
        ["content-length-range", 1, "1048576"]
      ]
    }"#;

    fn form(policy: &str, sig: &str) -> Vec<(String, String)> {
        f(&[
            ("key", "user/user1/photo.jpg"),
            ("acl", "public-read"),
            (
                "success_action_redirect",
                "http://sigv4examplebucket.s3.amazonaws.com/successful_upload.html",
            ),
            ("Content-Type", "image/jpeg"),
            ("x-amz-meta-uuid", "14365123651274"),
            ("x-amz-server-side-encryption", "AES256"),
            (
                "X-Amz-Credential",
                "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
            ),
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Date", "20151229T000000Z"),
            ("x-amz-meta-tag", ""),
            ("Policy", policy),
            ("X-Amz-Signature", sig),
        ])
    }

    fn now() -> i64 {
        sigv4::parse_amz_date("20151229T000000Z").unwrap()
    }

    #[test]
    fn example_policy_accepted() {
        let p64 = policy_b64(POLICY);
        let sig = sign_policy(SK, "20151229", "us-east-1", &p64);
        let fields = form(&p64, &sig);
        let auth = parse_post_auth(&fields).unwrap().unwrap();
        assert_eq!(auth.access_key_id, "AKIAIOSFODNN7EXAMPLE");
        verify_post_signature(&auth, SK).unwrap();
        assert_eq!(
            verify_post_signature(&auth, "x"),
            Err(AuthError::SignatureDoesNotMatch)
        );
        let p = parse_policy(&p64).unwrap();
        assert_eq!(p.conditions.len(), 12);
        assert_eq!(p.content_length_range(), Some((1, 1_048_576)));
        p.check(&fields, "sigv4examplebucket", now()).unwrap();
        assert_eq!(p.check_content_length(0), Err(S3Error::EntityTooSmall));
        assert_eq!(
            p.check_content_length(1_048_577),
            Err(S3Error::EntityTooLarge)
        );
        p.check_content_length(10).unwrap();
        // Wrong bucket, expired, wrong prefix, extra field, wrong content type.
        assert!(matches!(
            p.check(&fields, "other", now()),
            Err(S3Error::AccessDenied(_))
        ));
        assert!(matches!(
            p.check(&fields, "sigv4examplebucket", p.expiration_unix_s + 1),
            Err(S3Error::AccessDenied(m)) if m.contains("expired")
        ));
        let mut bad = fields.clone();
        bad[0].1 = "user/user2/photo.jpg".into();
        assert!(p.check(&bad, "sigv4examplebucket", now()).is_err());
        let mut bad = fields.clone();
        bad.push(("x-amz-meta-extra".into(), "1".into()));
        assert!(matches!(
            p.check(&bad, "sigv4examplebucket", now()),
            Err(S3Error::AccessDenied(m)) if m.contains("Extra input fields")
        ));
        let mut ok = fields.clone();
        ok.push(("x-ignore-me".into(), "1".into()));
        p.check(&ok, "sigv4examplebucket", now()).unwrap();
        let mut bad = fields.clone();
        bad[3].1 = "image/png, text/html".into();
        assert!(p.check(&bad, "sigv4examplebucket", now()).is_err());
    }

    #[test]
    fn v2_signed_forms_verify() {
        let p64 = policy_b64(r#"{"expiration": "2030-01-01T00:00:00Z", "conditions": []}"#);
        let sig = crate::s3::sigv2::signature(SK, &p64);
        let fields = f(&[
            ("AWSAccessKeyId", "AKID"),
            ("policy", &p64),
            ("signature", &sig),
        ]);
        let auth = parse_post_auth(&fields).unwrap().unwrap();
        assert_eq!(auth.version, PostSignatureVersion::V2);
        assert_eq!(auth.access_key_id, "AKID");
        verify_post_signature(&auth, SK).unwrap();
        assert!(verify_post_signature(&auth, "other").is_err());
        // The V2 credential fields need no condition.
        parse_policy(&p64).unwrap().check(&fields, "b", 0).unwrap();
    }

    #[test]
    fn malformed() {
        for bad in [
            "not base64!",
            &policy_b64("{"),
            &policy_b64(r#"{"conditions": []}"#),
            &policy_b64(r#"{"expiration": "tomorrow", "conditions": []}"#),
            &policy_b64(
                r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": [["gt", "$key", "a"]]}"#,
            ),
            &policy_b64(
                r#"{"expiration": "2015-12-30T12:00:00Z",
                    "conditions": [["content-length-range", 5, 1]]}"#,
            ),
            &policy_b64(
                r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": [{"a": "b", "c": "d"}]}"#,
            ),
            &policy_b64(r#"{"expiration": "2015-12-30T12:00:00Z", "conditions": [42]}"#),
        ] {
            assert!(
                matches!(parse_policy(bad), Err(S3Error::InvalidPolicyDocument(_))),
                "{bad}"
            );
        }
        assert_eq!(parse_post_auth(&f(&[("key", "a")])), Ok(None));
        assert!(parse_post_auth(&f(&[("AWSAccessKeyId", "a"), ("signature", "s")])).is_err());
        assert!(parse_post_auth(&f(&[("policy", "p"), ("signature", "s")])).is_err());
        assert!(parse_post_auth(&f(&[("policy", "p")])).is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            let _ = parse_policy(&B64.encode(&s));
            let _ = parse_policy(&s);
        }

        #[test]
        fn starts_with_semantics(prefix in "[a-z/]{0,6}", key in "[a-z/]{0,10}") {
            let json = format!(
                r#"{{"expiration": "2030-01-01T00:00:00Z",
                    "conditions": [["starts-with", "$key", "{prefix}"], {{"bucket": "b"}}]}}"#
            );
            let p = parse_policy(&B64.encode(json)).unwrap();
            let r = p.check(&f(&[("key", &key)]), "b", 0);
            prop_assert_eq!(r.is_ok(), key.starts_with(&prefix));
        }
    }
}
