//! The typed API of the durable-handle state: durable opens, sessions and client
//! connections. Every write goes through the group commit (`writer`) and returns once it is
//! durable, with the sequence number of its change-feed entry.
//!
//! Owns nothing on disk of its own (tables and records are `store`'s and `records`'); must
//! never write around the change feed.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::{ChangeKind, ClientConnection, DurableOpen, SessionRecord};
use crate::writer::{Op, Outcome};
use crate::{Store, StoreError};

/// The current wall-clock time in milliseconds since the Unix epoch: the unit of every time
/// stored with durable handles.
pub fn unix_time_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Maps "nothing to remove" to `None`.
fn removed(result: Result<u64, StoreError>) -> Result<Option<u64>, StoreError> {
    match result {
        Ok(seq) => Ok(Some(seq)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn opens(outcome: Outcome) -> Vec<DurableOpen> {
    match outcome {
        Outcome::Opens(opens) => opens,
        Outcome::Seqs(_) => Vec::new(),
    }
}

impl Store {
    // ---- durable opens ----

    /// Creates or replaces a durable open (key: `persistent_id`); returns once it is durable,
    /// with the change's sequence number. Call it before the response that grants or changes
    /// the open leaves the server.
    pub fn put_durable_open(&self, open: &DurableOpen) -> Result<u64, StoreError> {
        self.submit(&ChangeKind::DurableOpenPut {
            open: Box::new(open.clone()),
        })
    }

    /// The durable open with this persistent id.
    pub fn durable_open(&self, persistent_id: u64) -> Result<Option<DurableOpen>, StoreError> {
        self.read_open(persistent_id)
    }

    /// Removes a durable open (closed, or replaced by a conflicting open); `None` if there
    /// was none with this id (nothing is recorded then).
    pub fn remove_durable_open(&self, persistent_id: u64) -> Result<Option<u64>, StoreError> {
        removed(self.submit(&ChangeKind::DurableOpenRemoved { persistent_id }))
    }

    /// Every durable open, ordered by persistent id.
    pub fn list_durable_opens(&self) -> Result<Vec<DurableOpen>, StoreError> {
        self.read_opens()
    }

    /// The durable opens that have lost their connection (`disconnected_at_ms` set), ordered
    /// by persistent id. They must keep blocking conflicting opens until they expire.
    pub fn durable_opens_disconnected(&self) -> Result<Vec<DurableOpen>, StoreError> {
        let mut opens = self.read_opens()?;
        opens.retain(|o| o.disconnected_at_ms.is_some());
        Ok(opens)
    }

    /// Removes every disconnected durable open whose timeout has run out at `now_ms`
    /// (milliseconds since the Unix epoch), in one transaction with one change each, and
    /// returns them. The scavenger's call.
    pub fn expire_durable_opens(&self, now_ms: u64) -> Result<Vec<DurableOpen>, StoreError> {
        self.run_op(Op::ExpireOpens { now_ms }).map(opens)
    }

    /// Marks every durable open that is still recorded as connected as disconnected at
    /// `now_ms`, in one transaction with one change each, and returns them as changed. The
    /// startup call: after a crash or a takeover no open has a connection any more, and each
    /// one's timeout starts now.
    pub fn disconnect_durable_opens(&self, now_ms: u64) -> Result<Vec<DurableOpen>, StoreError> {
        self.run_op(Op::DisconnectOpens { now_ms }).map(opens)
    }

    // ---- sessions ----

    /// Creates or replaces a session record (key: `session_id`); returns once durable.
    pub fn put_session(&self, session: &SessionRecord) -> Result<u64, StoreError> {
        self.submit(&ChangeKind::SessionPut {
            session: session.clone(),
        })
    }

    /// The session with this id.
    pub fn session(&self, session_id: u64) -> Result<Option<SessionRecord>, StoreError> {
        self.read_session(session_id)
    }

    /// Removes a session record; `None` if there was none.
    pub fn remove_session(&self, session_id: u64) -> Result<Option<u64>, StoreError> {
        removed(self.submit(&ChangeKind::SessionRemoved { session_id }))
    }

    /// Every session record, ordered by session id.
    pub fn list_sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        self.read_sessions()
    }

    // ---- client connections ----

    /// Creates or replaces a client connection record (key: `id`); returns once durable.
    pub fn put_client_connection(&self, connection: &ClientConnection) -> Result<u64, StoreError> {
        self.submit(&ChangeKind::ClientConnectionPut {
            connection: connection.clone(),
        })
    }

    /// The client connection with this id.
    pub fn client_connection(&self, id: u64) -> Result<Option<ClientConnection>, StoreError> {
        self.read_connection(id)
    }

    /// Removes a client connection record; `None` if there was none.
    pub fn remove_client_connection(&self, id: u64) -> Result<Option<u64>, StoreError> {
        removed(self.submit(&ChangeKind::ClientConnectionRemoved { id }))
    }

    /// Every client connection record, ordered by id.
    pub fn list_client_connections(&self) -> Result<Vec<ClientConnection>, StoreError> {
        self.read_connections()
    }
}
