//! What travels on the mesh between the shards of a node: operations on data (`model`'s
//! requests, which could as well cross a network) and local control, which cannot (a
//! connection to adopt, a snapshot with this process's counters).

use std::rc::Rc;

use futures::future::LocalBoxFuture;

use super::accept::{self, Handoff};
use crate::api::metrics::ShardStats;
use crate::api::{Gateway, ShardControl};
use crate::model::ops::{DataError, DataRequest, DataResponse};
use crate::model::Peers;
use crate::runtime::mesh::Mesh;

/// A message to a shard. Data is nearly every message: it is not boxed.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Message {
    Data(DataRequest),
    Control(Control),
}

/// Local control of a shard.
#[derive(Debug)]
pub enum Control {
    /// Serve this connection, accepted by a busier shard.
    Adopt(Handoff),
    /// A snapshot of the shard's counters and storage (admin API, metrics, health).
    Stats,
}

/// A shard's answer to a [`Message`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    Data(DataResponse),
    /// Whether the connection is served (not when the node is stopping).
    Adopted(bool),
    Stats(Box<ShardStats>),
}

/// Runs a message on this shard.
pub async fn dispatch(gateway: Rc<Gateway>, message: Message) -> Reply {
    match message {
        Message::Data(request) => Reply::Data(Rc::clone(&gateway.shard).handle(request).await),
        Message::Control(Control::Adopt(conn)) => Reply::Adopted(accept::adopt(&gateway, conn)),
        Message::Control(Control::Stats) => Reply::Stats(Box::new(gateway.stats())),
    }
}

impl Peers for Mesh<Message, Reply> {
    fn call(&self, shard: u16, request: DataRequest) -> LocalBoxFuture<'_, DataResponse> {
        Box::pin(async move {
            match Mesh::call(self, usize::from(shard), Message::Data(request)).await {
                Ok(Reply::Data(response)) => response,
                Ok(other) => DataResponse::Failed(DataError::Protocol(format!(
                    "shard {shard} answered {other:?} to a data request"
                ))),
                Err(e) => DataResponse::Failed(DataError::Transport(e.to_string())),
            }
        })
    }
}

impl ShardControl for Mesh<Message, Reply> {
    fn stats(&self, shard: u16) -> LocalBoxFuture<'_, Option<ShardStats>> {
        Box::pin(async move {
            let message = Message::Control(Control::Stats);
            match Mesh::call(self, usize::from(shard), message).await {
                Ok(Reply::Stats(stats)) => Some(*stats),
                _ => None,
            }
        })
    }
}
