//! Bucket rules: names, creation, the deletion of an empty bucket, and every change to a
//! bucket's row as an edit ([`BucketEdit`]) that shard 0 applies, one at a time, to the row
//! it holds (`global::change_bucket`). Both S3 handlers and the admin API go through here.

use serde::{Deserialize, Serialize};

use super::ops::DataRequest;
use super::{now_ms, release_blocks, Shard};
use crate::meta::lifecycle::LifecycleConfig;
use crate::meta::types::{BucketId, BucketRow, Permissions};
use crate::meta::website::{CorsRule, WebsiteConfig};
use crate::s3::error::S3Error;

/// A change to one bucket's row. Shard 0 applies changes one at a time to the row it
/// holds ([`apply`]), so that changes made together (CORS, tags and lifecycle put at once,
/// as Terraform does) all stay, and two creations of one name cannot both succeed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketEdit {
    /// Make the bucket, if the name is free. `asking`: the key of an S3 CreateBucket, which
    /// is told `BucketAlreadyOwnedByYou` when the bucket of that name is its own.
    Create {
        row: BucketRow,
        asking: Option<String>,
    },
    /// Delete the bucket (a tombstone), if it is still the one with this id.
    Tombstone {
        id: BucketId,
    },
    /// Put a deleted bucket back (DeleteBucket that lost to a write), if the name is free.
    Restore {
        row: BucketRow,
    },
    /// Leave the row as it is (a step of DeleteBucket that only releases the name).
    Nothing,
    SetPublicRead(bool),
    SetWebsite(Option<WebsiteConfig>),
    SetCors(Vec<CorsRule>),
    SetLifecycle(Option<LifecycleConfig>),
    SetTags(Vec<(String, String)>),
    /// Give `key` the permissions set in `permissions` (the others stay as they are).
    Grant {
        key: String,
        permissions: Permissions,
    },
    /// Take from `key` the permissions set in `permissions`; a key left with none loses its
    /// grant.
    Deny {
        key: String,
        permissions: Permissions,
    },
}

/// A DeleteBucket holds its bucket's name from the tombstone until it knows whether the
/// bucket stays deleted (a late write puts it back: [`delete_empty_bucket`]). Meanwhile no
/// other change may make a bucket of that name: CreateBucket answers `OperationAborted`,
/// as AWS does for a conflicting operation in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NameHold {
    /// Any other change.
    None,
    /// The tombstone: once it is stored, the name is held.
    Take,
    /// DeleteBucket's last step (putting the bucket back, or nothing): releases the name.
    Release,
}

/// The row an edit makes of the live row under the bucket's name (`None`: the name is
/// free): the row to store (stamped by shard 0), `None` to leave things as they are, or why
/// not.
pub fn apply(edit: BucketEdit, current: Option<&BucketRow>) -> Result<Option<BucketRow>, S3Error> {
    use BucketEdit as E;
    let live = || current.cloned().ok_or(S3Error::NoSuchBucket);
    let row = match edit {
        E::Create { row, asking } => {
            return match current {
                Some(existing) => Err(name_taken(existing, asking.as_deref())),
                None => Ok(Some(row)),
            }
        }
        E::Tombstone { id } => match current {
            // Deleted and made again meanwhile: that is another bucket.
            Some(now) if now.id == id => BucketRow {
                deleted: true,
                ..now.clone()
            },
            _ => return Err(S3Error::NoSuchBucket),
        },
        E::Restore { row } => {
            return match current {
                None => Ok(Some(row)),
                Some(_) => Err(S3Error::BucketAlreadyExists),
            }
        }
        E::Nothing => return Ok(None),
        E::SetPublicRead(public_read) => BucketRow {
            public_read,
            ..live()?
        },
        E::SetWebsite(website) => BucketRow { website, ..live()? },
        E::SetCors(cors) => BucketRow { cors, ..live()? },
        E::SetLifecycle(lifecycle) => BucketRow {
            lifecycle,
            ..live()?
        },
        E::SetTags(tags) => BucketRow { tags, ..live()? },
        E::Grant { key, permissions } => set_grant(live()?, key, permissions, true),
        E::Deny { key, permissions } => set_grant(live()?, key, permissions, false),
    };
    Ok(Some(row))
}

