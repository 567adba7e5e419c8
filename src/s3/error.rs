//! Every S3 error Granary answers with, in one place: code, HTTP status and message.
//! The XML body is written by `s3::xml::error_xml` from these three.
//!
//! Codes, statuses and messages follow AWS's "Error responses" table so that clients
//! (which branch on the code) behave as against AWS.

use crate::meta::types::ChecksumAlgorithm;
use crate::s3::checksum::algorithm_name;
use crate::s3::sigv4::AuthError;

/// An S3 error. Variants carry what their message needs; `String`s are the message.
/// Serialisable: a data operation's refusal carries it back from the shard (later: the
/// node) that refused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum S3Error {
    AccessDenied(String),
    /// A CORS preflight that no rule allows (or a bucket without CORS rules).
    AccessForbidden(String),
    AuthorizationHeaderMalformed(String),
    AuthorizationQueryParametersError(String),
    /// `None`: `Content-MD5` did not match; `Some`: the `x-amz-checksum-*` did not.
    BadDigest(Option<ChecksumAlgorithm>),
    BadRequest(String),
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    ConditionalRequestConflict,
    EntityTooLarge,
    EntityTooSmall,
    IncompleteBody,
    IncorrectNumberOfFilesInPostRequest,
    /// The detail is for logs; the client sees AWS's generic message.
    InternalError(String),
    InvalidAccessKeyId,
    InvalidArgument(String),
    InvalidBucketName,
    InvalidBucketState(String),
    InvalidChunkSizeError,
    InvalidDigest,
    InvalidLocationConstraint,
    InvalidObjectState,
    InvalidPart,
    InvalidPartNumber,
    InvalidPartOrder,
    InvalidPolicyDocument(String),
    InvalidRange,
    InvalidRequest(String),
    InvalidStorageClass,
    InvalidTag(String),
    InvalidURI,
    KeyTooLongError,
    MalformedPOSTRequest(String),
    MalformedXML,
    MaxMessageLengthExceeded,
    /// The fields of a POST form before its file are too large.
    MaxPostPreDataLengthExceededError,
    MetadataTooLarge,
    MethodNotAllowed,
    MissingContentLength,
    MissingRequestBodyError,
    MissingSecurityHeader(String),
    NoSuchBucket,
    NoSuchBucketPolicy,
    NoSuchCORSConfiguration,
    NoSuchKey,
    NoSuchLifecycleConfiguration,
    NoSuchTagSet,
    NoSuchUpload,
    NoSuchVersion,
    NoSuchWebsiteConfiguration,
    NotImplemented(String),
    /// 304: sent without a body.
    NotModified,
    OperationAborted,
    PreconditionFailed,
    RequestHeaderSectionTooLarge,
    RequestTimeTooSkewed,
    RequestTimeout,
    ServiceUnavailable,
    SignatureDoesNotMatch,
    SlowDown,
    TooManyBuckets,
    UnexpectedContent,
    XAmzContentSHA256Mismatch,
}

