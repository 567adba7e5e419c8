//! Signature Version 2, query-string form only: the presigned URLs that boto3 still makes
//! by default in us-east-1 (`?AWSAccessKeyId=…&Expires=…&Signature=…`). Header-signed V2
//! requests stay refused (see `sigv4::parse`). Pure: bytes in, verdict out.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::sigv4::{percent_decode, AuthError, AuthInput, MAX_PRESIGNED_EXPIRES_S};

/// Query parameters that are part of the V2 canonical resource, in sorted order.
const SUBRESOURCES: &[&str] = &[
    "acl",
    "cors",
    "delete",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "partNumber",
    "policy",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// A V2 presigned request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedV2 {
    pub access_key_id: String,
    pub expires: i64,
    pub signature: String,
}

fn decoded_pairs(raw_query: &str) -> Vec<(String, String)> {
    raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| String::from_utf8_lossy(&percent_decode(s)).into_owned();
            (decode(name), decode(value))
        })
        .collect()
}

/// Recognizes a V2 presigned URL. `None`: not one (no `Signature` and `AWSAccessKeyId`).
pub fn parse(input: &AuthInput) -> Result<Option<PresignedV2>, AuthError> {
    let pairs = decoded_pairs(input.raw_query);
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let (Some(access_key_id), Some(signature)) = (get("AWSAccessKeyId"), get("Signature")) else {
        return Ok(None);
    };
    let expires = get("Expires")
        .and_then(|e| e.parse::<i64>().ok())
        .ok_or_else(|| AuthError::AccessDenied("a presigned URL needs Expires".into()))?;
    Ok(Some(PresignedV2 {
        access_key_id,
        expires,
        signature,
    }))
}

/// The V2 string to sign of a presigned request. `vhost_bucket`: the bucket when it was
/// named by the Host header (virtual-host style), which V2 puts before the path.
pub fn string_to_sign(input: &AuthInput, vhost_bucket: Option<&str>, expires: i64) -> String {
    let header = |name: &str| input.header(name).unwrap_or("").to_string();
    let mut amz: Vec<(String, String)> = input
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-amz-"))
        .map(|(n, v)| (n.clone(), v.trim().to_string()))
        .collect();
    amz.sort();
    let mut out = format!(
        "{}\n{}\n{}\n{}\n",
        input.method,
        header("content-md5"),
        header("content-type"),
        expires
    );
    for (name, value) in amz {
        out.push_str(&format!("{name}:{value}\n"));
    }
    if let Some(bucket) = vhost_bucket {
        out.push('/');
        out.push_str(bucket);
    }
    out.push_str(input.raw_path);
    let pairs = decoded_pairs(input.raw_query);
    let mut sub: Vec<&(String, String)> = pairs
        .iter()
        .filter(|(n, _)| SUBRESOURCES.contains(&n.as_str()))
        .collect();
    sub.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (name, value)) in sub.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(name);
        if !value.is_empty() {
            out.push('=');
            out.push_str(value);
        }
    }
    out
}

pub fn signature(secret_access_key: &str, string_to_sign: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret_access_key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a V2 presigned request: signature (constant time), then expiry.
pub fn verify(
    input: &AuthInput,
    vhost_bucket: Option<&str>,
    presigned: &PresignedV2,
    secret_access_key: &str,
    now_unix_s: i64,
) -> Result<(), AuthError> {
    let expected = signature(
        secret_access_key,
        &string_to_sign(input, vhost_bucket, presigned.expires),
    );
    let given = presigned.signature.as_bytes();
    let same = given.len() == expected.len()
        && given
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(AuthError::SignatureDoesNotMatch);
    }
    if now_unix_s > presigned.expires {
        return Err(AuthError::AccessDenied("Request has expired".into()));
    }
    // V2 URLs carry an absolute expiry: capped as SigV4's lifetime is, seven days from now.
    if presigned.expires > now_unix_s.saturating_add(MAX_PRESIGNED_EXPIRES_S) {
        return Err(AuthError::AccessDenied(
            "Expires must be at most seven days (604800 seconds) from now".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(query: &'a str, headers: &'a [(String, String)]) -> AuthInput<'a> {
        AuthInput {
            method: "GET",
            raw_path: "/johnsmith/photos/puppy.jpg",
            raw_query: query,
            headers,
        }
    }

    /// AWS's published V2 query-string example (RESTAuthentication, "Query string
    /// request authentication alternative"): virtual-host style, bucket johnsmith.
    #[test]
    fn aws_example_verifies() {
        let headers = vec![];
        let query =
            "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D\
                     &Expires=1175139620";
        let i = AuthInput {
            method: "GET",
            raw_path: "/photos/puppy.jpg",
            raw_query: query,
            headers: &headers,
        };
        let p = parse(&i).unwrap().unwrap();
        assert_eq!(p.expires, 1175139620);
        let vhost = Some("johnsmith");
        assert_eq!(
            string_to_sign(&i, vhost, p.expires),
            "GET\n\n\n1175139620\n/johnsmith/photos/puppy.jpg"
        );
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        verify(&i, vhost, &p, secret, 1175139000).unwrap();
        assert_eq!(
            verify(&i, vhost, &p, secret, 1175139621),
            Err(AuthError::AccessDenied("Request has expired".into()))
        );
        assert_eq!(
            verify(&i, vhost, &p, "wrong", 1175139000),
            Err(AuthError::SignatureDoesNotMatch)
        );
        assert_eq!(
            verify(&i, None, &p, secret, 1175139000),
            Err(AuthError::SignatureDoesNotMatch)
        );
        // Issue 25: no lifetime limit (a URL valid for ten years was accepted).
        verify(&i, vhost, &p, secret, 1175139620 - 604_800).unwrap();
        assert!(matches!(
            verify(&i, vhost, &p, secret, 1175139620 - 604_801),
            Err(AuthError::AccessDenied(_))
        ));
    }

    #[test]
    fn subresources_are_signed_sorted_and_others_not() {
        let headers = vec![];
        let q =
            "versionId=3&AWSAccessKeyId=A&Expires=1&Signature=x&response-content-type=a%2Fb&x=y";
        assert_eq!(
            string_to_sign(&input(q, &headers), None, 1),
            "GET\n\n\n1\n/johnsmith/photos/puppy.jpg?response-content-type=a/b&versionId=3"
        );
    }

    #[test]
    fn requests_without_v2_parameters_are_not_v2() {
        assert_eq!(parse(&input("X-Amz-Signature=1", &[])).unwrap(), None);
    }
}
