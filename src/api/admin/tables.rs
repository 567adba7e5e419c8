//! The admin API's operations on keys and buckets, as JSON.

use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::api::Gateway;
use crate::meta::types::{BucketRow, KeyRow, Permissions, Stamp};
use crate::meta::website::WebsiteConfig;
use crate::model::bucket::{self, BucketEdit};
use crate::model::now_ms;
use crate::model::ops::DataRequest;
use crate::s3::error::S3Error;

pub fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct KeyInfo {
    pub access_key_id: String,
    pub name: String,
    pub created_ms: u64,
    pub create_bucket: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub buckets: Vec<Grant>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Grant {
    /// Bucket name (in a key's view) or access key id (in a bucket's view).
    pub name: String,
    pub read: bool,
    pub write: bool,
    pub owner: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct BucketInfo {
    pub name: String,
    pub id: String,
    pub created_ms: u64,
    pub keys: Vec<Grant>,
    /// Canned ACL public-read: anonymous reads allowed.
    #[serde(default)]
    pub public_read: bool,
    /// The website configuration, when the bucket is served as a website.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<WebsiteInfo>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct WebsiteInfo {
    pub index_document: String,
    pub error_document: Option<String>,
}

/// `POST /v1/buckets/{name}/allow` and `/deny`: give a key permissions on a bucket, or take
/// them away. A deny that names no permission takes them all (read, write, owner): an
/// operator who denies a key means it to lose its access. An allow that names none is
/// refused rather than done as nothing.
async fn set_grant(shard: &Rc<Gateway>, name: &str, set: bool, body: &[u8]) -> Answer {
    let Ok(mut request) = serde_json::from_slice::<Allow>(body) else {
        return fail(400, "expected {\"key\", \"read\", \"write\", \"owner\"}");
    };
    if !(request.read || request.write || request.owner) {
        if set {
            return fail(400, "name the permissions to give: read, write, owner");
        }
        (request.read, request.write, request.owner) = (true, true, true);
    }
    if shard.global.borrow().key(&request.key).is_none() {
        return fail(404, "no such key");
    }
    let permissions = request.permissions();
    let key = request.key;
    let edit = match set {
        true => BucketEdit::Grant { key, permissions },
        false => BucketEdit::Deny { key, permissions },
    };
    edit_bucket(shard, name, edit).await
}

/// `POST /v1/buckets/{name}/website`: serve the bucket as a website (`allow`) or stop.
#[derive(Deserialize)]
struct SetWebsite {
    allow: bool,
    #[serde(default)]
    index_document: Option<String>,
    #[serde(default)]
    error_document: Option<String>,
}

#[derive(Deserialize)]
struct CreateKey {
    name: String,
    #[serde(default)]
    create_bucket: bool,
}

#[derive(Deserialize)]
struct CreateBucket {
    name: String,
    /// Access key id that becomes the owner (optional).
    owner: Option<String>,
}

#[derive(Deserialize)]
struct Allow {
    key: String,
    #[serde(default)]
    read: bool,
    #[serde(default)]
    write: bool,
    #[serde(default)]
    owner: bool,
}

impl Allow {
    /// The permissions the request names.
    fn permissions(&self) -> Permissions {
        Permissions {
            read: self.read,
            write: self.write,
            owner: self.owner,
        }
    }
}

pub type Answer = (u16, String);

fn ok<T: Serialize>(value: &T) -> Answer {
    (
        200,
        serde_json::to_string(value).expect("admin values serialize"),
    )
}

fn fail(status: u16, message: &str) -> Answer {
    (status, error_json(message))
}

fn key_info(shard: &Gateway, key: &KeyRow, with_secret: bool) -> KeyInfo {
    let global = shard.global.borrow();
    let buckets = global
        .buckets()
        .filter_map(|b| {
            b.grants
                .iter()
                .find(|(id, _)| *id == key.access_key_id)
                .map(|(_, p)| Grant {
                    name: b.name.clone(),
                    read: p.read,
                    write: p.write,
                    owner: p.owner,
                })
        })
        .collect();
    KeyInfo {
        access_key_id: key.access_key_id.clone(),
        name: key.name.clone(),
        created_ms: key.created_ms,
        create_bucket: key.create_bucket,
        secret_access_key: with_secret.then(|| key.secret_access_key.clone()),
        buckets,
    }
}

fn bucket_info(bucket: &BucketRow) -> BucketInfo {
    BucketInfo {
        name: bucket.name.clone(),
        id: hex::encode(bucket.id.0),
        created_ms: bucket.created_ms,
        keys: bucket
            .grants
            .iter()
            .map(|(id, p)| Grant {
                name: id.clone(),
                read: p.read,
                write: p.write,
                owner: p.owner,
            })
            .collect(),
        website: bucket.website.as_ref().map(|w| WebsiteInfo {
            index_document: w.index_suffix.clone(),
            error_document: w.error_document.clone(),
        }),
        public_read: bucket.public_read,
    }
}

/// The stamp of a view the admin API makes: shard 0 stamps the change when it stores it
/// (`global::put_key`), so the view's own stamp is only what was read.
fn stamp(shard: &Gateway, previous: Option<Stamp>) -> Stamp {
    previous.unwrap_or_else(|| shard.clock.stamp())
}

/// Edits a live bucket's row through shard 0 (404 if there is none).
async fn edit_bucket(shard: &Gateway, name: &str, edit: BucketEdit) -> Answer {
    bucket_answer(name, bucket::edit_bucket(shard, name, edit).await.map(Some))
}

/// The bucket as a change left it (`None`: deleted), or the S3 error's status and message.
fn bucket_answer(name: &str, changed: Result<Option<BucketRow>, S3Error>) -> Answer {
    match changed {
        Ok(Some(row)) => ok(&bucket_info(&row)),
        Ok(None) => ok(&serde_json::json!({ "deleted": name })),
        Err(e) => fail(e.status(), &e.message()),
    }
}

pub async fn handle(shard: &Rc<Gateway>, method: &str, path: &str, body: &[u8]) -> Answer {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["v1", "keys"]) => {
            let keys: Vec<KeyRow> = shard.global.borrow().keys().cloned().collect();
            let infos: Vec<KeyInfo> = keys.iter().map(|k| key_info(shard, k, false)).collect();
            ok(&infos)
        }
        ("POST", ["v1", "keys"]) => {
            let Ok(request) = serde_json::from_slice::<CreateKey>(body) else {
                return fail(400, "expected {\"name\": ..., \"create_bucket\": bool}");
            };
            let row = KeyRow {
                access_key_id: format!("GR{}", hex::encode_upper(rand::random::<[u8; 9]>())),
                secret_access_key: hex::encode(rand::random::<[u8; 20]>()),
                name: request.name,
                created_ms: now_ms(),
                stamp: stamp(shard, None),
                deleted: false,
                create_bucket: request.create_bucket,
            };
            match shard
                .call(DataRequest::PutKey { row: row.clone() })
                .await
                .done()
            {
                Ok(()) => ok(&key_info(shard, &row, true)),
                Err(e) => fail(500, &format!("{e:?}")),
            }
        }
        ("GET", ["v1", "keys", id]) => {
            let key = shard.global.borrow().key(id).cloned();
            match key {
                Some(key) => ok(&key_info(shard, &key, true)),
                None => fail(404, "no such key"),
            }
        }
        ("DELETE", ["v1", "keys", id]) => delete_key(shard, id).await,
        ("GET", ["v1", "buckets"]) => {
            let infos: Vec<BucketInfo> = shard.global.borrow().buckets().map(bucket_info).collect();
            ok(&infos)
        }
        ("POST", ["v1", "buckets"]) => {
            let Ok(request) = serde_json::from_slice::<CreateBucket>(body) else {
                return fail(400, "expected {\"name\": ..., \"owner\": access key id?}");
            };
            if !bucket::valid_bucket_name(&request.name) {
                return fail(400, "not a valid bucket name");
            }
            if let Some(owner) = &request.owner {
                if shard.global.borrow().key(owner).is_none() {
                    return fail(404, "no such key");
                }
            }
            let owner = request.owner.as_deref();
            let created = bucket::create_bucket(shard, &request.name, owner, false, None).await;
            bucket_answer(&request.name, created.map(Some))
        }
        ("GET", ["v1", "buckets", name]) => match shard.global.borrow().bucket(name) {
            Some(b) => ok(&bucket_info(b)),
            None => fail(404, "no such bucket"),
        },
        ("DELETE", ["v1", "buckets", name]) => {
            let bucket = shard.global.borrow().bucket(name).cloned();
            let Some(row) = bucket else {
                return fail(404, "no such bucket");
            };
            match bucket::delete_empty_bucket(shard, &row).await {
                Ok(()) => ok(&serde_json::json!({ "deleted": name })),
                Err(S3Error::BucketNotEmpty) => fail(409, "the bucket is not empty"),
                Err(e) => fail(e.status(), &e.message()),
            }
        }
        ("POST", ["v1", "buckets", name, action @ ("allow" | "deny")]) => {
            set_grant(shard, name, *action == "allow", body).await
        }
        ("POST", ["v1", "buckets", name, "website"]) => set_website(shard, name, body).await,
        _ => fail(404, "no such admin endpoint"),
    }
}