impl S3Error {
    /// The `<Code>` of the error body.
    pub fn code(&self) -> &'static str {
        use S3Error::*;
        match self {
            AccessDenied(_) => "AccessDenied",
            AccessForbidden(_) => "AccessForbidden",
            AuthorizationHeaderMalformed(_) => "AuthorizationHeaderMalformed",
            AuthorizationQueryParametersError(_) => "AuthorizationQueryParametersError",
            BadDigest(_) => "BadDigest",
            BadRequest(_) => "BadRequest",
            BucketAlreadyExists => "BucketAlreadyExists",
            BucketAlreadyOwnedByYou => "BucketAlreadyOwnedByYou",
            BucketNotEmpty => "BucketNotEmpty",
            ConditionalRequestConflict => "ConditionalRequestConflict",
            EntityTooLarge => "EntityTooLarge",
            EntityTooSmall => "EntityTooSmall",
            IncompleteBody => "IncompleteBody",
            IncorrectNumberOfFilesInPostRequest => "IncorrectNumberOfFilesInPostRequest",
            InternalError(_) => "InternalError",
            InvalidAccessKeyId => "InvalidAccessKeyId",
            InvalidArgument(_) => "InvalidArgument",
            InvalidBucketName => "InvalidBucketName",
            InvalidBucketState(_) => "InvalidBucketState",
            InvalidChunkSizeError => "InvalidChunkSizeError",
            InvalidDigest => "InvalidDigest",
            InvalidLocationConstraint => "InvalidLocationConstraint",
            InvalidObjectState => "InvalidObjectState",
            InvalidPart => "InvalidPart",
            InvalidPartNumber => "InvalidPartNumber",
            InvalidPartOrder => "InvalidPartOrder",
            InvalidPolicyDocument(_) => "InvalidPolicyDocument",
            InvalidRange => "InvalidRange",
            InvalidRequest(_) => "InvalidRequest",
            InvalidStorageClass => "InvalidStorageClass",
            InvalidTag(_) => "InvalidTag",
            InvalidURI => "InvalidURI",
            KeyTooLongError => "KeyTooLongError",
            MalformedPOSTRequest(_) => "MalformedPOSTRequest",
            MalformedXML => "MalformedXML",
            MaxMessageLengthExceeded => "MaxMessageLengthExceeded",
            MaxPostPreDataLengthExceededError => "MaxPostPreDataLengthExceededError",
            MetadataTooLarge => "MetadataTooLarge",
            MethodNotAllowed => "MethodNotAllowed",
            MissingContentLength => "MissingContentLength",
            MissingRequestBodyError => "MissingRequestBodyError",
            MissingSecurityHeader(_) => "MissingSecurityHeader",
            NoSuchBucket => "NoSuchBucket",
            NoSuchBucketPolicy => "NoSuchBucketPolicy",
            NoSuchCORSConfiguration => "NoSuchCORSConfiguration",
            NoSuchKey => "NoSuchKey",
            NoSuchLifecycleConfiguration => "NoSuchLifecycleConfiguration",
            NoSuchTagSet => "NoSuchTagSet",
            NoSuchUpload => "NoSuchUpload",
            NoSuchVersion => "NoSuchVersion",
            NoSuchWebsiteConfiguration => "NoSuchWebsiteConfiguration",
            NotImplemented(_) => "NotImplemented",
            NotModified => "NotModified",
            OperationAborted => "OperationAborted",
            PreconditionFailed => "PreconditionFailed",
            RequestHeaderSectionTooLarge => "RequestHeaderSectionTooLarge",
            RequestTimeTooSkewed => "RequestTimeTooSkewed",
            RequestTimeout => "RequestTimeout",
            ServiceUnavailable => "ServiceUnavailable",
            SignatureDoesNotMatch => "SignatureDoesNotMatch",
            SlowDown => "SlowDown",
            TooManyBuckets => "TooManyBuckets",
            UnexpectedContent => "UnexpectedContent",
            XAmzContentSHA256Mismatch => "XAmzContentSHA256Mismatch",
        }
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        use S3Error::*;
        match self {
            NotModified => 304,
            AuthorizationHeaderMalformed(_)
            | AuthorizationQueryParametersError(_)
            | BadDigest(_)
            | BadRequest(_)
            | EntityTooLarge
            | EntityTooSmall
            | IncompleteBody
            | IncorrectNumberOfFilesInPostRequest
            | InvalidArgument(_)
            | InvalidBucketName
            | InvalidDigest
            | InvalidLocationConstraint
            | InvalidPart
            | InvalidPartOrder
            | InvalidPolicyDocument(_)
            | InvalidRequest(_)
            | InvalidStorageClass
            | InvalidTag(_)
            | InvalidURI
            | KeyTooLongError
            | MalformedPOSTRequest(_)
            | MalformedXML
            | MaxMessageLengthExceeded
            | MaxPostPreDataLengthExceededError
            | MetadataTooLarge
            | MissingRequestBodyError
            | MissingSecurityHeader(_)
            | RequestHeaderSectionTooLarge
            | RequestTimeout
            | TooManyBuckets
            | UnexpectedContent
            | XAmzContentSHA256Mismatch => 400,
            AccessDenied(_)
            | AccessForbidden(_)
            | InvalidAccessKeyId
            | InvalidChunkSizeError
            | InvalidObjectState
            | RequestTimeTooSkewed
            | SignatureDoesNotMatch => 403,
            NoSuchBucket
            | NoSuchBucketPolicy
            | NoSuchCORSConfiguration
            | NoSuchKey
            | NoSuchLifecycleConfiguration
            | NoSuchTagSet
            | NoSuchUpload
            | NoSuchVersion
            | NoSuchWebsiteConfiguration => 404,
            MethodNotAllowed => 405,
            BucketAlreadyExists
            | BucketAlreadyOwnedByYou
            | BucketNotEmpty
            | ConditionalRequestConflict
            | InvalidBucketState(_)
            | OperationAborted => 409,
            MissingContentLength => 411,
            PreconditionFailed => 412,
            InvalidPartNumber | InvalidRange => 416,
            InternalError(_) => 500,
            NotImplemented(_) => 501,
            ServiceUnavailable | SlowDown => 503,
        }
    }

    /// The `<Message>` of the error body.
    pub fn message(&self) -> String {
        use S3Error::*;
        let s = match self {
            AccessDenied(m)
            | AccessForbidden(m)
            | AuthorizationHeaderMalformed(m)
            | AuthorizationQueryParametersError(m)
            | BadRequest(m)
            | InvalidArgument(m)
            | InvalidBucketState(m)
            | InvalidPolicyDocument(m)
            | InvalidRequest(m)
            | InvalidTag(m)
            | MalformedPOSTRequest(m)
            | NotImplemented(m) => return m.clone(),
            MissingSecurityHeader(h) => {
                return format!("Your request was missing a required header: {h}")
            }
            BadDigest(None) => "The Content-MD5 you specified did not match what we received.",
            BadDigest(Some(a)) => {
                return format!(
                    "The {} you specified did not match the calculated checksum.",
                    algorithm_name(*a)
                )
            }
            BucketAlreadyExists => {
                "The requested bucket name is not available. The bucket \
                namespace is shared by all users of the system. Please select a different name \
                and try again."
            }
            BucketAlreadyOwnedByYou => {
                "Your previous request to create the named bucket \
                succeeded and you already own it."
            }
            BucketNotEmpty => "The bucket you tried to delete is not empty",
            ConditionalRequestConflict => {
                "A conflicting operation occurred. If using PutObject \
                you can retry the request. If using multipart upload you should initiate another \
                CreateMultipartUpload request and re-upload each part."
            }
            EntityTooLarge => "Your proposed upload exceeds the maximum allowed object size.",
            EntityTooSmall => {
                "Your proposed upload is smaller than the minimum allowed object \
                size."
            }
            IncompleteBody => {
                "You did not provide the number of bytes specified by the \
                Content-Length HTTP header."
            }
            IncorrectNumberOfFilesInPostRequest => {
                "POST requires exactly one file upload per \
                request."
            }
            InternalError(_) => "We encountered an internal error. Please try again.",
            InvalidAccessKeyId => {
                "The AWS Access Key Id you provided does not exist in our \
                records."
            }
            InvalidBucketName => "The specified bucket is not valid.",
            InvalidChunkSizeError => {
                "Only the last chunk is allowed to have a size less than \
                8192 bytes"
            }
            InvalidDigest => "The Content-MD5 you specified was invalid.",
            InvalidLocationConstraint => "The specified location-constraint is not valid",
            InvalidObjectState => "The operation is not valid for the object's storage class",
            InvalidPart => {
                "One or more of the specified parts could not be found.  The part may \
                not have been uploaded, or the specified entity tag may not match the part's \
                entity tag."
            }
            InvalidPartNumber => "The requested partnumber is not satisfiable",
            InvalidPartOrder => {
                "The list of parts was not in ascending order. Parts must be \
                ordered by part number."
            }
            InvalidRange => "The requested range is not satisfiable",
            InvalidStorageClass => "The storage class you specified is not valid",
            InvalidURI => "Couldn't parse the specified URI.",
            KeyTooLongError => "Your key is too long",
            MalformedXML => {
                "The XML you provided was not well-formed or did not validate \
                against our published schema"
            }
            MaxMessageLengthExceeded => "Your request was too big.",
            MaxPostPreDataLengthExceededError => {
                "Your POST request fields preceding the upload file were too large."
            }
            MetadataTooLarge => "Your metadata headers exceed the maximum allowed metadata size.",
            MethodNotAllowed => "The specified method is not allowed against this resource.",
            MissingContentLength => "You must provide the Content-Length HTTP header.",
            MissingRequestBodyError => "Request Body is empty",
            NoSuchBucket => "The specified bucket does not exist",
            NoSuchBucketPolicy => "The bucket policy does not exist",
            NoSuchCORSConfiguration => "The CORS configuration does not exist",
            NoSuchKey => "The specified key does not exist.",
            NoSuchLifecycleConfiguration => "The lifecycle configuration does not exist",
            NoSuchTagSet => "The TagSet does not exist",
            NoSuchUpload => {
                "The specified upload does not exist. The upload ID may be invalid, \
                or the upload may have been aborted or completed."
            }
            NoSuchVersion => "The specified version does not exist.",
            NoSuchWebsiteConfiguration => {
                "The specified bucket does not have a website \
                configuration"
            }
            NotModified => "Not Modified",
            OperationAborted => {
                "A conflicting conditional operation is currently in progress \
                against this resource. Please try again."
            }
            PreconditionFailed => "At least one of the pre-conditions you specified did not hold",
            RequestHeaderSectionTooLarge => {
                "Your request header section exceeds the maximum \
                allowed size."
            }
            RequestTimeTooSkewed => {
                "The difference between the request time and the current \
                time is too large."
            }
            RequestTimeout => {
                "Your socket connection to the server was not read from or written \
                to within the timeout period."
            }
            ServiceUnavailable => "Service is unable to handle request.",
            SignatureDoesNotMatch => {
                "The request signature we calculated does not match the \
                signature you provided. Check your key and signing method."
            }
            SlowDown => "Please reduce your request rate.",
            TooManyBuckets => "You have attempted to create more buckets than allowed",
            UnexpectedContent => "This request does not support content",
            XAmzContentSHA256Mismatch => {
                "The provided 'x-amz-content-sha256' header does not \
                match what was computed."
            }
        };
        s.to_string()
    }

    /// Whether the client may retry as is (for metrics and `Retry-After`).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            S3Error::InternalError(_)
                | S3Error::ServiceUnavailable
                | S3Error::SlowDown
                | S3Error::RequestTimeout
        )
    }
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code(), self.status(), self.message())?;
        if let S3Error::InternalError(detail) = self {
            write!(f, " [{detail}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for S3Error {}

impl From<AuthError> for S3Error {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidAccessKeyId(_) => S3Error::InvalidAccessKeyId,
            AuthError::SignatureDoesNotMatch => S3Error::SignatureDoesNotMatch,
            AuthError::RequestTimeTooSkewed => S3Error::RequestTimeTooSkewed,
            AuthError::AccessDenied(m) => S3Error::AccessDenied(m),
            AuthError::AuthorizationHeaderMalformed(m) => S3Error::AuthorizationHeaderMalformed(m),
            AuthError::AuthorizationQueryParametersError(m) => {
                S3Error::AuthorizationQueryParametersError(m)
            }
            AuthError::MissingSecurityHeader(m) => S3Error::MissingSecurityHeader(m),
            AuthError::InvalidArgument(m) => S3Error::InvalidArgument(m),
            AuthError::InvalidRequest(m) => S3Error::InvalidRequest(m),
            AuthError::NotImplemented(m) => S3Error::NotImplemented(m),
            AuthError::XAmzContentSHA256Mismatch => S3Error::XAmzContentSHA256Mismatch,
        }
    }
}

