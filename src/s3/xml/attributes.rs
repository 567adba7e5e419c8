//! `<GetObjectAttributesResponse>` (GetObjectAttributes), element order as AWS sends it.

use super::Doc;

/// One part in `ObjectParts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributePart {
    pub part_number: u32,
    pub size: u64,
    /// `(element name, base64)`, e.g. `("ChecksumSHA256", "...")`.
    pub checksums: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectParts {
    pub parts_count: u32,
    pub part_number_marker: u32,
    pub next_part_number_marker: u32,
    pub max_parts: u32,
    pub is_truncated: bool,
    pub parts: Vec<AttributePart>,
}

/// What was asked (`x-amz-object-attributes`) and is known; `None` leaves it out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectAttributes {
    /// Without quotes, as AWS writes it here.
    pub etag: Option<String>,
    /// `(element name, base64)` and the checksum type (`COMPOSITE` / `FULL_OBJECT`).
    pub checksum: Option<(String, String, &'static str)>,
    pub object_parts: Option<ObjectParts>,
    pub storage_class: Option<String>,
    pub object_size: Option<u64>,
}

pub fn object_attributes_xml(a: &ObjectAttributes) -> String {
    let root = "GetObjectAttributesResponse";
    let mut d = Doc::new(root);
    d.opt("ETag", a.etag.as_deref());
    if let Some((name, value, kind)) = &a.checksum {
        d.open("Checksum");
        d.checksums(&[(name.clone(), value.clone())]);
        d.text("ChecksumType", kind);
        d.close("Checksum");
    }
    if let Some(p) = &a.object_parts {
        d.open("ObjectParts");
        d.num("PartsCount", u64::from(p.parts_count));
        d.num("PartNumberMarker", u64::from(p.part_number_marker));
        d.num("NextPartNumberMarker", u64::from(p.next_part_number_marker));
        d.num("MaxParts", u64::from(p.max_parts));
        d.bool("IsTruncated", p.is_truncated);
        for part in &p.parts {
            d.open("Part");
            d.num("PartNumber", u64::from(part.part_number));
            d.num("Size", part.size);
            d.checksums(&part.checksums);
            d.close("Part");
        }
        d.close("ObjectParts");
    }
    d.opt("StorageClass", a.storage_class.as_deref());
    if let Some(n) = a.object_size {
        d.num("ObjectSize", n);
    }
    d.finish(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_was_asked() {
        let a = ObjectAttributes {
            etag: Some("abc-2".into()),
            object_size: Some(7),
            ..Default::default()
        };
        let x = object_attributes_xml(&a);
        assert!(
            x.contains("<ETag>abc-2</ETag><ObjectSize>7</ObjectSize>"),
            "{x}"
        );
        assert!(!x.contains("Checksum") && !x.contains("StorageClass"));
        let a = ObjectAttributes {
            checksum: Some(("ChecksumCRC32".into(), "AAAAAA==-2".into(), "COMPOSITE")),
            object_parts: Some(ObjectParts {
                parts_count: 2,
                part_number_marker: 0,
                next_part_number_marker: 1,
                max_parts: 1,
                is_truncated: true,
                parts: vec![AttributePart {
                    part_number: 1,
                    size: 5,
                    checksums: vec![("ChecksumCRC32".into(), "AQIDBA==".into())],
                }],
            }),
            storage_class: Some("STANDARD".into()),
            ..Default::default()
        };
        let x = object_attributes_xml(&a);
        assert!(x.contains(
            "<Checksum><ChecksumCRC32>AAAAAA==-2</ChecksumCRC32><ChecksumType>COMPOSITE\
             </ChecksumType></Checksum>"
        ));
        assert!(x.contains(
            "<Part><PartNumber>1</PartNumber><Size>5</Size><ChecksumCRC32>AQIDBA==\
             </ChecksumCRC32></Part>"
        ));
        assert!(x.contains("<IsTruncated>true</IsTruncated>"));
    }
}
