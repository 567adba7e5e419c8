//! The administrator key, made on first start.

use std::rc::Rc;

use crate::meta::types::{KeyRow, Stamp};
use crate::model::ops::DataRequest;
use crate::model::{now_ms, Shard};

/// On first start, creates the administrator key: from `GRANARY_ROOT_ACCESS_KEY_ID` and
/// `GRANARY_ROOT_SECRET_ACCESS_KEY` when both are set, otherwise generated and printed once.
pub async fn ensure_root_key(shard: &Rc<Shard>) -> anyhow::Result<()> {
    if shard.global.borrow().keys().next().is_some() {
        return Ok(());
    }
    let from_env = (
        std::env::var("GRANARY_ROOT_ACCESS_KEY_ID")
            .ok()
            .filter(|v| !v.is_empty()),
        std::env::var("GRANARY_ROOT_SECRET_ACCESS_KEY")
            .ok()
            .filter(|v| !v.is_empty()),
    );
    let (access_key_id, secret_access_key, generated) = match from_env {
        (Some(id), Some(secret)) => (id, secret, false),
        _ => (generate_access_key_id(), generate_secret(), true),
    };
    let row = KeyRow {
        access_key_id: access_key_id.clone(),
        secret_access_key: secret_access_key.clone(),
        name: "root".into(),
        created_ms: now_ms(),
        stamp: Stamp::ZERO,
        deleted: false,
        create_bucket: true,
    };
    shard
        .call_on(0, DataRequest::PutKey { row })
        .await
        .done()
        .map_err(|e| anyhow::anyhow!("storing the root key: {e:?}"))?;
    if generated {
        let endpoint = format!("http://{}", shard.config.s3_addr);
        println!(
            "\nGranary created an administrator access key. It is printed this once: keep it.\n\
             \n    Access key ID:     {access_key_id}\n    Secret access key: {secret_access_key}\n\
             \nTo use it with the AWS CLI:\n\
             \n    aws configure set aws_access_key_id {access_key_id}\
             \n    aws configure set aws_secret_access_key {secret_access_key}\
             \n    aws configure set region {}\
             \n    aws --endpoint-url {endpoint} s3 mb s3://my-bucket\n",
            shard.config.s3_region
        );
    } else {
        tracing::info!(
            access_key_id,
            "created the administrator key from the environment"
        );
    }
    Ok(())
}

fn random_chars(alphabet: &[u8], n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect()
}

fn generate_access_key_id() -> String {
    format!(
        "GR{}",
        random_chars(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 18)
    )
}

fn generate_secret() -> String {
    random_chars(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        40,
    )
}
