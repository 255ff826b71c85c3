//! Which SMB server this node runs right now, if any.
//!
//! A standalone node runs one [`Server`] for its whole life. A node of a pair runs one per
//! period of service: built when it takes over (with the durable handles imported from its
//! mirrored store), dropped when it releases the service, so nothing a former period kept
//! in memory (opens, leases, sessions) can leak into the next or write to the store after
//! the partner took over.
//!
//! Owns: the current server and the handover between periods. Never touches sockets (the
//! listener asks [`Service::current`] per accepted connection and closes it when none).

use std::sync::{Arc, Mutex, PoisonError};

use crate::smb::Server;

#[derive(Default)]
pub struct Service {
    current: Mutex<Option<Arc<Server>>>,
}

impl Service {
    /// A node that does not serve yet.
    pub fn idle() -> Arc<Service> {
        Arc::new(Service::default())
    }

    /// A standalone node: serves `server` from the start.
    pub fn standalone(server: Arc<Server>) -> Arc<Service> {
        let s = Service::idle();
        s.start(server);
        s
    }

    /// The server new connections go to; `None`: refuse them (this node does not serve).
    pub fn current(&self) -> Option<Arc<Server>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Serves `server` from now on.
    pub fn start(&self, server: Arc<Server>) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(server);
    }

    /// Stops serving: new connections are refused and every live one is told to close.
    /// Returns how many connections were told.
    pub fn stop(&self) -> usize {
        let old = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        old.map_or(0, |s| {
            s.released.store(true, std::sync::atomic::Ordering::Relaxed);
            s.shut_down_connections()
        })
    }

    pub fn is_serving(&self) -> bool {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}
