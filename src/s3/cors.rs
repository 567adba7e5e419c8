//! CORS, sans-IO: parse a `CORSConfiguration` (PutBucketCors) into stored rules, write it
//! back (GetBucketCors), find the rule that allows a request, and the `Access-Control-*`
//! headers it answers with.
//!
//! As S3 evaluates them: the first rule whose `AllowedOrigin`, `AllowedMethod` and (for a
//! preflight) every requested header match wins. Origins and headers may hold one `*`
//! wildcard each; origins compare case-sensitively, headers case-insensitively. Methods
//! are GET, PUT, POST, DELETE and HEAD.

use crate::meta::website::CorsRule;
use crate::s3::error::S3Error;
use crate::s3::xml::{self, escape, expect_root, parse_tree, Node};

/// S3 accepts at most this many rules per bucket.
pub const CORS_RULES_MAX: usize = 100;
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

fn texts(node: &Node, name: &str) -> Vec<String> {
    node.children_named(name)
        .map(|c| c.text.trim().to_string())
        .collect()
}

fn one_wildcard_at_most(values: &[String], what: &str) -> Result<(), S3Error> {
    match values.iter().find(|v| v.matches('*').count() > 1) {
        Some(v) => Err(S3Error::InvalidRequest(format!(
            "{what} \"{v}\" can not have more than one wildcard."
        ))),
        None => Ok(()),
    }
}

/// Parses a PutBucketCors body.
pub fn parse_cors_configuration(body: &[u8]) -> Result<Vec<CorsRule>, S3Error> {
    let root = parse_tree(body)?;
    expect_root(&root, "CORSConfiguration")?;
    let rules: Vec<&Node> = root.children_named("CORSRule").collect();
    if rules.is_empty() || rules.len() > CORS_RULES_MAX {
        return Err(S3Error::MalformedXML);
    }
    rules
        .into_iter()
        .map(|r| {
            let allowed_methods = texts(r, "AllowedMethod");
            let allowed_origins = texts(r, "AllowedOrigin");
            if allowed_methods.is_empty() || allowed_origins.is_empty() {
                return Err(S3Error::MalformedXML);
            }
            if let Some(m) = allowed_methods
                .iter()
                .find(|m| !METHODS.contains(&m.as_str()))
            {
                return Err(S3Error::InvalidRequest(format!(
                    "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                )));
            }
            let allowed_headers = texts(r, "AllowedHeader");
            one_wildcard_at_most(&allowed_origins, "AllowedOrigin")?;
            one_wildcard_at_most(&allowed_headers, "AllowedHeader")?;
            let max_age_seconds = match r.child("MaxAgeSeconds") {
                None => None,
                Some(m) => Some(
                    m.text
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| S3Error::MalformedXML)?,
                ),
            };
            Ok(CorsRule {
                id: r.child("ID").map(|i| i.text.trim().to_string()),
                allowed_methods,
                allowed_origins,
                allowed_headers,
                expose_headers: texts(r, "ExposeHeader"),
                max_age_seconds,
            })
        })
        .collect()
}

/// Writes a GetBucketCors body.
pub fn cors_configuration_xml(rules: &[CorsRule]) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(&format!("<CORSConfiguration xmlns=\"{}\">", xml::S3_XMLNS));
    let element = |s: &mut String, name: &str, value: &str| {
        s.push_str(&format!("<{name}>{}</{name}>", escape(value)));
    };
    for rule in rules {
        s.push_str("<CORSRule>");
        if let Some(id) = &rule.id {
            element(&mut s, "ID", id);
        }
        for v in &rule.allowed_headers {
            element(&mut s, "AllowedHeader", v);
        }
        for v in &rule.allowed_methods {
            element(&mut s, "AllowedMethod", v);
        }
        for v in &rule.allowed_origins {
            element(&mut s, "AllowedOrigin", v);
        }
        for v in &rule.expose_headers {
            element(&mut s, "ExposeHeader", v);
        }
        if let Some(age) = rule.max_age_seconds {
            s.push_str(&format!("<MaxAgeSeconds>{age}</MaxAgeSeconds>"));
        }
        s.push_str("</CORSRule>");
    }
    s.push_str("</CORSConfiguration>");
    s
}

/// `value` matches `pattern`, which holds at most one `*` standing for any run of bytes.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.starts_with(prefix)
                && value.ends_with(suffix)
        }
    }
}

