//! `?website` bodies, sans-IO: parse a `WebsiteConfiguration` (PutBucketWebsite) into the
//! stored `WebsiteConfig`, write one back (GetBucketWebsite), and decide which key a
//! website request names.
//!
//! Accepted as S3 accepts it: either `RedirectAllRequestsTo` alone, or an `IndexDocument`
//! (its `Suffix` non-empty, without `/`) with an optional `ErrorDocument`. `RoutingRules`
//! are refused with NotImplemented rather than stored and ignored.

use crate::meta::website::{RedirectAll, WebsiteConfig};
use crate::s3::error::S3Error;
use crate::s3::xml::{self, escape, expect_root, parse_tree};

fn invalid(message: &str) -> S3Error {
    S3Error::InvalidArgument(message.to_string())
}

/// Parses a PutBucketWebsite body.
pub fn parse_website_configuration(body: &[u8]) -> Result<WebsiteConfig, S3Error> {
    let root = parse_tree(body)?;
    expect_root(&root, "WebsiteConfiguration")?;
    if root.child("RoutingRules").is_some() {
        return Err(S3Error::NotImplemented("website RoutingRules".into()));
    }
    let index = root.child("IndexDocument");
    let error = root.child("ErrorDocument");
    if let Some(redirect) = root.child("RedirectAllRequestsTo") {
        if index.is_some() || error.is_some() {
            return Err(invalid(
                "RedirectAllRequestsTo cannot be provided in conjunction with other Routing \
                 Rules.",
            ));
        }
        let host_name = redirect
            .child("HostName")
            .map(|h| h.text.trim().to_string())
            .filter(|h| !h.is_empty() && !h.contains(['/', ' ']))
            .ok_or_else(|| invalid("RedirectAllRequestsTo needs a valid HostName"))?;
        let protocol = match redirect.child("Protocol").map(|p| p.text.trim()) {
            None => None,
            Some(p @ ("http" | "https")) => Some(p.to_string()),
            Some(_) => return Err(invalid("Invalid protocol, protocol can be http or https.")),
        };
        return Ok(WebsiteConfig {
            index_suffix: "index.html".into(),
            error_document: None,
            redirect_all: Some(RedirectAll {
                host_name,
                protocol,
            }),
        });
    }
    let index = index.ok_or_else(|| {
        invalid(
            "A value for IndexDocument Suffix must be provided if RedirectAllRequestsTo is empty",
        )
    })?;
    let suffix = index
        .child("Suffix")
        .map(|s| s.text.trim().to_string())
        .unwrap_or_default();
    if suffix.is_empty() || suffix.contains('/') {
        return Err(invalid("The IndexDocument Suffix is not well formed"));
    }
    let error_document = match error {
        None => None,
        Some(e) => {
            let key = e
                .child("Key")
                .map(|k| k.text.trim().to_string())
                .unwrap_or_default();
            if key.is_empty() || key.len() > crate::constants::OBJECT_KEY_BYTES_MAX {
                return Err(invalid("The ErrorDocument Key is not well formed"));
            }
            Some(key)
        }
    };
    Ok(WebsiteConfig {
        index_suffix: suffix,
        error_document,
        redirect_all: None,
    })
}

/// Writes a GetBucketWebsite body.
pub fn website_configuration_xml(config: &WebsiteConfig) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(&format!(
        "<WebsiteConfiguration xmlns=\"{}\">",
        xml::S3_XMLNS
    ));
    if let Some(r) = &config.redirect_all {
        s.push_str("<RedirectAllRequestsTo><HostName>");
        s.push_str(&escape(&r.host_name));
        s.push_str("</HostName>");
        if let Some(p) = &r.protocol {
            s.push_str(&format!("<Protocol>{}</Protocol>", escape(p)));
        }
        s.push_str("</RedirectAllRequestsTo>");
    } else {
        s.push_str(&format!(
            "<IndexDocument><Suffix>{}</Suffix></IndexDocument>",
            escape(&config.index_suffix)
        ));
        if let Some(key) = &config.error_document {
            s.push_str(&format!(
                "<ErrorDocument><Key>{}</Key></ErrorDocument>",
                escape(key)
            ));
        }
    }
    s.push_str("</WebsiteConfiguration>");
    s
}

