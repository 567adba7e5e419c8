//! Access control lists, sans-IO. Granary's permissions are per key and per bucket (read,
//! write, owner) plus one public flag per bucket; S3's ACLs are shown as a view of them:
//!
//! - each key with `owner` → `FULL_CONTROL`; otherwise `read` → `READ`, `write` → `WRITE`
//!   (objects have no `WRITE` grant in S3: an object's ACL lists only `READ` there);
//! - a `public-read` bucket → the `AllUsers` group has `READ`.
//!
//! Only the canned ACLs `private` and `public-read` can be set (`x-amz-acl`); an object's
//! ACL is its bucket's.

use crate::meta::types::Permissions;
use crate::s3::error::S3Error;

pub const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CannedAcl {
    Private,
    PublicRead,
}

/// An `x-amz-acl` value. Canned ACLs Granary cannot represent are `NotImplemented`.
pub fn parse_canned(value: &str) -> Result<CannedAcl, S3Error> {
    match value.trim() {
        "private" => Ok(CannedAcl::Private),
        "public-read" => Ok(CannedAcl::PublicRead),
        "public-read-write"
        | "authenticated-read"
        | "aws-exec-read"
        | "bucket-owner-read"
        | "bucket-owner-full-control"
        | "log-delivery-write" => Err(S3Error::NotImplemented(format!(
            "canned ACL {value}: Granary supports private and public-read"
        ))),
        other => Err(S3Error::InvalidArgument(format!(
            "unknown canned ACL {other:?}"
        ))),
    }
}

/// Explicit grant headers (`x-amz-grant-*`) are not supported: their names.
pub const GRANT_HEADERS: &[&str] = &[
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grantee {
    /// An access key (its id is the canonical user id).
    Key(String),
    AllUsers,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    FullControl,
    Read,
    Write,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::FullControl => "FULL_CONTROL",
            Permission::Read => "READ",
            Permission::Write => "WRITE",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

/// The ACL of a bucket: owners first, then readers and writers, then AllUsers.
pub fn bucket_grants(keys: &[(String, Permissions)], public_read: bool) -> Vec<Grant> {
    grants(keys, public_read, true)
}

/// The ACL of an object (the bucket's, without `WRITE`, which objects do not have).
pub fn object_grants(keys: &[(String, Permissions)], public_read: bool) -> Vec<Grant> {
    grants(keys, public_read, false)
}

fn grants(keys: &[(String, Permissions)], public_read: bool, bucket: bool) -> Vec<Grant> {
    let mut out = Vec::new();
    let key = |id: &String, permission| Grant {
        grantee: Grantee::Key(id.clone()),
        permission,
    };
    for (id, _) in keys.iter().filter(|(_, p)| p.owner) {
        out.push(key(id, Permission::FullControl));
    }
    for (id, p) in keys.iter().filter(|(_, p)| !p.owner) {
        if p.read {
            out.push(key(id, Permission::Read));
        }
        if p.write && bucket {
            out.push(key(id, Permission::Write));
        }
    }
    if public_read {
        out.push(Grant {
            grantee: Grantee::AllUsers,
            permission: Permission::Read,
        });
    }
    out
}

/// What an ACL document (PutBucketAcl / PutObjectAcl with a body) asks, given the ACL the
/// resource has now (`current`, as `bucket_grants` / `object_grants` show it without
/// AllUsers): whether the resource is to be public-read. The document may only add or
/// remove `AllUsers` `READ`; every other grant must be as it is (key permissions change
/// with `granary bucket allow / deny`), or the request is `NotImplemented`. This is what
/// clients that edit ACLs (GET ?acl, add the public grant, PUT ?acl) need.
pub fn public_read_from_document(current: &[Grant], requested: &[Grant]) -> Result<bool, S3Error> {
    let mut public_read = false;
    let mut keys: Vec<&Grant> = Vec::new();
    for g in requested {
        match (&g.grantee, g.permission) {
            (Grantee::AllUsers, Permission::Read) => public_read = true,
            (Grantee::AllUsers, p) => {
                return Err(S3Error::NotImplemented(format!(
                    "{} for AllUsers: only READ (public-read) is supported",
                    p.as_str()
                )))
            }
            (Grantee::Key(_), _) => {
                if !keys.contains(&g) {
                    keys.push(g);
                }
                // More distinct grants than the resource has cannot be the same set; stop
                // before the check above, quadratic in the count, grows.
                if keys.len() > current.len() {
                    break;
                }
            }
        }
    }
    let same = keys.len() == current.len() && current.iter().all(|c| keys.contains(&c));
    if !same {
        return Err(S3Error::NotImplemented(
            "ACL documents may only add or remove AllUsers READ; key permissions change \
             with `granary bucket allow / deny`"
                .into(),
        ));
    }
    Ok(public_read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(read: bool, write: bool, owner: bool) -> Permissions {
        Permissions { read, write, owner }
    }

    #[test]
    fn canned_acls() {
        assert_eq!(parse_canned("private").unwrap(), CannedAcl::Private);
        assert_eq!(parse_canned(" public-read").unwrap(), CannedAcl::PublicRead);
        assert_eq!(
            parse_canned("public-read-write").unwrap_err().code(),
            "NotImplemented"
        );
        assert_eq!(parse_canned("bogus").unwrap_err().code(), "InvalidArgument");
    }

    #[test]
    fn grants_follow_permissions() {
        let keys = vec![
            ("R".to_string(), p(true, false, false)),
            ("O".to_string(), p(true, true, true)),
            ("W".to_string(), p(false, true, false)),
            ("RW".to_string(), p(true, true, false)),
            ("none".to_string(), p(false, false, false)),
        ];
        let g = bucket_grants(&keys, true);
        let view: Vec<(Grantee, &str)> = g
            .iter()
            .map(|g| (g.grantee.clone(), g.permission.as_str()))
            .collect();
        let k = |s: &str| Grantee::Key(s.into());
        assert_eq!(
            view,
            vec![
                (k("O"), "FULL_CONTROL"),
                (k("R"), "READ"),
                (k("W"), "WRITE"),
                (k("RW"), "READ"),
                (k("RW"), "WRITE"),
                (Grantee::AllUsers, "READ"),
            ]
        );
        let g = object_grants(&keys, false);
        assert_eq!(g.len(), 3);
        assert!(g.iter().all(|g| g.permission != Permission::Write));
    }

    #[test]
    fn documents_may_only_toggle_public_read() {
        let keys = vec![
            ("O".to_string(), p(true, true, true)),
            ("R".to_string(), p(true, false, false)),
        ];
        let current = bucket_grants(&keys, false);
        let mut public = current.clone();
        public.push(Grant {
            grantee: Grantee::AllUsers,
            permission: Permission::Read,
        });
        assert_eq!(public_read_from_document(&current, &public), Ok(true));
        let mut reordered = current.clone();
        reordered.reverse();
        assert_eq!(public_read_from_document(&current, &reordered), Ok(false));
        // Dropping a key's grant, adding one, or AllUsers WRITE: not representable.
        assert!(public_read_from_document(&current, &current[..1]).is_err());
        let mut more = current.clone();
        more.push(Grant {
            grantee: Grantee::Key("X".into()),
            permission: Permission::Read,
        });
        assert!(public_read_from_document(&current, &more).is_err());
        let write = vec![Grant {
            grantee: Grantee::AllUsers,
            permission: Permission::Write,
        }];
        assert!(public_read_from_document(&[], &write).is_err());
    }
}
