//! `<Tagging>` (Put/GetBucketTagging): parse and write, with S3's limits checked.

use super::{expect_root, parse_tree, Doc};
use crate::s3::error::S3Error;

/// S3's limits on bucket tags.
pub const TAGS_MAX: usize = 50;
const TAG_KEY_CHARS_MAX: usize = 128;
const TAG_VALUE_CHARS_MAX: usize = 256;

pub fn parse_tagging(bytes: &[u8]) -> Result<Vec<(String, String)>, S3Error> {
    let root = parse_tree(bytes)?;
    expect_root(&root, "Tagging")?;
    let set = root.child("TagSet").ok_or(S3Error::MalformedXML)?;
    let mut tags: Vec<(String, String)> = Vec::new();
    for tag in set.children_named("Tag") {
        let key = tag.child("Key").ok_or(S3Error::MalformedXML)?.text.clone();
        let value = tag
            .child("Value")
            .map(|v| v.text.clone())
            .unwrap_or_default();
        if key.is_empty() || key.chars().count() > TAG_KEY_CHARS_MAX {
            return Err(S3Error::InvalidTag(
                "tag keys are 1 to 128 characters".into(),
            ));
        }
        if value.chars().count() > TAG_VALUE_CHARS_MAX {
            return Err(S3Error::InvalidTag(
                "tag values are at most 256 characters".into(),
            ));
        }
        // Counted before the duplicate check, which is quadratic in the count.
        if tags.len() == TAGS_MAX {
            return Err(S3Error::InvalidTag("a bucket has at most 50 tags".into()));
        }
        if tags.iter().any(|(k, _)| *k == key) {
            return Err(S3Error::InvalidTag(
                "cannot provide multiple tags with the same key".into(),
            ));
        }
        tags.push((key, value));
    }
    Ok(tags)
}

pub fn tagging_xml(tags: &[(String, String)]) -> String {
    let root = "Tagging";
    let mut d = Doc::new(root);
    d.open("TagSet");
    for (k, v) in tags {
        d.open("Tag");
        d.text("Key", k);
        d.text("Value", v);
        d.close("Tag");
    }
    d.close("TagSet");
    d.finish(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let body = b"<Tagging><TagSet><Tag><Key>a</Key><Value>1 &amp; 2</Value></Tag>\
            <Tag><Key>b</Key><Value></Value></Tag></TagSet></Tagging>";
        let tags = parse_tagging(body).unwrap();
        assert_eq!(
            tags,
            vec![("a".into(), "1 & 2".into()), ("b".into(), "".into())]
        );
        assert_eq!(parse_tagging(tagging_xml(&tags).as_bytes()).unwrap(), tags);
        let dup = b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag>\
            <Tag><Key>a</Key><Value>2</Value></Tag></TagSet></Tagging>";
        assert_eq!(parse_tagging(dup).unwrap_err().code(), "InvalidTag");
        assert_eq!(
            parse_tagging(b"<Tagging/>").unwrap_err().code(),
            "MalformedXML"
        );
        assert_eq!(
            parse_tagging(b"<Other/>").unwrap_err().code(),
            "MalformedXML"
        );
    }
}
