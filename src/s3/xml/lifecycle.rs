//! `<LifecycleConfiguration>` (Put/GetBucketLifecycleConfiguration).
//!
//! Accepted: rules with `ID`, `Status`, a prefix (legacy `<Prefix>`, `<Filter><Prefix>`,
//! `<Filter><And><Prefix>`, or an empty `<Filter/>`), `Expiration` (`Days` or `Date`) and
//! `AbortIncompleteMultipartUpload`. Filters on tags or sizes, transitions, and
//! noncurrent-version actions are `NotImplemented` (Granary has no storage classes and no
//! versioning); `ExpiredObjectDeleteMarker` likewise.

use super::{expect_root, parse_tree, Doc, Node};
use crate::meta::lifecycle::{Expiration, LifecycleConfig, LifecycleRule};
use crate::s3::error::S3Error;

/// S3's limit on rules per configuration.
pub const RULES_MAX: usize = 1000;
const RULE_ID_CHARS_MAX: usize = 255;

fn invalid(message: &str) -> S3Error {
    S3Error::InvalidArgument(message.into())
}

fn not_implemented(what: &str) -> S3Error {
    S3Error::NotImplemented(format!("lifecycle {what}"))
}

fn positive_days(node: &Node, what: &str) -> Result<u32, S3Error> {
    match node.text.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(&format!("'{what}' must be a positive integer"))),
    }
}

/// `2026-01-01T00:00:00Z` / `…00.000Z` / `2026-01-01` at midnight UTC, in milliseconds.
fn parse_date(text: &str) -> Result<u64, S3Error> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    let t = time::OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{text}T00:00:00Z"), &Rfc3339))
        .map_err(|_| invalid("'Date' must be in ISO 8601 format"))?;
    let t = t.to_offset(time::UtcOffset::UTC);
    if (t.hour(), t.minute(), t.second(), t.nanosecond()) != (0, 0, 0, 0) {
        return Err(invalid("'Date' must be at midnight GMT"));
    }
    u64::try_from(t.unix_timestamp())
        .map(|s| s * 1000)
        .map_err(|_| invalid("'Date' must be after 1970"))
}

fn prefix_of_filter(filter: &Node) -> Result<String, S3Error> {
    for c in &filter.children {
        match c.name.as_str() {
            "Prefix" => {}
            "And" => {
                for a in &c.children {
                    match a.name.as_str() {
                        "Prefix" => {}
                        "Tag" => return Err(not_implemented("filters on tags")),
                        "ObjectSizeGreaterThan" | "ObjectSizeLessThan" => {
                            return Err(not_implemented("filters on object size"))
                        }
                        _ => return Err(S3Error::MalformedXML),
                    }
                }
            }
            "Tag" => return Err(not_implemented("filters on tags")),
            "ObjectSizeGreaterThan" | "ObjectSizeLessThan" => {
                return Err(not_implemented("filters on object size"))
            }
            _ => return Err(S3Error::MalformedXML),
        }
    }
    let direct = filter.child("Prefix");
    let and = filter.child("And").and_then(|a| a.child("Prefix"));
    if direct.is_some() && filter.child("And").is_some() {
        return Err(S3Error::MalformedXML);
    }
    Ok(direct.or(and).map(|p| p.text.clone()).unwrap_or_default())
}