/// The key a website request for `path` (decoded, with its leading `/`) reads: the index
/// document for `/` and for paths ending in `/`.
pub fn key_for_path(path: &str, index_suffix: &str) -> String {
    let key = path.strip_prefix('/').unwrap_or(path);
    if key.is_empty() || key.ends_with('/') {
        format!("{key}{index_suffix}")
    } else {
        key.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";

    #[test]
    fn index_and_error_documents_round_trip() {
        let body = format!(
            "<WebsiteConfiguration {NS}><IndexDocument><Suffix>index.html</Suffix>\
             </IndexDocument><ErrorDocument><Key>err/404.html</Key></ErrorDocument>\
             </WebsiteConfiguration>"
        );
        let c = parse_website_configuration(body.as_bytes()).unwrap();
        assert_eq!(c.index_suffix, "index.html");
        assert_eq!(c.error_document.as_deref(), Some("err/404.html"));
        assert_eq!(c.redirect_all, None);
        let again = parse_website_configuration(website_configuration_xml(&c).as_bytes());
        assert_eq!(again.unwrap(), c);
    }

    #[test]
    fn redirect_all_round_trips() {
        let body = b"<WebsiteConfiguration><RedirectAllRequestsTo><HostName>example.com\
            </HostName><Protocol>https</Protocol></RedirectAllRequestsTo></WebsiteConfiguration>";
        let c = parse_website_configuration(body).unwrap();
        let r = c.redirect_all.clone().unwrap();
        assert_eq!(
            (r.host_name.as_str(), r.protocol.as_deref()),
            ("example.com", Some("https"))
        );
        let again = parse_website_configuration(website_configuration_xml(&c).as_bytes());
        assert_eq!(again.unwrap(), c);
    }

    #[test]
    fn bad_configurations_are_refused() {
        let cases: &[(&[u8], &str)] = &[
            (b"<WebsiteConfiguration/>", "InvalidArgument"),
            (
                b"<WebsiteConfiguration><IndexDocument><Suffix></Suffix></IndexDocument>\
                  </WebsiteConfiguration>",
                "InvalidArgument",
            ),
            (
                b"<WebsiteConfiguration><IndexDocument><Suffix>a/b</Suffix></IndexDocument>\
                  </WebsiteConfiguration>",
                "InvalidArgument",
            ),
            (
                b"<WebsiteConfiguration><IndexDocument><Suffix>i</Suffix></IndexDocument>\
                  <ErrorDocument></ErrorDocument></WebsiteConfiguration>",
                "InvalidArgument",
            ),
            (
                b"<WebsiteConfiguration><IndexDocument><Suffix>i</Suffix></IndexDocument>\
                  <RoutingRules/></WebsiteConfiguration>",
                "NotImplemented",
            ),
            (
                b"<WebsiteConfiguration><RedirectAllRequestsTo><HostName>h</HostName>\
                  <Protocol>ftp</Protocol></RedirectAllRequestsTo></WebsiteConfiguration>",
                "InvalidArgument",
            ),
            (
                b"<WebsiteConfiguration><RedirectAllRequestsTo><HostName>h</HostName>\
                  </RedirectAllRequestsTo><IndexDocument><Suffix>i</Suffix></IndexDocument>\
                  </WebsiteConfiguration>",
                "InvalidArgument",
            ),
            (b"<CORSConfiguration/>", "MalformedXML"),
            (b"<WebsiteConfiguration>", "MalformedXML"),
        ];
        for (body, code) in cases {
            let e = parse_website_configuration(body).unwrap_err();
            assert_eq!(e.code(), *code, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn index_applies_to_the_root_and_to_directories() {
        assert_eq!(key_for_path("/", "index.html"), "index.html");
        assert_eq!(key_for_path("/docs/", "index.html"), "docs/index.html");
        assert_eq!(key_for_path("/docs", "index.html"), "docs");
        assert_eq!(key_for_path("/a/b.css", "index.html"), "a/b.css");
    }
}