/// `DELETE /v1/keys/{id}`: the key's grants first, then the key.
async fn delete_key(shard: &Gateway, id: &str) -> Answer {
    let key = shard.global.borrow().key(id).cloned();
    let Some(mut row) = key else {
        return fail(404, "no such key");
    };
    if let Err(e) = revoke_everywhere(shard, id).await {
        return fail(e.status(), &e.message());
    }
    row.deleted = true;
    row.stamp = stamp(shard, Some(row.stamp));
    match shard.call(DataRequest::PutKey { row }).await.done() {
        Ok(()) => ok(&serde_json::json!({ "deleted": id })),
        Err(e) => fail(500, &format!("{e:?}")),
    }
}

/// Removes every grant of a key from every bucket (before the key itself goes, so that
/// a failure leaves a key without grants rather than grants of no key, listed by
/// `bucket info` and GetBucketAcl).
async fn revoke_everywhere(shard: &Gateway, access_key_id: &str) -> Result<(), S3Error> {
    let granted: Vec<String> = shard
        .global
        .borrow()
        .buckets()
        .filter(|b| b.grants.iter().any(|(id, _)| id == access_key_id))
        .map(|b| b.name.clone())
        .collect();
    for name in granted {
        let id = access_key_id.to_string();
        let every = Permissions {
            read: true,
            write: true,
            owner: true,
        };
        let edit = BucketEdit::Deny {
            key: id,
            permissions: every,
        };
        match bucket::edit_bucket(shard, &name, edit).await {
            // Deleted meanwhile: its grants went with it.
            Ok(_) | Err(S3Error::NoSuchBucket) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `POST /v1/buckets/{name}/website`: serve the bucket as a website, or stop.
async fn set_website(shard: &Rc<Gateway>, name: &str, body: &[u8]) -> Answer {
    let Ok(request) = serde_json::from_slice::<SetWebsite>(body) else {
        return fail(
            400,
            "expected {\"allow\": bool, \"index_document\"?, \"error_document\"?}",
        );
    };
    let index_suffix = request
        .index_document
        .unwrap_or_else(|| "index.html".into());
    if index_suffix.is_empty() || index_suffix.contains('/') {
        return fail(400, "the index document must be a name without '/'");
    }
    if request.error_document.as_deref() == Some("") {
        return fail(400, "the error document must be a key");
    }
    let website = request.allow.then_some(WebsiteConfig {
        index_suffix,
        error_document: request.error_document,
        redirect_all: None,
    });
    edit_bucket(shard, name, BucketEdit::SetWebsite(website)).await
}