impl CorsRule {
    fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|p| wildcard_match(p, origin))
    }

    fn allows_method(&self, method: &str) -> bool {
        self.allowed_methods.iter().any(|m| m == method)
    }

    fn allows_header(&self, header: &str) -> bool {
        let header = header.to_ascii_lowercase();
        self.allowed_headers
            .iter()
            .any(|p| wildcard_match(&p.to_ascii_lowercase(), &header))
    }
}

/// The first rule allowing `origin` to use `method` with `request_headers` (the names of
/// `Access-Control-Request-Headers`; empty for an actual request).
pub fn find_rule<'r>(
    rules: &'r [CorsRule],
    origin: &str,
    method: &str,
    request_headers: &[&str],
) -> Option<&'r CorsRule> {
    rules.iter().find(|r| {
        r.allows_origin(origin)
            && r.allows_method(method)
            && request_headers.iter().all(|h| r.allows_header(h))
    })
}

/// The header names listed in an `Access-Control-Request-Headers` value.
pub fn split_header_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect()
}

/// `Access-Control-Allow-Origin` for a matched rule: `*` when the rule allows every
/// origin, otherwise the origin itself (with credentials allowed, as S3 answers).
fn allow_origin(rule: &CorsRule, origin: &str) -> Vec<(String, String)> {
    if rule.allowed_origins.iter().any(|o| o == "*") {
        vec![("Access-Control-Allow-Origin".into(), "*".into())]
    } else {
        vec![
            ("Access-Control-Allow-Origin".into(), origin.into()),
            ("Access-Control-Allow-Credentials".into(), "true".into()),
        ]
    }
}

fn common(rule: &CorsRule) -> Vec<(String, String)> {
    let mut out = vec![(
        "Access-Control-Allow-Methods".into(),
        rule.allowed_methods.join(", "),
    )];
    if !rule.expose_headers.is_empty() {
        out.push((
            "Access-Control-Expose-Headers".into(),
            rule.expose_headers.join(", "),
        ));
    }
    if let Some(age) = rule.max_age_seconds {
        out.push(("Access-Control-Max-Age".into(), age.to_string()));
    }
    out
}