fn parse_rule(rule: &Node, index: usize) -> Result<LifecycleRule, S3Error> {
    let mut out = LifecycleRule {
        id: String::new(),
        enabled: false,
        prefix: String::new(),
        legacy_prefix: false,
        expiration: None,
        abort_incomplete_days: None,
    };
    let mut status = None;
    let mut filter_seen = false;
    for c in &rule.children {
        match c.name.as_str() {
            "ID" => out.id = c.text.trim().to_string(),
            "Status" => status = Some(c.text.trim().to_string()),
            "Prefix" => {
                out.prefix = c.text.clone();
                out.legacy_prefix = true;
            }
            "Filter" => {
                out.prefix = prefix_of_filter(c)?;
                filter_seen = true;
            }
            "Expiration" => {
                let days = c.child("Days");
                let date = c.child("Date");
                if c.child("ExpiredObjectDeleteMarker").is_some() {
                    return Err(not_implemented("ExpiredObjectDeleteMarker (no versioning)"));
                }
                out.expiration = Some(match (days, date) {
                    (Some(d), None) => Expiration::Days(positive_days(d, "Days")?),
                    (None, Some(d)) => Expiration::Date(parse_date(&d.text)?),
                    _ => return Err(S3Error::MalformedXML),
                });
            }
            "AbortIncompleteMultipartUpload" => {
                let d = c
                    .child("DaysAfterInitiation")
                    .ok_or(S3Error::MalformedXML)?;
                out.abort_incomplete_days = Some(positive_days(d, "DaysAfterInitiation")?);
            }
            "Transition" | "Transitions" => {
                return Err(not_implemented("transitions (no storage classes)"))
            }
            "NoncurrentVersionExpiration"
            | "NoncurrentVersionTransition"
            | "NoncurrentVersionTransitions" => {
                return Err(not_implemented(
                    "noncurrent-version actions (no versioning)",
                ))
            }
            _ => return Err(S3Error::MalformedXML),
        }
    }
    if out.legacy_prefix && filter_seen {
        return Err(S3Error::MalformedXML);
    }
    out.enabled = match status.as_deref() {
        Some("Enabled") => true,
        Some("Disabled") => false,
        _ => return Err(S3Error::MalformedXML),
    };
    if out.expiration.is_none() && out.abort_incomplete_days.is_none() {
        return Err(invalid(
            "at least one action needs to be specified in a rule",
        ));
    }
    if out.id.chars().count() > RULE_ID_CHARS_MAX {
        return Err(invalid("ID length should not exceed allowed limit of 255"));
    }
    if out.id.is_empty() {
        out.id = format!("rule-{}", index + 1);
    }
    Ok(out)
}

pub fn parse_lifecycle(bytes: &[u8]) -> Result<LifecycleConfig, S3Error> {
    let root = parse_tree(bytes)?;
    expect_root(&root, "LifecycleConfiguration")?;
    if root.children.iter().any(|c| c.name != "Rule") {
        return Err(S3Error::MalformedXML);
    }
    let rules = root
        .children
        .iter()
        .enumerate()
        .map(|(i, r)| parse_rule(r, i))
        .collect::<Result<Vec<_>, _>>()?;
    if rules.is_empty() || rules.len() > RULES_MAX {
        return Err(S3Error::MalformedXML);
    }
    for (i, r) in rules.iter().enumerate() {
        if rules[..i].iter().any(|o| o.id == r.id) {
            return Err(invalid("rule ID must be unique"));
        }
    }
    Ok(LifecycleConfig { rules })
}

