//! Per-bucket configuration of the browser-facing features, as stored in `BucketRow`: the
//! static website (index and error documents) and the CORS rules. Pure data; the S3 XML
//! forms are parsed and written in `crate::s3::website` and `crate::s3::cors`.

use serde::{Deserialize, Serialize};

/// A bucket served as a static website on `--web-addr`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebsiteConfig {
    /// Appended to a request for `/` or for a key ending in `/` (S3's `IndexDocument`
    /// `Suffix`, e.g. `index.html`). Never empty, never contains `/`.
    pub index_suffix: String,
    /// Key of the object served (with status 404) when the requested one is missing.
    pub error_document: Option<String>,
    /// Every request is redirected to this host (S3's `RedirectAllRequestsTo`): when set,
    /// no document is served.
    pub redirect_all: Option<RedirectAll>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedirectAll {
    pub host_name: String,
    /// `http` or `https`; None keeps the scheme of the request.
    pub protocol: Option<String>,
}

/// One CORS rule (S3's `CORSRule`). Origins and headers may hold one `*` wildcard each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    pub id: Option<String>,
    /// Methods as S3 names them: GET, PUT, POST, DELETE, HEAD.
    pub allowed_methods: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<u32>,
}