/// Headers of the answer to an allowed preflight.
pub fn preflight_headers(
    rule: &CorsRule,
    origin: &str,
    request_headers: &[&str],
) -> Vec<(String, String)> {
    let mut out = allow_origin(rule, origin);
    out.extend(common(rule));
    if !request_headers.is_empty() {
        out.push((
            "Access-Control-Allow-Headers".into(),
            request_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    out.push((
        "Vary".into(),
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method".into(),
    ));
    out
}

/// Headers added to an actual (non-preflight) response that a rule allows.
pub fn actual_headers(rule: &CorsRule, origin: &str) -> Vec<(String, String)> {
    let mut out = allow_origin(rule, origin);
    out.extend(common(rule));
    out.push(("Vary".into(), "Origin".into()));
    out
}

/// Why a preflight is refused (S3's messages), or the headers that allow it.
pub fn preflight(
    rules: &[CorsRule],
    origin: Option<&str>,
    method: Option<&str>,
    request_headers: Option<&str>,
) -> Result<Vec<(String, String)>, S3Error> {
    let (Some(origin), Some(method)) = (origin, method) else {
        return Err(S3Error::BadRequest(
            "Insufficient information. Origin request header needed.".into(),
        ));
    };
    if rules.is_empty() {
        return Err(S3Error::AccessForbidden(
            "CORSResponse: CORS is not enabled for this bucket.".into(),
        ));
    }
    let headers = split_header_list(request_headers.unwrap_or(""));
    match find_rule(rules, origin, method, &headers) {
        Some(rule) => Ok(preflight_headers(rule, origin, &headers)),
        None => Err(S3Error::AccessForbidden(
            "CORSResponse: This CORS request is not allowed. This is usually because the \
             evalution of Origin, request method / Access-Control-Request-Method or \
             Access-Control-Request-Headers are not whitelisted by the resource's CORS spec."
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CONFIG: &[u8] = b"<CORSConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
        <CORSRule><ID>site</ID><AllowedOrigin>http://*.example.com</AllowedOrigin>\
        <AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>\
        <AllowedHeader>x-amz-*</AllowedHeader><AllowedHeader>Content-Type</AllowedHeader>\
        <ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>600</MaxAgeSeconds></CORSRule>\
        <CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>\
        </CORSRule></CORSConfiguration>";

    fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn configuration_round_trips() {
        let rules = parse_cors_configuration(CONFIG).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].id.as_deref(), Some("site"));
        assert_eq!(rules[0].allowed_methods, ["GET", "PUT"]);
        assert_eq!(rules[0].max_age_seconds, Some(600));
        assert_eq!(rules[1].allowed_origins, ["*"]);
        let again = parse_cors_configuration(cors_configuration_xml(&rules).as_bytes()).unwrap();
        assert_eq!(again, rules);
    }

    #[test]
    fn bad_configurations_are_refused() {
        let cases: &[(&[u8], &str)] = &[
            (b"<CORSConfiguration/>", "MalformedXML"),
            (
                b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule>\
                  </CORSConfiguration>",
                "MalformedXML",
            ),
            (
                b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>\
                  <AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>",
                "InvalidRequest",
            ),
            (
                b"<CORSConfiguration><CORSRule><AllowedOrigin>*.*</AllowedOrigin>\
                  <AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>",
                "InvalidRequest",
            ),
            (
                b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>\
                  <AllowedMethod>GET</AllowedMethod><MaxAgeSeconds>-1</MaxAgeSeconds>\
                  </CORSRule></CORSConfiguration>",
                "MalformedXML",
            ),
            (b"<WebsiteConfiguration/>", "MalformedXML"),
        ];
        for (body, code) in cases {
            let e = parse_cors_configuration(body).unwrap_err();
            assert_eq!(e.code(), *code, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn preflights_as_s3_answers_them() {
        let rules = parse_cors_configuration(CONFIG).unwrap();
        // Allowed: wildcard origin, listed method, headers matching case-insensitively.
        let h = preflight(
            &rules,
            Some("http://app.example.com"),
            Some("PUT"),
            Some("X-Amz-Date, content-type"),
        )
        .unwrap();
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("http://app.example.com")
        );
        assert_eq!(get(&h, "access-control-allow-methods"), Some("GET, PUT"));
        assert_eq!(
            get(&h, "access-control-allow-headers"),
            Some("x-amz-date, content-type")
        );
        assert_eq!(get(&h, "access-control-expose-headers"), Some("ETag"));
        assert_eq!(get(&h, "access-control-max-age"), Some("600"));
        // The second rule allows any origin to GET, without headers.
        let h = preflight(&rules, Some("http://other.org"), Some("GET"), None).unwrap();
        assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
        // Refused: method, header, origin; missing information.
        for (origin, method, headers) in [
            ("http://other.org", "PUT", None),
            ("http://other.org", "GET", Some("x-custom")),
            ("http://app.example.com", "PUT", Some("x-custom")),
            ("https://app.example.com", "PUT", None),
        ] {
            let e = preflight(&rules, Some(origin), Some(method), headers).unwrap_err();
            assert_eq!(e.code(), "AccessForbidden", "{origin} {method} {headers:?}");
            assert_eq!(e.status(), 403);
        }
        assert_eq!(
            preflight(&rules, None, Some("GET"), None)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            preflight(&rules, Some("o"), None, None)
                .unwrap_err()
                .status(),
            400
        );
        let e = preflight(&[], Some("o"), Some("GET"), None).unwrap_err();
        assert_eq!(e.code(), "AccessForbidden");
    }

    #[test]
    fn actual_requests_get_the_matching_rule_headers() {
        let rules = parse_cors_configuration(CONFIG).unwrap();
        let rule = find_rule(&rules, "http://a.example.com", "GET", &[]).unwrap();
        let h = actual_headers(rule, "http://a.example.com");
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("http://a.example.com")
        );
        assert_eq!(get(&h, "vary"), Some("Origin"));
        assert!(find_rule(&rules, "http://a.example.com", "DELETE", &[]).is_none());
    }

    proptest! {
        #[test]
        fn wildcards_match_prefix_and_suffix(
            prefix in "[a-z:/.]{0,8}", middle in "[a-z.]{0,8}", suffix in "[a-z.]{0,8}"
        ) {
            let pattern = format!("{prefix}*{suffix}");
            let value = format!("{prefix}{middle}{suffix}");
            prop_assert!(wildcard_match(&pattern, &value));
            prop_assert!(wildcard_match(&value, &value));
            let matched = wildcard_match(&format!("{prefix}{suffix}"), &value);
            prop_assert_eq!(matched, middle.is_empty());
        }

        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            let _ = parse_cors_configuration(s.as_bytes());
        }
    }
}