impl From<crate::http::HttpError> for S3Error {
    fn from(e: crate::http::HttpError) -> Self {
        use crate::http::HttpError as H;
        match e {
            H::HeadTooLarge | H::TooManyHeaders | H::TrailersTooLarge => {
                S3Error::RequestHeaderSectionTooLarge
            }
            H::UnsupportedTransferEncoding => {
                S3Error::NotImplemented("that Transfer-Encoding".into())
            }
            H::BadPath | H::BadQuery | H::BadPercentEncoding | H::NotUtf8 | H::BadTarget => {
                S3Error::InvalidURI
            }
            H::Truncated => S3Error::IncompleteBody,
            other => S3Error::BadRequest(other.to_string()),
        }
    }
}

impl From<crate::s3::xml::XmlError> for S3Error {
    fn from(_: crate::s3::xml::XmlError) -> Self {
        S3Error::MalformedXML
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Exhaustive on purpose: a new variant fails to compile here until it gets an index,
    /// and `all_variants_listed` fails until it is listed.
    fn index(e: &S3Error) -> usize {
        use S3Error::*;
        match e {
            AccessDenied(_) => 0,
            AuthorizationHeaderMalformed(_) => 1,
            AuthorizationQueryParametersError(_) => 2,
            BadDigest(_) => 3,
            BadRequest(_) => 4,
            BucketAlreadyExists => 5,
            BucketAlreadyOwnedByYou => 6,
            BucketNotEmpty => 7,
            ConditionalRequestConflict => 8,
            EntityTooLarge => 9,
            EntityTooSmall => 10,
            IncompleteBody => 11,
            IncorrectNumberOfFilesInPostRequest => 12,
            InternalError(_) => 13,
            InvalidAccessKeyId => 14,
            InvalidArgument(_) => 15,
            InvalidBucketName => 16,
            InvalidBucketState(_) => 17,
            InvalidChunkSizeError => 18,
            InvalidDigest => 19,
            InvalidLocationConstraint => 20,
            InvalidObjectState => 21,
            InvalidPart => 22,
            InvalidPartNumber => 23,
            InvalidPartOrder => 24,
            InvalidPolicyDocument(_) => 25,
            InvalidRange => 26,
            InvalidRequest(_) => 27,
            InvalidStorageClass => 28,
            InvalidTag(_) => 29,
            InvalidURI => 30,
            KeyTooLongError => 31,
            MalformedPOSTRequest(_) => 32,
            MalformedXML => 33,
            MaxMessageLengthExceeded => 34,
            MetadataTooLarge => 35,
            MethodNotAllowed => 36,
            MissingContentLength => 37,
            MissingRequestBodyError => 38,
            MissingSecurityHeader(_) => 39,
            NoSuchBucket => 40,
            NoSuchBucketPolicy => 41,
            NoSuchCORSConfiguration => 42,
            NoSuchKey => 43,
            NoSuchLifecycleConfiguration => 44,
            NoSuchTagSet => 45,
            NoSuchUpload => 46,
            NoSuchVersion => 47,
            NoSuchWebsiteConfiguration => 48,
            NotImplemented(_) => 49,
            NotModified => 50,
            OperationAborted => 51,
            PreconditionFailed => 52,
            RequestHeaderSectionTooLarge => 53,
            RequestTimeTooSkewed => 54,
            RequestTimeout => 55,
            ServiceUnavailable => 56,
            SignatureDoesNotMatch => 57,
            SlowDown => 58,
            TooManyBuckets => 59,
            UnexpectedContent => 60,
            XAmzContentSHA256Mismatch => 61,
            AccessForbidden(_) => 62,
            MaxPostPreDataLengthExceededError => 63,
        }
    }
    const COUNT: usize = 64;

    fn all() -> Vec<S3Error> {
        use S3Error::*;
        let m = || "m".to_string();
        vec![
            AccessDenied(m()),
            AuthorizationHeaderMalformed(m()),
            AuthorizationQueryParametersError(m()),
            BadDigest(None),
            BadDigest(Some(ChecksumAlgorithm::Crc32)),
            BadRequest(m()),
            BucketAlreadyExists,
            BucketAlreadyOwnedByYou,
            BucketNotEmpty,
            ConditionalRequestConflict,
            EntityTooLarge,
            EntityTooSmall,
            IncompleteBody,
            IncorrectNumberOfFilesInPostRequest,
            InternalError(m()),
            InvalidAccessKeyId,
            InvalidArgument(m()),
            InvalidBucketName,
            InvalidBucketState(m()),
            InvalidChunkSizeError,
            InvalidDigest,
            InvalidLocationConstraint,
            InvalidObjectState,
            InvalidPart,
            InvalidPartNumber,
            InvalidPartOrder,
            InvalidPolicyDocument(m()),
            InvalidRange,
            InvalidRequest(m()),
            InvalidStorageClass,
            InvalidTag(m()),
            InvalidURI,
            KeyTooLongError,
            MalformedPOSTRequest(m()),
            MalformedXML,
            MaxMessageLengthExceeded,
            MetadataTooLarge,
            MethodNotAllowed,
            MissingContentLength,
            MissingRequestBodyError,
            MissingSecurityHeader(m()),
            NoSuchBucket,
            NoSuchBucketPolicy,
            NoSuchCORSConfiguration,
            NoSuchKey,
            NoSuchLifecycleConfiguration,
            NoSuchTagSet,
            NoSuchUpload,
            NoSuchVersion,
            NoSuchWebsiteConfiguration,
            NotImplemented(m()),
            NotModified,
            OperationAborted,
            PreconditionFailed,
            RequestHeaderSectionTooLarge,
            RequestTimeTooSkewed,
            RequestTimeout,
            ServiceUnavailable,
            SignatureDoesNotMatch,
            SlowDown,
            TooManyBuckets,
            UnexpectedContent,
            XAmzContentSHA256Mismatch,
            AccessForbidden(m()),
            MaxPostPreDataLengthExceededError,
        ]
    }

    #[test]
    fn all_variants_listed() {
        let seen: HashSet<usize> = all().iter().map(index).collect();
        assert_eq!(seen, (0..COUNT).collect::<HashSet<_>>());
    }

    #[test]
    fn every_variant_has_code_status_message() {
        let mut codes = HashSet::new();
        for e in all() {
            let code = e.code();
            assert!(!code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric()));
            assert!((100..=599).contains(&e.status()), "{code}");
            assert!(!e.message().is_empty(), "{code}");
            assert!(!e.to_string().is_empty());
            codes.insert(code);
        }
        assert_eq!(codes.len(), COUNT, "codes are unique per variant");
    }

