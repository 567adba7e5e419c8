//! The S3 protocol, sans-IO: authentication (SigV4), XML bodies, error codes, checksums.

pub mod acl;
pub mod checksum;
pub mod conditions;
pub mod cors;
pub mod error;
pub mod policy;
pub mod sigv2;
pub mod sigv4;
pub mod website;
pub mod xml;
