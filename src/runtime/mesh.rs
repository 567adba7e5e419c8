//! Request/response messaging between the shards of one node, over glommio's channel mesh.
//!
//! Every shard joins one full mesh of bounded SPSC channels at start-up. A call to another
//! shard sends `Envelope::Request` with an id; the receiving shard runs the handler in a task
//! of its own and sends `Envelope::Response` back through the mesh, where the caller's pending
//! table wakes the waiting future. Replies travel through the mesh (not a cross-thread
//! oneshot) so that every wake-up stays on its own executor. A call to the shard itself runs
//! the handler directly, with no message at all.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use futures::channel::oneshot;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};

/// Why a call got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MeshError {
    #[error("no shard {0} in the mesh")]
    NoSuchShard(usize),
    #[error("the mesh is closed")]
    Closed,
    #[error("the shard dropped the request unanswered")]
    Unanswered,
}

/// Messages in flight between shards.
pub enum Envelope<Req, Resp> {
    Request { id: u64, from: usize, request: Req },
    Response { id: u64, response: Resp },
}

pub type Handler<Req, Resp> = Rc<dyn Fn(Req) -> Pin<Box<dyn Future<Output = Resp>>>>;

pub type Builder<Req, Resp> = MeshBuilder<Envelope<Req, Resp>, Full>;

/// Capacity of each shard-to-shard channel. A full channel makes the sender wait: the
/// backpressure of a slow shard reaches the connections that load it.
pub const MESH_CHANNEL_CAPACITY: usize = 1024;

pub fn builder<Req: Send + 'static, Resp: Send + 'static>(shards: usize) -> Builder<Req, Resp> {
    MeshBuilder::full(shards, MESH_CHANNEL_CAPACITY)
}

/// One shard's end of the mesh.
pub struct Mesh<Req: Send + 'static, Resp: Send + 'static> {
    senders: Senders<Envelope<Req, Resp>>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Resp>>>,
    next_id: Cell<u64>,
    handler: RefCell<Option<Handler<Req, Resp>>>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Mesh<Req, Resp> {
    /// Joins the mesh (waits until every shard has joined) and starts the receive loops.
    /// The handler is installed later with `set_handler`, once the shard's state exists;
    /// requests that arrive before wait for it.
    pub async fn join(builder: Builder<Req, Resp>) -> Rc<Self> {
        let (senders, mut receivers) = builder.join().await.expect("the channel mesh forms");
        let mesh = Rc::new(Self {
            senders,
            pending: RefCell::new(HashMap::new()),
            next_id: Cell::new(1),
            handler: RefCell::new(None),
        });
        Self::spawn_receivers(&mesh, &mut receivers);
        mesh
    }

    pub fn set_handler(&self, handler: Handler<Req, Resp>) {
        *self.handler.borrow_mut() = Some(handler);
    }

    /// This shard's index in the mesh.
    pub fn me(&self) -> usize {
        self.senders.peer_id()
    }

    pub fn shards(&self) -> usize {
        self.senders.nr_consumers()
    }

    fn spawn_receivers(mesh: &Rc<Self>, receivers: &mut Receivers<Envelope<Req, Resp>>) {
        for (_peer, stream) in receivers.streams() {
            let mesh = Rc::clone(mesh);
            glommio::spawn_local(async move {
                while let Some(envelope) = stream.recv().await {
                    mesh.handle_envelope(envelope).await;
                }
            })
            .detach();
        }
    }

    async fn handle_envelope(self: &Rc<Self>, envelope: Envelope<Req, Resp>) {
        match envelope {
            Envelope::Request { id, from, request } => {
                let mesh = Rc::clone(self);
                glommio::spawn_local(async move {
                    let response = mesh.run_handler(request).await;
                    let reply = Envelope::Response { id, response };
                    if mesh.senders.send_to(from, reply).await.is_err() {
                        tracing::warn!(from, "shard mesh closed before a reply could be sent");
                    }
                })
                .detach();
            }
            Envelope::Response { id, response } => {
                let waiter = self.pending.borrow_mut().remove(&id);
                match waiter {
                    // The caller may have given up (its connection closed): drop the reply.
                    Some(waiter) => drop(waiter.send(response)),
                    None => tracing::warn!(id, "reply for an unknown request"),
                }
            }
        }
    }

    async fn run_handler(&self, request: Req) -> Resp {
        loop {
            let handler = self.handler.borrow().clone();
            if let Some(handler) = handler {
                return handler(request).await;
            }
            // Start-up only: a peer is faster than this shard at installing its handler.
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Sends `request` to `shard` and waits for its reply.
    pub async fn call(&self, shard: usize, request: Req) -> Result<Resp, MeshError> {
        if shard >= self.shards() {
            return Err(MeshError::NoSuchShard(shard));
        }
        if shard == self.me() {
            return Ok(self.run_handler(request).await);
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        let envelope = Envelope::Request {
            id,
            from: self.me(),
            request,
        };
        if self.senders.send_to(shard, envelope).await.is_err() {
            self.pending.borrow_mut().remove(&id);
            return Err(MeshError::Closed);
        }
        rx.await.map_err(|_| MeshError::Unanswered)
    }
}