    #[test]
    fn statuses_as_aws() {
        use S3Error::*;
        let cases: Vec<(S3Error, u16)> = vec![
            (AccessDenied("Access Denied".into()), 403),
            (BadDigest(None), 400),
            (BucketAlreadyExists, 409),
            (BucketAlreadyOwnedByYou, 409),
            (BucketNotEmpty, 409),
            (EntityTooLarge, 400),
            (EntityTooSmall, 400),
            (IncompleteBody, 400),
            (InternalError("x".into()), 500),
            (InvalidAccessKeyId, 403),
            (InvalidArgument("x".into()), 400),
            (InvalidBucketName, 400),
            (InvalidDigest, 400),
            (InvalidPart, 400),
            (InvalidPartOrder, 400),
            (InvalidRange, 416),
            (InvalidRequest("x".into()), 400),
            (KeyTooLongError, 400),
            (MalformedXML, 400),
            (MethodNotAllowed, 405),
            (MissingContentLength, 411),
            (NoSuchBucket, 404),
            (NoSuchKey, 404),
            (NoSuchUpload, 404),
            (NotImplemented("x".into()), 501),
            (PreconditionFailed, 412),
            (NotModified, 304),
            (RequestTimeTooSkewed, 403),
            (RequestTimeout, 400),
            (SignatureDoesNotMatch, 403),
            (SlowDown, 503),
            (XAmzContentSHA256Mismatch, 400),
            (AuthorizationHeaderMalformed("x".into()), 400),
            (InvalidObjectState, 403),
            (MetadataTooLarge, 400),
            (RequestHeaderSectionTooLarge, 400),
            (ServiceUnavailable, 503),
            (InvalidStorageClass, 400),
        ];
        for (e, s) in cases {
            assert_eq!(e.status(), s, "{}", e.code());
        }
        assert_eq!(
            BadDigest(Some(ChecksumAlgorithm::Crc32c)).message(),
            "The CRC32C you specified did not match the calculated checksum."
        );
        assert!(!InternalError("secret detail".into())
            .message()
            .contains("secret"));
    }

