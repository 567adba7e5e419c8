//! The S3 operation a request asks for, worked out once from its head: the method, whether
//! it names a bucket and a key, and its query's subresources. The router dispatches on it,
//! the access checks ask it which permission it needs (and whether an anonymous caller may
//! have it), and the request metrics are labelled with its name. Pure: no I/O, no state.

use crate::http::RequestHead;

/// What a request needs of the caller on a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    Owner,
}

/// An S3 operation, named as S3 names it, or why a request is none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S3Op {
    ListBuckets,
    PreflightCors,
    // Buckets.
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    ListMultipartUploads,
    GetBucketLocation,
    GetBucketVersioning,
    PutBucketVersioning,
    GetBucketAcl,
    PutBucketAcl,
    GetBucketCors,
    PutBucketCors,
    DeleteBucketCors,
    GetBucketLifecycleConfiguration,
    PutBucketLifecycleConfiguration,
    DeleteBucketLifecycle,
    GetBucketTagging,
    PutBucketTagging,
    DeleteBucketTagging,
    GetBucketWebsite,
    PutBucketWebsite,
    DeleteBucketWebsite,
    DeleteObjects,
    /// A POST on a bucket: a browser's form upload when `form` (multipart/form-data),
    /// otherwise a malformed one.
    PostObject {
        form: bool,
    },
    // Objects.
    GetObject,
    HeadObject,
    PutObject,
    CopyObject,
    DeleteObject,
    GetObjectAcl,
    PutObjectAcl,
    GetObjectAttributes,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    /// A POST on an object with neither `?uploads` nor `?uploadId`.
    ObjectPostWithoutUpload,
    /// A subresource Granary does not implement (NotImplemented), on a bucket or an object.
    Unsupported {
        sub: &'static str,
        object: bool,
    },
    /// A method the resource does not take (405). `sub`: the bucket subresource whose
    /// handling looks the bucket up (and, for `website` and `cors`, checks ownership)
    /// before refusing the method.
    MethodNotAllowed {
        sub: Option<&'static str>,
    },
}

/// Query parameters that make a request something else than a plain read, listing, or
/// bucket creation / deletion: a PUT or DELETE on a bucket with any of them that names no
/// operation is refused.
const SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "attributes",
    "cors",
    "delete",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versioning",
    "versions",
    "website",
];

/// Subresources Granary does not implement yet: answered with NotImplemented, never
/// mistaken for a plain GET or PUT (those it implements on buckets are matched first).
const UNSUPPORTED_SUBRESOURCES: &[&str] = &[
    "analytics",
    "accelerate",
    "cors",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "logging",
    "metadataConfiguration",
    "metadataTable",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "retention",
    "legal-hold",
    "renameObject",
    "restore",
    "select",
    "session",
    "tagging",
    "torrent",
    "website",
];

/// A POST with a form body: S3's POST Object (browsers do not sign these requests).
pub fn is_form_upload(head: &RequestHead) -> bool {
    head.header("content-type").is_some_and(|t| {
        t.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
    })
}

impl S3Op {
    /// The operation of a request whose address names a bucket (`bucket`) and a key
    /// (`key`), or neither.
    pub fn of(head: &RequestHead, bucket: bool, key: bool) -> S3Op {
        if head.method == "OPTIONS" {
            return S3Op::PreflightCors;
        }
        match (bucket, key) {
            (false, _) if head.method == "GET" => S3Op::ListBuckets,
            (false, _) => S3Op::MethodNotAllowed { sub: None },
            (true, false) => bucket_op(head),
            (true, true) => object_op(head),
        }
    }