pub fn lifecycle_xml(config: &LifecycleConfig) -> String {
    let root = "LifecycleConfiguration";
    let mut d = Doc::new(root);
    for r in &config.rules {
        d.open("Rule");
        d.text("ID", &r.id);
        if r.legacy_prefix {
            d.text("Prefix", &r.prefix);
        } else {
            d.open("Filter");
            d.text("Prefix", &r.prefix);
            d.close("Filter");
        }
        d.text("Status", if r.enabled { "Enabled" } else { "Disabled" });
        match &r.expiration {
            Some(Expiration::Days(n)) => {
                d.open("Expiration");
                d.num("Days", u64::from(*n));
                d.close("Expiration");
            }
            Some(Expiration::Date(ms)) => {
                d.open("Expiration");
                d.time("Date", *ms);
                d.close("Expiration");
            }
            None => {}
        }
        if let Some(n) = r.abort_incomplete_days {
            d.open("AbortIncompleteMultipartUpload");
            d.num("DaysAfterInitiation", u64::from(n));
            d.close("AbortIncompleteMultipartUpload");
        }
        d.close("Rule");
    }
    d.finish(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> &'static str {
        parse_lifecycle(body.as_bytes()).unwrap_err().code()
    }

    #[test]
    fn prefixes_in_every_form() {
        let body = "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
            <Rule><ID>legacy</ID><Prefix>old/</Prefix><Status>Enabled</Status>\
              <Expiration><Days>3</Days></Expiration></Rule>\
            <Rule><ID>filter</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Disabled</Status>\
              <Expiration><Date>2030-01-01T00:00:00.000Z</Date></Expiration></Rule>\
            <Rule><Filter><And><Prefix>tmp/</Prefix></And></Filter><Status>Enabled</Status>\
              <AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation>\
              </AbortIncompleteMultipartUpload></Rule>\
            <Rule><ID>all</ID><Filter/><Status>Enabled</Status>\
              <Expiration><Days>30</Days></Expiration></Rule>\
            </LifecycleConfiguration>";
        let c = parse_lifecycle(body.as_bytes()).unwrap();
        let r = &c.rules;
        assert_eq!((r[0].prefix.as_str(), r[0].legacy_prefix), ("old/", true));
        assert_eq!(r[0].expiration, Some(Expiration::Days(3)));
        assert_eq!((r[1].prefix.as_str(), r[1].enabled), ("logs/", false));
        assert_eq!(r[1].expiration, Some(Expiration::Date(1_893_456_000_000)));
        assert_eq!((r[2].id.as_str(), r[2].prefix.as_str()), ("rule-3", "tmp/"));
        assert_eq!(r[2].abort_incomplete_days, Some(1));
        assert_eq!(r[3].prefix, "");
        // What is written parses back to the same configuration.
        assert_eq!(parse_lifecycle(lifecycle_xml(&c).as_bytes()).unwrap(), c);
    }

    #[test]
    fn refusals() {
        let rule = |inner: &str| {
            format!("<LifecycleConfiguration><Rule>{inner}</Rule></LifecycleConfiguration>")
        };
        let exp = "<Expiration><Days>1</Days></Expiration>";
        assert_eq!(code(&rule(&format!("<Prefix/>{exp}"))), "MalformedXML"); // no Status
        assert_eq!(
            code(&rule(&format!("<Status>On</Status>{exp}"))),
            "MalformedXML"
        );
        assert_eq!(
            code(&rule(
                "<Status>Enabled</Status><Expiration><Days>0</Days></Expiration>"
            )),
            "InvalidArgument"
        );
        assert_eq!(
            code(&rule(
                "<Status>Enabled</Status><Expiration><Date>2030-01-01T10:00:00Z</Date></Expiration>"
            )),
            "InvalidArgument"
        );
        assert_eq!(code(&rule("<Status>Enabled</Status>")), "InvalidArgument");
        assert_eq!(
            code(&rule(&format!(
                "<Status>Enabled</Status><Prefix>a</Prefix><Filter><Prefix>a</Prefix></Filter>{exp}"
            ))),
            "MalformedXML"
        );
        assert_eq!(
            code(&rule(&format!(
                "<Status>Enabled</Status>\
                 <Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter>{exp}"
            ))),
            "NotImplemented"
        );
        assert_eq!(
            code(&rule(
                "<Status>Enabled</Status><Transition><Days>1</Days>\
                 <StorageClass>GLACIER</StorageClass></Transition>"
            )),
            "NotImplemented"
        );
        assert_eq!(code("<LifecycleConfiguration/>"), "MalformedXML");
        assert_eq!(
            code(&format!(
                "<LifecycleConfiguration><Rule><ID>x</ID><Status>Enabled</Status>{exp}</Rule>\
                 <Rule><ID>x</ID><Status>Enabled</Status>{exp}</Rule></LifecycleConfiguration>"
            )),
            "InvalidArgument"
        );
    }
}