    #[test]
    fn from_auth_error() {
        let cases = [
            (
                AuthError::InvalidAccessKeyId("AK".into()),
                "InvalidAccessKeyId",
                403,
            ),
            (
                AuthError::SignatureDoesNotMatch,
                "SignatureDoesNotMatch",
                403,
            ),
            (AuthError::RequestTimeTooSkewed, "RequestTimeTooSkewed", 403),
            (
                AuthError::AccessDenied("Request has expired".into()),
                "AccessDenied",
                403,
            ),
            (
                AuthError::AuthorizationHeaderMalformed("x".into()),
                "AuthorizationHeaderMalformed",
                400,
            ),
            (
                AuthError::AuthorizationQueryParametersError("x".into()),
                "AuthorizationQueryParametersError",
                400,
            ),
            (
                AuthError::MissingSecurityHeader("x".into()),
                "MissingSecurityHeader",
                400,
            ),
            (
                AuthError::InvalidArgument("x".into()),
                "InvalidArgument",
                400,
            ),
            (AuthError::InvalidRequest("x".into()), "InvalidRequest", 400),
            (AuthError::NotImplemented("x".into()), "NotImplemented", 501),
            (
                AuthError::XAmzContentSHA256Mismatch,
                "XAmzContentSHA256Mismatch",
                400,
            ),
        ];
        for (a, code, status) in cases {
            let e = S3Error::from(a);
            assert_eq!((e.code(), e.status()), (code, status));
        }
        assert_eq!(
            S3Error::from(AuthError::AccessDenied("Request has expired".into())).message(),
            "Request has expired"
        );
    }
}