    /// The permission the operation needs on its bucket (`None`: none, or another check:
    /// CreateBucket needs a key that may create buckets, a form upload its policy).
    pub fn need(self) -> Option<Need> {
        use S3Op::*;
        Some(match self {
            HeadBucket | ListObjects | ListObjectsV2 | ListObjectVersions
            | ListMultipartUploads | GetBucketLocation | GetBucketVersioning | GetObject
            | HeadObject | GetObjectAcl | GetObjectAttributes | ListParts => Need::Read,
            DeleteObjects
            | PutObject
            | CopyObject
            | DeleteObject
            | CreateMultipartUpload
            | UploadPart
            | UploadPartCopy
            | CompleteMultipartUpload
            | AbortMultipartUpload
            | ObjectPostWithoutUpload => Need::Write,
            DeleteBucket
            | PutBucketVersioning
            | GetBucketAcl
            | PutBucketAcl
            | GetBucketCors
            | PutBucketCors
            | DeleteBucketCors
            | GetBucketLifecycleConfiguration
            | PutBucketLifecycleConfiguration
            | DeleteBucketLifecycle
            | GetBucketTagging
            | PutBucketTagging
            | DeleteBucketTagging
            | GetBucketWebsite
            | PutBucketWebsite
            | DeleteBucketWebsite
            | PutObjectAcl => Need::Owner,
            MethodNotAllowed {
                sub: Some("website" | "cors"),
            } => Need::Owner,
            ListBuckets
            | PreflightCors
            | CreateBucket
            | PostObject { .. }
            | Unsupported { .. }
            | MethodNotAllowed { .. } => return None,
        })
    }

    /// Whether an unsigned request may do this on a `public-read` bucket: read an object
    /// or list the bucket.
    pub fn public_read(self) -> bool {
        use S3Op::*;
        matches!(
            self,
            GetObject | HeadObject | HeadBucket | ListObjects | ListObjectsV2
        )
    }

    /// The label of the request metrics: S3's name of the operation, `NotImplemented` for an
    /// unsupported subresource, `Other` for anything else.
    pub fn label(self) -> &'static str {
        use S3Op::*;
        match self {
            ListBuckets => "ListBuckets",
            PreflightCors => "PreflightCors",
            CreateBucket => "CreateBucket",
            DeleteBucket => "DeleteBucket",
            HeadBucket => "HeadBucket",
            ListObjects => "ListObjects",
            ListObjectsV2 => "ListObjectsV2",
            ListObjectVersions => "ListObjectVersions",
            ListMultipartUploads => "ListMultipartUploads",
            GetBucketLocation => "GetBucketLocation",
            GetBucketVersioning => "GetBucketVersioning",
            PutBucketVersioning => "PutBucketVersioning",
            GetBucketAcl => "GetBucketAcl",
            PutBucketAcl => "PutBucketAcl",
            GetBucketCors => "GetBucketCors",
            PutBucketCors => "PutBucketCors",
            DeleteBucketCors => "DeleteBucketCors",
            GetBucketLifecycleConfiguration => "GetBucketLifecycleConfiguration",
            PutBucketLifecycleConfiguration => "PutBucketLifecycleConfiguration",
            DeleteBucketLifecycle => "DeleteBucketLifecycle",
            GetBucketTagging => "GetBucketTagging",
            PutBucketTagging => "PutBucketTagging",
            DeleteBucketTagging => "DeleteBucketTagging",
            GetBucketWebsite => "GetBucketWebsite",
            PutBucketWebsite => "PutBucketWebsite",
            DeleteBucketWebsite => "DeleteBucketWebsite",
            DeleteObjects => "DeleteObjects",
            PostObject { .. } => "PostObject",
            GetObject => "GetObject",
            HeadObject => "HeadObject",
            PutObject => "PutObject",
            CopyObject => "CopyObject",
            DeleteObject => "DeleteObject",
            GetObjectAcl => "GetObjectAcl",
            PutObjectAcl => "PutObjectAcl",
            GetObjectAttributes => "GetObjectAttributes",
            CreateMultipartUpload => "CreateMultipartUpload",
            UploadPart => "UploadPart",
            UploadPartCopy => "UploadPartCopy",
            CompleteMultipartUpload => "CompleteMultipartUpload",
            AbortMultipartUpload => "AbortMultipartUpload",
            ListParts => "ListParts",
            Unsupported { .. } => "NotImplemented",
            ObjectPostWithoutUpload | MethodNotAllowed { .. } => "Other",
        }
    }
}

