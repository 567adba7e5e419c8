//! GetObjectAttributes (`GET ?attributes`, `x-amz-object-attributes: ETag,Checksum,
//! ObjectParts,StorageClass,ObjectSize`), with `x-amz-max-parts` and
//! `x-amz-part-number-marker` paging the parts of a multipart object.

use std::rc::Rc;

use super::objects::{check_conditions, fetch_object, last_modified};
use crate::api::conn::Response;
use crate::api::Gateway;
use crate::http::RequestHead;
use crate::meta::types::BucketRow;
use crate::s3::checksum;
use crate::s3::error::S3Error;
use crate::s3::xml::attributes::{
    object_attributes_xml, AttributePart, ObjectAttributes, ObjectParts,
};

const ATTRIBUTES: &[&str] = &[
    "ETag",
    "Checksum",
    "ObjectParts",
    "StorageClass",
    "ObjectSize",
];

fn number(head: &RequestHead, name: &str, default: u32) -> Result<u32, S3Error> {
    match head.header(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| S3Error::InvalidArgument(format!("{name} must be an integer"))),
    }
}

pub async fn get_object_attributes(
    shard: &Rc<Gateway>,
    head: &RequestHead,
    bucket: &BucketRow,
    key: &str,
) -> Result<Response, S3Error> {
    let mut wanted: Vec<&str> = Vec::new();
    for value in head.headers_all("x-amz-object-attributes") {
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let known = ATTRIBUTES
                .iter()
                .find(|a| a.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    S3Error::InvalidArgument(format!("invalid attribute name {name:?}"))
                })?;
            wanted.push(known);
        }
    }
    if wanted.is_empty() {
        return Err(S3Error::InvalidArgument(
            "x-amz-object-attributes must name at least one attribute".into(),
        ));
    }
    let max_parts = number(head, "x-amz-max-parts", 1000)?.min(1000);
    let marker = number(head, "x-amz-part-number-marker", 0)?;
    let row = fetch_object(shard, bucket, key).await?;
    check_conditions(head, &row)?;
    let asked = |a: &str| wanted.contains(&a);
    let mut out = ObjectAttributes::default();
    if asked("ETag") {
        out.etag = Some(row.etag.trim_matches('"').to_string());
    }
    if asked("Checksum") {
        out.checksum = row.checksum.as_ref().map(|c| {
            (
                checksum::xml_element(c.algorithm).to_string(),
                c.base64.clone(),
                if c.composite {
                    "COMPOSITE"
                } else {
                    "FULL_OBJECT"
                },
            )
        });
    }
    if asked("ObjectParts") && !row.parts.is_empty() {
        let after: Vec<_> = row.parts.iter().filter(|p| p.number > marker).collect();
        let page: Vec<_> = after.iter().take(max_parts as usize).collect();
        out.object_parts = Some(ObjectParts {
            parts_count: row.parts.len() as u32,
            part_number_marker: marker,
            next_part_number_marker: page.last().map_or(marker, |p| p.number),
            max_parts,
            is_truncated: after.len() > page.len(),
            parts: page
                .iter()
                .map(|p| AttributePart {
                    part_number: p.number,
                    size: p.bytes,
                    checksums: p
                        .checksum
                        .iter()
                        .map(|c| {
                            (
                                checksum::xml_element(c.algorithm).to_string(),
                                c.base64.clone(),
                            )
                        })
                        .collect(),
                })
                .collect(),
        });
    }
    if asked("StorageClass") {
        out.storage_class = Some("STANDARD".into());
    }
    if asked("ObjectSize") {
        out.object_size = Some(row.bytes);
    }
    Ok(Response::xml(200, object_attributes_xml(&out))
        .header("Last-Modified", last_modified(row.last_modified_ms)))
}
