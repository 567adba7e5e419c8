//! `<AccessControlPolicy>` (GetBucketAcl, GetObjectAcl).

use super::{escape_into, Doc, Owner};
use crate::s3::acl::{Grant, Grantee, ALL_USERS_URI};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::acl::Permission;

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
}
