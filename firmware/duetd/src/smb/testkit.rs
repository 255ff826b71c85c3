//! Test-only: drives the protocol core in process. A [`Kit`] is a server with one share
//! (a temporary directory) and connections with a valid session and tree connect already
//! in place, so tests send CREATE, CLOSE, SET_INFO and QUERY_DIRECTORY requests built by
//! hand and read the responses from the outbox.

use std::collections::HashMap;
use std::sync::Arc;

use duet_hal::fs::ShareRoot;

use super::{session, Conn, FileId, Outbox, Server, ServerConfig, Session, Tree, TreeKind};
use crate::wire::{Command, PutLe, HEADER_LEN};

const SESSION_ID: u64 = 0x77;
const TREE_ID: u32 = 5;

pub struct Kit {
    pub server: Arc<Server>,
    pub root: Arc<ShareRoot>,
    pub dir: tempfile::TempDir,
    _state: tempfile::TempDir,
}

/// One connection of a [`Kit`].
pub struct Client {
    pub conn: Conn,
    rx: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    mid: u64,
    pub session_id: u64,
}

/// What a CREATE request asks.
#[derive(Clone, Debug)]
pub struct CreateArgs {
    pub name: String,
    pub desired: u32,
    pub attributes: u32,
    pub share: u32,
    pub disposition: u32,
    pub options: u32,
}

impl CreateArgs {
    /// Open or create `name` with full access, every share mode, no options.
    pub fn new(name: &str) -> CreateArgs {
        CreateArgs {
            name: name.into(),
            desired: 0x001F_01FF,
            attributes: 0,
            share: 7,
            disposition: 3,
            options: 0,
        }
    }
}

/// The parts of a successful CREATE response tests look at.
#[derive(Clone, Copy, Debug)]
pub struct Created {
    pub fid: FileId,
    pub action: u32,
    pub attributes: u32,
}

impl Kit {
    pub fn new() -> Kit {
        Kit::with_config(|_| {})
    }

    /// A kit whose server configuration `tune` adjusts first.
    pub fn with_config(tune: impl FnOnce(&mut ServerConfig)) -> Kit {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(duet_state::Store::open(state.path()).expect("store"));
        // The share the kit's tree connects to, as the store knows it (durable handles
        // are restored by share name).
        store
            .add_share(&duet_state::ShareConfig {
                name: "share".into(),
                path: dir.path().to_path_buf(),
                comment: String::new(),
                read_only: false,
            })
            .expect("share");
        let mut cfg = ServerConfig {
            signing_required: false,
            ..Default::default()
        };
        tune(&mut cfg);
        let server = Server::new(cfg, store);
        let root = Arc::new(ShareRoot::open(dir.path()).expect("share root"));
        Kit {
            server,
            root,
            dir,
            _state: state,
        }
    }

    /// A new connection with its session and tree connect.
    pub fn client(&self) -> Client {
        self.client_with_session(SESSION_ID)
    }

    /// Like [`Kit::client`], with session id `session_id`, entered in the server's session
    /// table as a logon does (durable-handle tests tell live sessions from gone ones).
    pub fn client_in_session(&self, session_id: u64) -> Client {
        let c = self.client_with_session(session_id);
        if let Ok(mut reg) = self.server.sessions.lock() {
            reg.insert(
                session_id,
                session::GlobalSession {
                    conn_id: c.conn.id,
                    user: "tester".into(),
                    signer: Arc::new(duet_auth::Signer::new(
                        duet_auth::SigningAlgorithm::AesCmac,
                        [0; 16],
                    )),
                    dialect: super::DIALECT_311,
                    signing_algorithm: duet_auth::SigningAlgorithm::AesCmac,
                    cipher: None,
                    client_guid: c.conn.neg.client_guid,
                    channels: vec![(c.conn.id, c.conn.outbox.clone())],
                    encryption: None,
                },
            );
        }
        c
    }

    fn client_with_session(&self, session_id: u64) -> Client {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let addr = "127.0.0.1:445".parse().expect("addr");
        let mut conn = Conn::new(self.server.clone(), addr, addr, Outbox::new(tx));
        conn.neg.done = true;
        conn.neg.dialect = super::DIALECT_311;
        let mut trees = HashMap::new();
        trees.insert(
            TREE_ID,
            Tree {
                id: TREE_ID,
                share_name: "share".into(),
                kind: TreeKind::Disk {
                    root: self.root.clone(),
                    read_only: false,
                    stable_writes: false,
                },
                maximal_access: 0x001F_01FF,
            },
        );
        conn.sessions.insert(
            session_id,
            Session {
                id: session_id,
                state: session::SessionState::Valid,
                user: "tester".into(),
                domain: String::new(),
                signer: None,
                signing_required: false,
                encryption: None,
                preauth: None,
                trees,
                next_tree_id: TREE_ID + 1,
            },
        );
        Client {
            conn,
            rx,
            mid: 0,
            session_id,
        }
    }

