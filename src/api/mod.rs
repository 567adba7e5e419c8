//! The API: S3 handlers (`s3`), the admin API (`admin`), buckets served as websites, the
//! connection loop, TLS, metrics and the MD5 lanes. A handler parses and authenticates a
//! request, then asks `model` for the data.

pub mod admin;
pub mod conn;
pub mod md5_lanes;
pub mod metrics;
pub mod s3;
pub mod tls;
pub mod website;