/// Sets (or clears) the permissions named in `named` of `key`'s grant.
fn set_grant(mut row: BucketRow, key: String, named: Permissions, set: bool) -> BucketRow {
    let mut current = row
        .grants
        .iter()
        .find(|(id, _)| *id == key)
        .map(|(_, p)| *p)
        .unwrap_or_default();
    if named.read {
        current.read = set;
    }
    if named.write {
        current.write = set;
    }
    if named.owner {
        current.owner = set;
    }
    row.grants.retain(|(id, _)| *id != key);
    if current != Permissions::default() {
        row.grants.push((key, current));
    }
    row
}

/// S3's bucket naming rules (the DNS-compatible ones).
pub fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(b))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err()
}

/// The error for creating a bucket whose name is taken: by the caller's key, or not.
pub fn name_taken(existing: &BucketRow, access_key_id: Option<&str>) -> S3Error {
    let ours = existing
        .grants
        .iter()
        .any(|(id, p)| Some(id.as_str()) == access_key_id && p.owner);
    if ours {
        S3Error::BucketAlreadyOwnedByYou
    } else {
        S3Error::BucketAlreadyExists
    }
}

/// Changes a bucket's row through shard 0 (`global::change_bucket`, which applies `edit` to
/// the row it holds); returns the live row as it now is.
pub async fn change_bucket(
    shard: &Shard,
    name: &str,
    edit: BucketEdit,
) -> Result<Option<BucketRow>, S3Error> {
    change_bucket_holding(shard, name, NameHold::None, edit).await
}

/// [`change_bucket`] as a step of DeleteBucket, which holds the name (see [`NameHold`]).
pub async fn change_bucket_holding(
    shard: &Shard,
    name: &str,
    hold: NameHold,
    edit: BucketEdit,
) -> Result<Option<BucketRow>, S3Error> {
    shard
        .call(DataRequest::ChangeBucket {
            name: name.to_string(),
            edit,
            hold,
        })
        .await
        .bucket()
        .map_err(S3Error::from)
}

/// Edits a live bucket's row (NoSuchBucket if it was deleted meanwhile); returns the row.
pub async fn edit_bucket(
    shard: &Shard,
    name: &str,
    edit: BucketEdit,
) -> Result<BucketRow, S3Error> {
    change_bucket(shard, name, edit)
        .await?
        .ok_or(S3Error::NoSuchBucket)
}

/// Makes a bucket named `name`, public or not; `owner` (an access key id) gets every
/// permission on it. `asking`: the key of an S3 CreateBucket (see [`BucketEdit::Create`]).
pub async fn create_bucket(
    shard: &Shard,
    name: &str,
    owner: Option<&str>,
    public_read: bool,
    asking: Option<&str>,
) -> Result<BucketRow, S3Error> {
    if !valid_bucket_name(name) {
        return Err(S3Error::InvalidBucketName);
    }
    let every = Permissions {
        read: true,
        write: true,
        owner: true,
    };
    let row = BucketRow {
        id: BucketId(rand::random()),
        name: name.to_string(),
        created_ms: now_ms(),
        stamp: shard.clock.stamp(),
        deleted: false,
        grants: owner
            .map(|key| (key.to_string(), every))
            .into_iter()
            .collect(),
        website: None,
        cors: Vec::new(),
        public_read,
        lifecycle: None,
        tags: Vec::new(),
    };
    // Shard 0 checks the name again: another creation may have taken it meanwhile.
    let asking = asking.map(str::to_string);
    let created = change_bucket(shard, name, BucketEdit::Create { row, asking }).await?;
    created.ok_or(S3Error::NoSuchBucket)
}

