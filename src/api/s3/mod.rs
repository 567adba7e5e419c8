//! The S3 API: from a request to an S3 operation (`router`), and the operations.

pub mod access;
pub mod attributes;
pub mod bucket_config;
pub mod cors;
pub mod list;
pub mod multipart;
pub mod objects;
pub mod part_copy;
pub mod post_object;
pub mod router;
