//! Accepting connections, and handing each to the shard that serves the fewest.

use std::rc::Rc;
use std::time::Duration;

use super::message::{Control, Message, Reply};
use crate::api::{conn, Gateway};
use crate::runtime::mesh::Mesh;

/// Accepts connections until the node stops.
///
/// The accept loop runs in a task of its own, woken only by the listener. Polling a pending
/// glommio accept again (as `or(accept, stop_timer)` did every 20 ms) adds one more waker
/// to its source each time; after about 11 idle minutes the task's reference count
/// overflowed and the shard panicked. The stop is watched here and the loop cancelled.
///
/// Every shard listens on the same port (`SO_REUSEPORT`), and the kernel spreads
/// connections by a hash of their addresses: 16 connections came as 14 on one shard and 2
/// on the other in one measured run, leaving a core idle under a large upload. So a shard
/// that serves more connections than another hands the new one to the least busy shard.
pub async fn accept_until_stopped(
    shard: &Rc<Gateway>,
    mesh: &Rc<Mesh<Message, Reply>>,
    listener: glommio::net::TcpListener,
    kind: conn::Listener,
) {
    let accepting = {
        let shard = Rc::clone(shard);
        let mesh = Rc::clone(mesh);
        glommio::spawn_local(async move {
            loop {
                match listener.shared_accept().await {
                    Ok(accepted) => {
                        if shard.connections.served() >= shard.config.limits.max_connections {
                            let tcp = accepted.bind_to_executor();
                            glommio::spawn_local(conn::refuse(Rc::clone(&shard), tcp)).detach();
                            continue;
                        }
                        let target = shard.connections.target(shard.id);
                        let conn = Handoff {
                            stream: accepted,
                            kind,
                        };
                        if target == shard.id {
                            conn.serve(&shard);
                        } else {
                            let mesh = Rc::clone(&mesh);
                            let connections = std::sync::Arc::clone(&shard.connections);
                            glommio::spawn_local(async move {
                                let message = Message::Control(Control::Adopt(conn));
                                let reply = mesh.call(usize::from(target), message).await;
                                if !matches!(reply, Ok(Reply::Adopted(true))) {
                                    tracing::warn!(target, "handing a connection over: {reply:?}");
                                    connections.closed(target);
                                }
                            })
                            .detach();
                        }
                    }
                    Err(e) => {
                        tracing::warn!(shard = shard.id, "accept failed: {e}");
                        glommio::timer::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        })
    };
    shard.life.until_stopping().await;
    accepting.cancel().await;
}

/// An accepted connection on its way to the shard that serves it (`DataRequest::Adopt`).
pub struct Handoff {
    stream: glommio::net::AcceptedTcpStream,
    kind: conn::Listener,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Handoff({:?})", self.kind)
    }
}

impl Handoff {
    /// Closes the connection unserved (the node is stopping).
    pub fn close(self) {
        drop(self.stream.bind_to_executor());
    }

    /// Serves the connection on the current shard (which `Connections::target` chose).
    pub fn serve(self, shard: &Rc<Gateway>) {
        let stream = self.stream.bind_to_executor();
        let (shard, kind) = (Rc::clone(shard), self.kind);
        glommio::spawn_local(async move {
            let id = shard.id;
            let connections = std::sync::Arc::clone(&shard.connections);
            conn::serve(shard, stream, kind).await;
            connections.closed(id);
        })
        .detach();
    }
}

/// Serves a connection another shard accepted; false (and closed) if the node is stopping.
pub fn adopt(gateway: &Rc<Gateway>, conn: Handoff) -> bool {
    if gateway.life.stopping() {
        conn.close();
        return false;
    }
    conn.serve(gateway);
    true
}