    pub fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    /// The daemon dies and starts again on the same share and state directory: a new
    /// server on the reopened store, with its recorded durable handles restored. Every
    /// client of the old server must be gone (dropped) first.
    pub fn restart(self) -> Kit {
        let Kit {
            server,
            root,
            dir,
            _state,
        } = self;
        let cfg = server.cfg.clone();
        drop(root);
        assert_eq!(
            Arc::strong_count(&server),
            1,
            "a client of the old server is alive"
        );
        drop(server);
        let store = Arc::new(duet_state::Store::open(_state.path()).expect("store"));
        let server = Server::new(cfg, store);
        super::durable::restore(&server).expect("restore");
        let root = server
            .roots
            .lock()
            .expect("roots")
            .get(dir.path())
            .cloned()
            .unwrap_or_else(|| Arc::new(ShareRoot::open(dir.path()).expect("share root")));
        server
            .roots
            .lock()
            .expect("roots")
            .insert(dir.path().to_path_buf(), root.clone());
        Kit {
            server,
            root,
            dir,
            _state,
        }
    }
}

/// A CREATE request body with an oplock level and create contexts (name, data).
pub fn create_body(a: &CreateArgs, oplock: u8, contexts: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let name = utf16(&a.name);
    let mut b = Vec::new();
    b.put_u16(57);
    b.put_u8(0);
    b.put_u8(oplock);
    b.put_u32(2);
    b.put_u64(0);
    b.put_u64(0);
    b.put_u32(a.desired);
    b.put_u32(a.attributes);
    b.put_u32(a.share);
    b.put_u32(a.disposition);
    b.put_u32(a.options);
    b.put_u16((HEADER_LEN + 56) as u16);
    b.put_u16(name.len() as u16);
    let ctx_at = b.len();
    b.put_u32(0);
    b.put_u32(0);
    b.extend_from_slice(&name);
    if !contexts.is_empty() {
        while !b.len().is_multiple_of(8) {
            b.push(0);
        }
        let start = b.len();
        let mut prev: Option<usize> = None;
        for (cname, data) in contexts {
            while !b.len().is_multiple_of(8) {
                b.push(0);
            }
            let here = b.len();
            if let Some(p) = prev {
                let next = (here - p) as u32;
                b[p..p + 4].copy_from_slice(&next.to_le_bytes());
            }
            b.put_u32(0);
            b.put_u16(16);
            b.put_u16(cname.len() as u16);
            b.put_u16(0);
            let data_off = (16 + cname.len()).div_ceil(8) * 8;
            b.put_u16(if data.is_empty() { 0 } else { data_off as u16 });
            b.put_u32(data.len() as u32);
            b.extend_from_slice(cname);
            while b.len() - here < data_off {
                b.push(0);
            }
            b.extend_from_slice(data);
            prev = Some(here);
        }
        let off = (HEADER_LEN + start) as u32;
        let len = (b.len() - start) as u32;
        b[ctx_at..ctx_at + 4].copy_from_slice(&off.to_le_bytes());
        b[ctx_at + 4..ctx_at + 8].copy_from_slice(&len.to_le_bytes());
    } else if name.is_empty() {
        b.push(0);
    }
    b
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

impl Client {
    /// Sends one request; returns the response's status and body.
    pub fn request(&mut self, cmd: Command, body: &[u8]) -> (u32, Vec<u8>) {
        let mut msg = vec![0u8; HEADER_LEN];
        msg[0..4].copy_from_slice(&[0xFE, b'S', b'M', b'B']);
        msg[4..6].copy_from_slice(&64u16.to_le_bytes());
        msg[6..8].copy_from_slice(&1u16.to_le_bytes());
        msg[12..14].copy_from_slice(&(cmd as u16).to_le_bytes());
        msg[14..16].copy_from_slice(&64u16.to_le_bytes());
        msg[24..32].copy_from_slice(&self.mid.to_le_bytes());
        msg[36..40].copy_from_slice(&TREE_ID.to_le_bytes());
        msg[40..48].copy_from_slice(&self.session_id.to_le_bytes());
        self.mid += 1;
        msg.extend_from_slice(body);
        self.conn.handle_frame(&msg);
        let resp = self.next_message().expect("a response");
        let st = u32::from_le_bytes(resp[8..12].try_into().expect("status"));
        (st, resp[HEADER_LEN..].to_vec())
    }

    /// The next message the connection sent, after the state-store commits it waited for
    /// (durable handles) are done.
    pub fn next_message(&mut self) -> Option<Vec<u8>> {
        loop {
            let m = self.rx.try_recv().ok()?;
            if !m.is_empty() {
                return Some(m);
            }
            self.conn.outbox.wait_marker().expect("commit");
        }
    }

    /// Sends a frame as built (a compound chain, say); returns what the server sent back.
    pub fn frame(&mut self, frame: &[u8]) -> Vec<u8> {
        self.conn.handle_frame(frame);
        self.rx.try_recv().expect("a response")
    }

    /// A request header (no body) for `cmd` with the next message id, on the kit's session
    /// and tree.
    pub fn header(&mut self, cmd: Command) -> Vec<u8> {
        let mut msg = vec![0u8; HEADER_LEN];
        msg[0..4].copy_from_slice(&[0xFE, b'S', b'M', b'B']);
        msg[4..6].copy_from_slice(&64u16.to_le_bytes());
        msg[6..8].copy_from_slice(&1u16.to_le_bytes());
        msg[12..14].copy_from_slice(&(cmd as u16).to_le_bytes());
        msg[14..16].copy_from_slice(&64u16.to_le_bytes());
        msg[24..32].copy_from_slice(&self.mid.to_le_bytes());
        msg[36..40].copy_from_slice(&TREE_ID.to_le_bytes());
        msg[40..48].copy_from_slice(&self.session_id.to_le_bytes());
        self.mid += 1;
        msg
    }

    pub fn create(&mut self, a: &CreateArgs) -> Result<Created, u32> {
        let name = utf16(&a.name);
        let mut b = Vec::new();
        b.put_u16(57);
        b.put_u8(0);
        b.put_u8(0); // oplock
        b.put_u32(2); // impersonation
        b.put_u64(0);
        b.put_u64(0);
        b.put_u32(a.desired);
        b.put_u32(a.attributes);
        b.put_u32(a.share);
        b.put_u32(a.disposition);
        b.put_u32(a.options);
        b.put_u16((HEADER_LEN + 56) as u16);
        b.put_u16(name.len() as u16);
        b.put_u32(0);
        b.put_u32(0);
        b.extend_from_slice(&name);
        if name.is_empty() {
            b.push(0);
        }
        let (st, body) = self.request(Command::Create, &b);
        if st != 0 {
            return Err(st);
        }
        let u32_at = |o: usize| u32::from_le_bytes(body[o..o + 4].try_into().expect("u32"));
        let u64_at = |o: usize| u64::from_le_bytes(body[o..o + 8].try_into().expect("u64"));
        Ok(Created {
            fid: FileId {
                persistent: u64_at(64),
                volatile: u64_at(72),
            },
            action: u32_at(4),
            attributes: u32_at(56),
        })
    }

    /// A CREATE with an oplock level, create contexts (name, data) and header flags;
    /// returns the status and the response body.
    pub fn create_ex(
        &mut self,
        a: &CreateArgs,
        oplock: u8,
        contexts: &[(&[u8], Vec<u8>)],
        flags: u32,
    ) -> (u32, Vec<u8>) {
        let b = create_body(a, oplock, contexts);
        self.request_flags(Command::Create, &b, flags)
    }

    /// [`Client::request`] with header flags.
    pub fn request_flags(&mut self, cmd: Command, body: &[u8], flags: u32) -> (u32, Vec<u8>) {
        let mut msg = self.header(cmd);
        msg[16..20].copy_from_slice(&flags.to_le_bytes());
        msg.extend_from_slice(body);
        self.conn.handle_frame(&msg);
        let resp = self.next_message().expect("a response");
        let st = u32::from_le_bytes(resp[8..12].try_into().expect("status"));
        (st, resp[HEADER_LEN..].to_vec())
    }

    /// WRITE `data` at `offset`.
    pub fn write(&mut self, fid: FileId, offset: u64, data: &[u8]) -> u32 {
        let mut b = Vec::new();
        b.put_u16(49);
        b.put_u16((HEADER_LEN + 48) as u16);
        b.put_u32(data.len() as u32);
        b.put_u64(offset);
        fid.put(&mut b);
        b.put_u32(0);
        b.put_u32(0);
        b.put_u16(0);
        b.put_u16(0);
        b.put_u32(0);
        b.extend_from_slice(data);
        self.request(Command::Write, &b).0
    }

    /// READ `len` bytes at `offset`: the status and the data.
    pub fn read(&mut self, fid: FileId, offset: u64, len: u32) -> (u32, Vec<u8>) {
        let mut b = Vec::new();
        b.put_u16(49);
        b.put_u8(0);
        b.put_u8(0);
        b.put_u32(len);
        b.put_u64(offset);
        fid.put(&mut b);
        b.put_u32(0);
        b.put_u32(0);
        b.put_u32(0);
        b.put_u16(0);
        b.put_u16(0);
        b.push(0);
        let (st, body) = self.request(Command::Read, &b);
        if st != 0 {
            return (st, Vec::new());
        }
        let off = body[2] as usize - HEADER_LEN;
        let n = u32::from_le_bytes(body[4..8].try_into().expect("len")) as usize;
        (st, body[off..off + n].to_vec())
    }

    /// LOCK with one element (MS-SMB2 2.2.26) and lock sequence `sequence`.
    pub fn lock(
        &mut self,
        fid: FileId,
        offset: u64,
        length: u64,
        flags: u32,
        sequence: u32,
    ) -> u32 {
        let mut b = Vec::new();
        b.put_u16(48);
        b.put_u16(1);
        b.put_u32(sequence);
        fid.put(&mut b);
        b.put_u64(offset);
        b.put_u64(length);
        b.put_u32(flags);
        b.put_u32(0);
        self.request(Command::Lock, &b).0
    }

    /// LOGOFF; the session goes once the response is out.
    pub fn logoff(&mut self) -> u32 {
        self.request(Command::Logoff, &[4, 0, 0, 0]).0
    }

    /// Creates (or opens) `name` and closes it again.
    pub fn touch(&mut self, a: &CreateArgs) -> Result<Created, u32> {
        let c = self.create(a)?;
        assert_eq!(self.close(c.fid), 0);
        Ok(c)
    }

    pub fn close(&mut self, fid: FileId) -> u32 {
        let mut b = Vec::new();
        b.put_u16(24);
        b.put_u16(0);
        b.put_u32(0);
        fid.put(&mut b);
        self.request(Command::Close, &b).0
    }

    pub fn set_info(&mut self, fid: FileId, info_type: u8, class: u8, data: &[u8]) -> u32 {
        let mut b = Vec::new();
        b.put_u16(33);
        b.put_u8(info_type);
        b.put_u8(class);
        b.put_u32(data.len() as u32);
        b.put_u16((HEADER_LEN + 32) as u16);
        b.put_u16(0);
        b.put_u32(0);
        fid.put(&mut b);
        b.extend_from_slice(data);
        self.request(Command::SetInfo, &b).0
    }

    /// SET_INFO FileRenameInformation (MS-FSCC 2.4.42.2).
    pub fn rename(&mut self, fid: FileId, to: &str, replace: bool) -> u32 {
        let name = utf16(to);
        let mut d = Vec::new();
        d.put_u8(replace as u8);
        d.extend_from_slice(&[0; 7]);
        d.put_u64(0);
        d.put_u32(name.len() as u32);
        d.extend_from_slice(&name);
        // Clients send at least sizeof(FILE_RENAME_INFORMATION) (MS-FSA 2.1.5.15.11).
        d.resize(d.len().max(24), 0);
        self.set_info(fid, 1, 10, &d)
    }

    pub fn query_dir(
        &mut self,
        fid: FileId,
        class: u8,
        flags: u8,
        pattern: &str,
        out_len: u32,
    ) -> (u32, Vec<u8>) {
        let pat = utf16(pattern);
        let mut b = Vec::new();
        b.put_u16(33);
        b.put_u8(class);
        b.put_u8(flags);
        b.put_u32(0);
        fid.put(&mut b);
        b.put_u16((HEADER_LEN + 32) as u16);
        b.put_u16(pat.len() as u16);
        b.put_u32(out_len);
        b.extend_from_slice(&pat);
        if pat.is_empty() {
            b.push(0);
        }
        let (st, body) = self.request(Command::QueryDirectory, &b);
        if st != 0 {
            return (st, Vec::new());
        }
        let len = u32::from_le_bytes(body[4..8].try_into().expect("len")) as usize;
        (st, body[8..8 + len].to_vec())
    }
}

/// The names in a directory-information buffer of class `class`, with each entry's
/// offset in the buffer.
pub fn entry_names(class: u8, data: &[u8]) -> Vec<(usize, String)> {
    let name_at = match class {
        1 => 64,
        2 => 68,
        3 => 94,
        12 => 12,
        37 => 104,
        38 => 80,
        _ => panic!("class {class}"),
    };
    let len_at = if class == 12 { 8 } else { 60 };
    let mut out = Vec::new();
    let mut off = 0usize;
    loop {
        let e = &data[off..];
        let next = u32::from_le_bytes(e[0..4].try_into().expect("next")) as usize;
        let len = u32::from_le_bytes(e[len_at..len_at + 4].try_into().expect("len")) as usize;
        let units: Vec<u16> = e[name_at..name_at + len]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        out.push((off, String::from_utf16_lossy(&units)));
        if next == 0 {
            break;
        }
        off += next;
    }
    out
}
