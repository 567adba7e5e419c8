//! `<AccessControlPolicy>` (GetBucketAcl, GetObjectAcl).

use super::{escape_into, expect_root, parse_tree, Doc, Owner};
use crate::s3::acl::{Grant, Grantee, Permission, ALL_USERS_URI};
use crate::s3::error::S3Error;

const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

pub fn access_control_policy_xml(owner: &Owner, grants: &[Grant]) -> String {
    let root = "AccessControlPolicy";
    let mut d = Doc::new(root);
    d.owner("Owner", owner);
    d.open("AccessControlList");
    for g in grants {
        d.open("Grant");
        match &g.grantee {
            Grantee::Key(id) => {
                d.s.push_str(&format!(
                    "<Grantee xmlns:xsi=\"{XSI}\" xsi:type=\"CanonicalUser\">"
                ));
                d.text("ID", id);
                d.text("DisplayName", id);
            }
            Grantee::AllUsers => {
                d.s.push_str(&format!("<Grantee xmlns:xsi=\"{XSI}\" xsi:type=\"Group\">"));
                d.open("URI");
                escape_into(&mut d.s, ALL_USERS_URI);
                d.close("URI");
            }
        }
        d.close("Grantee");
        d.text("Permission", g.permission.as_str());
        d.close("Grant");
    }
    d.close("AccessControlList");
    d.finish(root)
}

/// Parses an `<AccessControlPolicy>` body (PutBucketAcl, PutObjectAcl) into its grants.
/// Grantees are told apart by their child (`ID`, `URI`, `EmailAddress`), as the
/// `xsi:type` attribute says the same. Grants Granary cannot represent (other groups,
/// e-mail grantees, `READ_ACP` / `WRITE_ACP`) are `NotImplemented`.
pub fn parse_access_control_policy(bytes: &[u8]) -> Result<Vec<Grant>, S3Error> {
    let root = parse_tree(bytes)?;
    expect_root(&root, "AccessControlPolicy")?;
    let list = root
        .child("AccessControlList")
        .ok_or(S3Error::MalformedXML)?;
    let mut grants = Vec::new();
    for g in list.children_named("Grant") {
        let grantee = g.child("Grantee").ok_or(S3Error::MalformedXML)?;
        let grantee = if let Some(id) = grantee.child("ID") {
            Grantee::Key(id.text.trim().to_string())
        } else if let Some(uri) = grantee.child("URI") {
            if uri.text.trim() != ALL_USERS_URI {
                return Err(S3Error::NotImplemented(format!(
                    "ACL grants to the group {}",
                    uri.text.trim()
                )));
            }
            Grantee::AllUsers
        } else if grantee.child("EmailAddress").is_some() {
            return Err(S3Error::NotImplemented(
                "ACL grants by e-mail address".into(),
            ));
        } else {
            return Err(S3Error::MalformedXML);
        };
        let permission = match g
            .child("Permission")
            .ok_or(S3Error::MalformedXML)?
            .text
            .trim()
        {
            "FULL_CONTROL" => Permission::FullControl,
            "READ" => Permission::Read,
            "WRITE" => Permission::Write,
            p @ ("READ_ACP" | "WRITE_ACP") => {
                return Err(S3Error::NotImplemented(format!("ACL permission {p}")))
            }
            _ => return Err(S3Error::MalformedXML),
        };
        grants.push(Grant {
            grantee,
            permission,
        });
    }
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_document() {
        let owner = Owner {
            id: "GKO".into(),
            display_name: "GKO".into(),
        };
        let grants = vec![
            Grant {
                grantee: Grantee::Key("GKO".into()),
                permission: Permission::FullControl,
            },
            Grant {
                grantee: Grantee::AllUsers,
                permission: Permission::Read,
            },
        ];
        let x = access_control_policy_xml(&owner, &grants);
        assert!(x.contains("<Owner><ID>GKO</ID><DisplayName>GKO</DisplayName></Owner>"));
        assert!(x.contains(
            "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
             xsi:type=\"CanonicalUser\"><ID>GKO</ID><DisplayName>GKO</DisplayName></Grantee>\
             <Permission>FULL_CONTROL</Permission></Grant>"
        ));
        assert!(x.contains(
            "xsi:type=\"Group\"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI>\
             </Grantee><Permission>READ</Permission>"
        ));
    }

    #[test]
    fn policy_documents_parse_back() {
        let owner = Owner {
            id: "GKO".into(),
            display_name: "GKO".into(),
        };
        let grants = vec![
            Grant {
                grantee: Grantee::Key("GKO".into()),
                permission: Permission::FullControl,
            },
            Grant {
                grantee: Grantee::Key("GKR".into()),
                permission: Permission::Read,
            },
            Grant {
                grantee: Grantee::AllUsers,
                permission: Permission::Read,
            },
        ];
        let doc = access_control_policy_xml(&owner, &grants);
        assert_eq!(parse_access_control_policy(doc.as_bytes()).unwrap(), grants);
        let group = "<AccessControlPolicy><AccessControlList><Grant><Grantee>\
            <URI>http://acs.amazonaws.com/groups/global/AuthenticatedUsers</URI></Grantee>\
            <Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>";
        let e = parse_access_control_policy(group.as_bytes()).unwrap_err();
        assert_eq!(e.code(), "NotImplemented");
        let acp = "<AccessControlPolicy><AccessControlList><Grant><Grantee><ID>x</ID>\
            </Grantee><Permission>READ_ACP</Permission></Grant></AccessControlList>\
            </AccessControlPolicy>";
        let e = parse_access_control_policy(acp.as_bytes()).unwrap_err();
        assert_eq!(e.code(), "NotImplemented");
        let e = parse_access_control_policy(b"<AccessControlPolicy/>").unwrap_err();
        assert_eq!(e.code(), "MalformedXML");
    }
}