/// The first unsupported subresource the query names.
fn unsupported(head: &RequestHead) -> Option<&'static str> {
    UNSUPPORTED_SUBRESOURCES
        .iter()
        .copied()
        .find(|s| head.has_query(s))
}

/// A bucket subresource taken by GET, PUT and DELETE.
fn by_method(head: &RequestHead, sub: &'static str, ops: [S3Op; 3]) -> S3Op {
    match head.method.as_str() {
        "GET" => ops[0],
        "PUT" => ops[1],
        "DELETE" => ops[2],
        _ => S3Op::MethodNotAllowed { sub: Some(sub) },
    }
}

/// On a bucket, first match first: a form upload, the subresources Granary implements
/// (website, cors, acl, lifecycle, tagging, versioning), those it does not, the method.
fn bucket_op(head: &RequestHead) -> S3Op {
    use S3Op::*;
    let method = head.method.as_str();
    let has = |s: &str| head.has_query(s);
    if method == "POST" && is_form_upload(head) {
        return PostObject { form: true };
    }
    let families: [(&'static str, [S3Op; 3]); 4] = [
        (
            "website",
            [GetBucketWebsite, PutBucketWebsite, DeleteBucketWebsite],
        ),
        ("cors", [GetBucketCors, PutBucketCors, DeleteBucketCors]),
        (
            "lifecycle",
            [
                GetBucketLifecycleConfiguration,
                PutBucketLifecycleConfiguration,
                DeleteBucketLifecycle,
            ],
        ),
        (
            "tagging",
            [GetBucketTagging, PutBucketTagging, DeleteBucketTagging],
        ),
    ];
    for (sub, ops) in &families[..2] {
        if has(sub) {
            return by_method(head, sub, *ops);
        }
    }
    if has("acl") {
        return match method {
            "GET" => GetBucketAcl,
            "PUT" => PutBucketAcl,
            _ => MethodNotAllowed { sub: Some("acl") },
        };
    }
    for (sub, ops) in &families[2..] {
        if has(sub) {
            return by_method(head, sub, *ops);
        }
    }
    if method == "PUT" && has("versioning") {
        return PutBucketVersioning;
    }
    if let Some(sub) = unsupported(head) {
        return Unsupported { sub, object: false };
    }
    bucket_method(head)
}

/// A bucket request that names no subresource Granary handles, by its method.
fn bucket_method(head: &RequestHead) -> S3Op {
    use S3Op::*;
    let has = |s: &str| head.has_query(s);
    match head.method.as_str() {
        // A subresource with a method it does not take is not a bucket creation or
        // deletion.
        "PUT" | "DELETE" if SUBRESOURCES.iter().any(|s| has(s)) => MethodNotAllowed { sub: None },
        "PUT" => CreateBucket,
        "DELETE" => DeleteBucket,
        "HEAD" => HeadBucket,
        "GET" if has("location") => GetBucketLocation,
        "GET" if has("versioning") => GetBucketVersioning,
        "GET" if has("uploads") => ListMultipartUploads,
        "GET" if has("versions") => ListObjectVersions,
        "GET" if head.query_param("list-type") == Some("2") => ListObjectsV2,
        "GET" => ListObjects,
        "POST" if has("delete") => DeleteObjects,
        "POST" => PostObject { form: false },
        _ => MethodNotAllowed { sub: None },
    }
}

/// On an object: the ACL and attributes subresources, those Granary does not implement,
/// then the method, an upload id and a copy source.
fn object_op(head: &RequestHead) -> S3Op {
    use S3Op::*;
    let method = head.method.as_str();
    let has = |s: &str| head.has_query(s);
    match method {
        "GET" if has("acl") => return GetObjectAcl,
        "PUT" if has("acl") => return PutObjectAcl,
        "GET" if has("attributes") => return GetObjectAttributes,
        // Never mistaken for a plain write or delete of the object.
        _ if has("acl") || has("attributes") => return MethodNotAllowed { sub: None },
        _ => {}
    }
    if let Some(sub) = unsupported(head) {
        return Unsupported { sub, object: true };
    }
    let upload = head.query_param("uploadId").is_some();
    let copy = head.header("x-amz-copy-source").is_some();
    match method {
        "GET" if upload => ListParts,
        "GET" => GetObject,
        "HEAD" => HeadObject,
        "PUT" if copy && upload => UploadPartCopy,
        "PUT" if copy => CopyObject,
        "PUT" if upload => UploadPart,
        "PUT" => PutObject,
        "DELETE" if upload => AbortMultipartUpload,
        "DELETE" => DeleteObject,
        "POST" if has("uploads") => CreateMultipartUpload,
        "POST" if upload => CompleteMultipartUpload,
        "POST" => ObjectPostWithoutUpload,
        _ => MethodNotAllowed { sub: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, query: &str, headers: &[(&str, &str)]) -> RequestHead {
        let mut text = format!("{method} /b/k?{query} HTTP/1.1\r\nHost: x\r\n");
        for (n, v) in headers {
            text.push_str(&format!("{n}: {v}\r\n"));
        }
        text.push_str("\r\n");
        crate::http::parse_head(text.as_bytes()).unwrap().unwrap().0
    }

    fn op(method: &str, query: &str, bucket: bool, key: bool) -> S3Op {
        S3Op::of(&head(method, query, &[]), bucket, key)
    }

    #[test]
    fn operations_are_named_as_s3_names_them() {
        let cases = [
            ("GET", "", false, false, "ListBuckets"),
            ("GET", "list-type=2&prefix=a", true, false, "ListObjectsV2"),
            ("GET", "", true, false, "ListObjects"),
            ("GET", "uploads", true, false, "ListMultipartUploads"),
            ("PUT", "cors", true, false, "PutBucketCors"),
            ("DELETE", "lifecycle", true, false, "DeleteBucketLifecycle"),
            ("POST", "delete", true, false, "DeleteObjects"),
            ("PUT", "", true, false, "CreateBucket"),
            ("GET", "", true, true, "GetObject"),
            ("GET", "uploadId=1", true, true, "ListParts"),
            ("PUT", "partNumber=1&uploadId=1", true, true, "UploadPart"),
            ("POST", "uploads", true, true, "CreateMultipartUpload"),
            ("POST", "uploadId=1", true, true, "CompleteMultipartUpload"),
            ("DELETE", "uploadId=1", true, true, "AbortMultipartUpload"),
            ("GET", "attributes", true, true, "GetObjectAttributes"),
            ("OPTIONS", "", true, true, "PreflightCors"),
            ("PATCH", "", true, true, "Other"),
            ("GET", "policy", true, false, "NotImplemented"),
            ("GET", "versioning", true, false, "GetBucketVersioning"),
            ("PUT", "versioning", true, false, "PutBucketVersioning"),
            ("GET", "website", true, false, "GetBucketWebsite"),
            ("GET", "acl", true, true, "GetObjectAcl"),
        ];
        for (method, query, bucket, key, want) in cases {
            assert_eq!(
                op(method, query, bucket, key).label(),
                want,
                "{method} ?{query}"
            );
        }
        let copy = [("x-amz-copy-source", "/a/b")];
        assert_eq!(
            S3Op::of(&head("PUT", "", &copy), true, true),
            S3Op::CopyObject
        );
        assert_eq!(
            S3Op::of(&head("PUT", "partNumber=2&uploadId=1", &copy), true, true),
            S3Op::UploadPartCopy
        );
    }

    #[test]
    fn subresources_are_matched_in_the_routers_order() {
        // website before cors before acl before lifecycle before tagging.
        assert_eq!(
            op("GET", "cors&website", true, false),
            S3Op::GetBucketWebsite
        );
        assert_eq!(op("GET", "tagging&acl", true, false), S3Op::GetBucketAcl);
        assert_eq!(
            op("POST", "website", true, false),
            S3Op::MethodNotAllowed {
                sub: Some("website")
            }
        );
        assert_eq!(
            op("DELETE", "acl", true, false),
            S3Op::MethodNotAllowed { sub: Some("acl") }
        );
        // Unsupported ones, on buckets and objects.
        assert_eq!(
            op("PUT", "encryption", true, false),
            S3Op::Unsupported {
                sub: "encryption",
                object: false
            }
        );
        assert_eq!(
            op("GET", "tagging", true, true),
            S3Op::Unsupported {
                sub: "tagging",
                object: true
            }
        );
        // A known subresource on a PUT or DELETE that names no operation.
        for (method, query) in [
            ("DELETE", "versioning"),
            ("PUT", "location"),
            ("PUT", "uploads"),
        ] {
            assert_eq!(
                op(method, query, true, false),
                S3Op::MethodNotAllowed { sub: None },
                "{method} ?{query}"
            );
        }
        assert_eq!(
            op("DELETE", "acl", true, true),
            S3Op::MethodNotAllowed { sub: None }
        );
        assert_eq!(op("POST", "", true, true), S3Op::ObjectPostWithoutUpload);
        assert_eq!(op("HEAD", "uploadId=1", true, true), S3Op::HeadObject);
    }

    #[test]
    fn a_form_post_is_a_form_upload_whatever_its_query() {
        let form = [("content-type", "multipart/form-data; boundary=x")];
        let head = head("POST", "acl", &form);
        assert_eq!(
            S3Op::of(&head, true, false),
            S3Op::PostObject { form: true }
        );
        assert_eq!(
            op("POST", "", true, false),
            S3Op::PostObject { form: false }
        );
    }

    #[test]
    fn each_operation_needs_its_permission() {
        assert_eq!(op("GET", "", true, true).need(), Some(Need::Read));
        assert_eq!(op("HEAD", "", true, false).need(), Some(Need::Read));
        assert_eq!(op("PUT", "", true, true).need(), Some(Need::Write));
        assert_eq!(op("POST", "delete", true, false).need(), Some(Need::Write));
        assert_eq!(op("DELETE", "", true, false).need(), Some(Need::Owner));
        assert_eq!(op("PUT", "acl", true, true).need(), Some(Need::Owner));
        assert_eq!(op("GET", "acl", true, true).need(), Some(Need::Read));
        assert_eq!(op("POST", "cors", true, false).need(), Some(Need::Owner));
        assert_eq!(op("POST", "acl", true, false).need(), None);
        assert_eq!(op("PUT", "", true, false).need(), None);
        assert_eq!(op("GET", "policy", true, false).need(), None);
    }

    #[test]
    fn anonymous_callers_may_only_read() {
        let public: Vec<&str> = [
            ("GET", "", true),
            ("HEAD", "", true),
            ("GET", "", false),
            ("GET", "list-type=2", false),
            ("HEAD", "", false),
            ("GET", "acl", true),
            ("GET", "uploadId=1", true),
            ("GET", "versions", false),
            ("GET", "location", false),
            ("GET", "session", true),
            ("PUT", "", true),
            ("DELETE", "", true),
        ]
        .into_iter()
        .filter(|(method, query, key)| op(method, query, true, *key).public_read())
        .map(|(method, query, key)| if key { method } else { query })
        .collect();
        assert_eq!(public, ["GET", "HEAD", "", "list-type=2", ""]);
    }
}