/// Whether any shard holds an object of `bucket` (unfinished uploads do not count:
/// DeleteBucket removes them), counting every write that
/// reached a shard's metadata stage before the question did.
async fn bucket_has_objects(shard: &Shard, bucket: BucketId) -> Result<bool, S3Error> {
    for s in 0..shard.shards {
        let has = shard
            .call_on(s, DataRequest::BucketHasObjects { bucket })
            .await
            .flag()
            .map_err(S3Error::from)?;
        if has {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Removes the unfinished multipart uploads of a deleted bucket from every shard and
/// releases their blocks: AWS deletes a bucket whose only contents are such uploads. The
/// tombstone is on every shard, so no upload or part of the bucket is accepted any more.
async fn remove_bucket_uploads(shard: &Shard, bucket: BucketId) {
    for s in 0..shard.shards {
        let removed = shard
            .call_on(s, DataRequest::DeleteBucketUploads { bucket })
            .await
            .parts();
        match removed {
            Ok(parts) => {
                for part in parts {
                    release_blocks(shard, part.holder, &part.blocks).await;
                }
            }
            Err(e) => tracing::warn!(
                shard = s,
                ?bucket,
                "removing the uploads of a deleted bucket failed: {e:?}"
            ),
        }
    }
}

/// Deletes a bucket if it is empty (DeleteBucket, and the admin API's). An upload that
/// started before the delete may commit its object after the first emptiness check: once
/// the tombstone is on every shard, no new row is accepted (`Shard::check_bucket_live`)
/// and a second check sees every row accepted before it; if there is one, the bucket is
/// put back and the answer is BucketNotEmpty, as if the PUT had come first.
pub async fn delete_empty_bucket(shard: &Shard, row: &BucketRow) -> Result<(), S3Error> {
    if bucket_has_objects(shard, row.id).await? {
        return Err(S3Error::BucketNotEmpty);
    }
    let id = row.id;
    let tombstone = BucketEdit::Tombstone { id };
    change_bucket_holding(shard, &row.name, NameHold::Take, tombstone).await?;
    // The name is held until the release below: nobody can make a bucket of it meanwhile.
    let late = bucket_has_objects(shard, id).await;
    if let Ok(false) = late {
        remove_bucket_uploads(shard, id).await;
        let _ =
            change_bucket_holding(shard, &row.name, NameHold::Release, BucketEdit::Nothing).await;
        return Ok(());
    }
    // A write landed (or the check failed: keep the bucket rather than risk its objects).
    // The tombstone (on every shard once the change returned) is the row as it was when it
    // was deleted, settings changed meanwhile included: put that back.
    let tombstone = shard.global.borrow().last_row(&row.name).cloned();
    let restored = BucketRow {
        deleted: false,
        ..tombstone
            .filter(|t| t.id == id)
            .unwrap_or_else(|| row.clone())
    };
    let restore = BucketEdit::Restore { row: restored };
    let back = change_bucket_holding(shard, &row.name, NameHold::Release, restore).await;
    let why = match &late {
        Ok(_) => "a write landed as the bucket was deleted".to_string(),
        Err(e) => format!("the last emptiness check failed ({e:?})"),
    };
    if let Err(e) = back {
        // The name is held until this step, so only a failure to store the row gets here.
        tracing::error!(
            bucket = %row.name,
            error = ?e,
            "{why}, and the bucket could not be put back: its objects are unreachable"
        );
        return Err(S3Error::InternalError(format!(
            "{why}, and bucket {} could not be put back",
            row.name
        )));
    }
    tracing::info!(bucket = %row.name, "{why}: the bucket was put back");
    late?;
    Err(S3Error::BucketNotEmpty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, id: u8, owner: &str) -> BucketRow {
        BucketRow {
            id: BucketId([id; 16]),
            name: name.into(),
            created_ms: 1,
            stamp: crate::meta::types::Stamp::ZERO,
            deleted: false,
            grants: vec![(owner.into(), perms(true, true, true))],
            website: None,
            cors: Vec::new(),
            public_read: false,
            lifecycle: None,
            tags: Vec::new(),
        }
    }

    fn perms(read: bool, write: bool, owner: bool) -> Permissions {
        Permissions { read, write, owner }
    }

    fn create(asking: Option<&str>) -> BucketEdit {
        BucketEdit::Create {
            row: row("b", 2, "k2"),
            asking: asking.map(str::to_string),
        }
    }

    #[test]
    fn a_name_is_created_once() {
        let taken = row("b", 1, "k1");
        assert_eq!(apply(create(Some("k2")), None), Ok(Some(row("b", 2, "k2"))));
        assert_eq!(
            apply(create(Some("k1")), Some(&taken)),
            Err(S3Error::BucketAlreadyOwnedByYou)
        );
        assert_eq!(
            apply(create(Some("k2")), Some(&taken)),
            Err(S3Error::BucketAlreadyExists)
        );
        assert_eq!(
            apply(create(None), Some(&taken)),
            Err(S3Error::BucketAlreadyExists)
        );
    }

    #[test]
    fn a_tombstone_deletes_only_the_bucket_it_names() {
        let live = row("b", 1, "k1");
        let deleted = apply(BucketEdit::Tombstone { id: live.id }, Some(&live));
        assert_eq!(
            deleted,
            Ok(Some(BucketRow {
                deleted: true,
                ..live.clone()
            }))
        );
        let other = BucketEdit::Tombstone {
            id: BucketId([9; 16]),
        };
        assert_eq!(apply(other, Some(&live)), Err(S3Error::NoSuchBucket));
        let gone = BucketEdit::Tombstone { id: live.id };
        assert_eq!(apply(gone, None), Err(S3Error::NoSuchBucket));
    }

    #[test]
    fn a_restore_needs_the_name_free_and_nothing_changes_nothing() {
        let back = row("b", 1, "k1");
        let restore = || BucketEdit::Restore { row: back.clone() };
        assert_eq!(apply(restore(), None), Ok(Some(back.clone())));
        let taken = row("b", 2, "k2");
        assert_eq!(
            apply(restore(), Some(&taken)),
            Err(S3Error::BucketAlreadyExists)
        );
        assert_eq!(apply(BucketEdit::Nothing, Some(&taken)), Ok(None));
        assert_eq!(apply(BucketEdit::Nothing, None), Ok(None));
    }

    #[test]
    fn settings_change_a_live_bucket_only() {
        let live = row("b", 1, "k1");
        let tags = vec![("t".to_string(), "v".to_string())];
        let edits = [
            BucketEdit::SetPublicRead(true),
            BucketEdit::SetWebsite(None),
            BucketEdit::SetCors(Vec::new()),
            BucketEdit::SetLifecycle(None),
            BucketEdit::SetTags(tags.clone()),
        ];
        for edit in edits {
            assert_eq!(
                apply(edit.clone(), None),
                Err(S3Error::NoSuchBucket),
                "{edit:?}"
            );
            assert!(apply(edit, Some(&live)).unwrap().is_some());
        }
        let public = apply(BucketEdit::SetPublicRead(true), Some(&live)).unwrap();
        assert!(public.unwrap().public_read);
        let tagged = apply(BucketEdit::SetTags(tags.clone()), Some(&live)).unwrap();
        assert_eq!(tagged.unwrap().tags, tags);
    }

    #[test]
    fn grants_add_and_denials_take_the_permissions_named() {
        let live = row("b", 1, "k1");
        let grant = |key: &str, p| BucketEdit::Grant {
            key: key.into(),
            permissions: p,
        };
        let deny = |key: &str, p| BucketEdit::Deny {
            key: key.into(),
            permissions: p,
        };
        let read = apply(grant("k2", perms(true, false, false)), Some(&live))
            .unwrap()
            .unwrap();
        assert_eq!(
            read.grants[1],
            ("k2".to_string(), perms(true, false, false))
        );
        let both = apply(grant("k2", perms(false, true, false)), Some(&read))
            .unwrap()
            .unwrap();
        assert_eq!(both.grants[1], ("k2".to_string(), perms(true, true, false)));
        let write_only = apply(deny("k2", perms(true, false, false)), Some(&both))
            .unwrap()
            .unwrap();
        assert_eq!(
            write_only.grants[1],
            ("k2".to_string(), perms(false, true, false))
        );
        let none = apply(deny("k2", perms(true, true, true)), Some(&write_only))
            .unwrap()
            .unwrap();
        assert_eq!(none.grants, live.grants);
        assert_eq!(
            apply(grant("k2", perms(true, false, false)), None),
            Err(S3Error::NoSuchBucket)
        );
    }

    #[test]
    fn bucket_names_follow_s3s_rules() {
        for good in ["abc", "a-b.c", "0bucket", &"a".repeat(63)] {
            assert!(valid_bucket_name(good), "{good}");
        }
        for bad in [
            "ab",
            "Abc",
            "-abc",
            "abc-",
            "a..b",
            "192.168.1.1",
            &"a".repeat(64),
        ] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }
}
