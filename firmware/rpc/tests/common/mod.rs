//! Test-side DCE/RPC + NDR helpers, written independently of the crate's own
//! marshalling so the tests do not just mirror the implementation.
#![allow(dead_code)]

use duet_rpc::{Pipe, RpcHost, ServerInfo, ShareInfo};

pub const SRVSVC: &str = "4b324fc8-1670-01d3-1278-5a47bf6ee188";
pub const WKSSVC: &str = "6bffd098-a112-3610-9833-46c3f87e345a";
pub const NDR20: &str = "8a885d04-1ceb-11c9-9fe8-08002b104860";
pub const NDR64: &str = "71710533-beba-4937-8319-b5dbef9ccc36";
/// Bind time feature negotiation with both feature bits offered (as Windows sends).
pub const BTFN_3: &str = "6cb71c2c-9812-4540-0300-000000000000";

pub const NCA_S_OP_RNG_ERROR: u32 = 0x1C01_0002;
pub const NCA_S_UNK_IF: u32 = 0x1C01_0003;
pub const NCA_S_PROTO_ERROR: u32 = 0x1C01_000B;
pub const RPC_X_BAD_STUB_DATA: u32 = 0x6F7;

pub const PTYPE_REQUEST: u8 = 0;
pub const PTYPE_RESPONSE: u8 = 2;
pub const PTYPE_FAULT: u8 = 3;
pub const PTYPE_BIND: u8 = 11;
pub const PTYPE_BIND_ACK: u8 = 12;
pub const PTYPE_BIND_NAK: u8 = 13;
pub const PTYPE_ALTER: u8 = 14;
pub const PTYPE_ALTER_RESP: u8 = 15;

pub const SAMBA_BIND: &[u8] = include_bytes!("../data/samba-bind.bin");
pub const SAMBA_BIND_ACK: &[u8] = include_bytes!("../data/samba-bind_ack.bin");
pub const SAMBA_ENUM_REQ: &[u8] = include_bytes!("../data/samba-share_enum_request.bin");
pub const SAMBA_ENUM_RESP: &[u8] = include_bytes!("../data/samba-share_enum_response.bin");

/// A UUID string in NDR wire order.
pub fn uuid(s: &str) -> [u8; 16] {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

pub struct TestHost {
    pub shares: Vec<ShareInfo>,
    pub server: ServerInfo,
}

impl RpcHost for TestHost {
    fn shares(&self) -> Vec<ShareInfo> {
        self.shares.clone()
    }
    fn server(&self) -> ServerInfo {
        self.server.clone()
    }
    fn user(&self) -> String {
        "refuser".into()
    }
}

pub fn share(name: &str, share_type: u32, comment: &str) -> ShareInfo {
    ShareInfo {
        name: name.into(),
        share_type,
        comment: comment.into(),
    }
}

/// The share list Samba served in share-listing.pcap.
pub fn samba_host() -> TestHost {
    TestHost {
        shares: vec![
            share("share", 0, ""),
            share("IPC$", 0x8000_0003, "IPC Service (Samba 4.17.12-Debian)"),
        ],
        server: server_info(),
    }
}

pub fn server_info() -> ServerInfo {
    ServerInfo {
        name: "DUET".into(),
        comment: "duet NAS".into(),
        domain: "WORKGROUP".into(),
        version_major: 6,
        version_minor: 1,
        server_type: 0x0000_9a03,
        platform_id: 500,
    }
}

pub fn host_with(shares: Vec<ShareInfo>) -> TestHost {
    TestHost {
        shares,
        server: server_info(),
    }
}

// ---------------------------------------------------------------- PDUs

#[derive(Debug, Clone)]
pub struct Pdu {
    pub ptype: u8,
    pub flags: u8,
    pub frag_len: u16,
    pub auth_len: u16,
    pub call_id: u32,
    pub raw: Vec<u8>,
}

pub fn rd16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

pub fn rd32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

pub fn parse_pdu(b: &[u8]) -> Pdu {
    assert!(b.len() >= 16, "PDU shorter than header");
    assert_eq!(b[0], 5, "rpc_vers");
    assert_eq!(b[1], 0, "rpc_vers_minor");
    assert_eq!(&b[4..8], &[0x10, 0, 0, 0], "drep");
    let frag_len = rd16(b, 8);
    assert_eq!(frag_len as usize, b.len(), "frag_length matches message");
    Pdu {
        ptype: b[2],
        flags: b[3],
        frag_len,
        auth_len: rd16(b, 10),
        call_id: rd32(b, 12),
        raw: b.to_vec(),
    }
}

/// Drains every queued message (reading each whole).
pub fn drain(pipe: &mut Pipe) -> Vec<Pdu> {
    let mut out = Vec::new();
    while let Some((bytes, more)) = pipe.read(usize::MAX) {
        assert!(!more);
        out.push(parse_pdu(&bytes));
    }
    out
}

/// Fault status of a fault PDU.
pub fn fault_status(p: &Pdu) -> u32 {
    assert_eq!(p.ptype, PTYPE_FAULT);
    assert_eq!(p.frag_len, 32);
    rd32(&p.raw, 24)
}

/// Response fragments of one call reassembled, checking C706/MS-RPCE rules on the
/// way: first/last flags, call id, context id, alloc_hint = stub left from here on,
/// frag_length <= max_frag, non-final stubs a multiple of 8.
pub fn reassemble(frags: &[Pdu], call_id: u32, ctx: u16, max_frag: usize) -> Vec<u8> {
    assert!(!frags.is_empty());
    let total: usize = frags.iter().map(|f| f.raw.len() - 24).sum();
    let mut stub = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        assert_eq!(f.ptype, PTYPE_RESPONSE, "fragment {i} type");
        assert_eq!(f.call_id, call_id);
        assert_eq!(f.auth_len, 0);
        assert!(
            f.raw.len() <= max_frag,
            "fragment {i} is {} bytes",
            f.raw.len()
        );
        assert_eq!(f.flags & 1 != 0, i == 0, "PFC_FIRST_FRAG on fragment {i}");
        assert_eq!(
            f.flags & 2 != 0,
            i + 1 == frags.len(),
            "PFC_LAST_FRAG on {i}"
        );
        assert_eq!(rd16(&f.raw, 20), ctx, "context id");
        assert_eq!(f.raw[22], 0, "cancel count");
        assert_eq!(rd32(&f.raw, 16) as usize, total - stub.len(), "alloc_hint");
        let body = &f.raw[24..];
        if i + 1 < frags.len() {
            assert_eq!(body.len() % 8, 0);
        }
        stub.extend_from_slice(body);
    }
    stub
}

pub struct Ctx<'a> {
    pub id: u16,
    pub abstract_uuid: &'a str,
    pub abstract_ver: u32,
    pub transfers: Vec<(&'a str, u32)>,
}

pub fn ctx<'a>(id: u16, iface: &'a str, ver: u32, ts: &'a str, ts_ver: u32) -> Ctx<'a> {
    Ctx {
        id,
        abstract_uuid: iface,
        abstract_ver: ver,
        transfers: vec![(ts, ts_ver)],
    }
}

pub fn bind_pdu(
    ptype: u8,
    call_id: u32,
    max_xmit: u16,
    max_recv: u16,
    ctxs: &[Ctx<'_>],
) -> Vec<u8> {
    let mut v = vec![5, 0, ptype, 3, 0x10, 0, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(&call_id.to_le_bytes());
    v.extend_from_slice(&max_xmit.to_le_bytes());
    v.extend_from_slice(&max_recv.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&[ctxs.len() as u8, 0, 0, 0]);
    for c in ctxs {
        v.extend_from_slice(&c.id.to_le_bytes());
        v.extend_from_slice(&[c.transfers.len() as u8, 0]);
        v.extend_from_slice(&uuid(c.abstract_uuid));
        v.extend_from_slice(&c.abstract_ver.to_le_bytes());
        for (t, tv) in &c.transfers {
            v.extend_from_slice(&uuid(t));
            v.extend_from_slice(&tv.to_le_bytes());
        }
    }
    let len = v.len() as u16;
    v[8..10].copy_from_slice(&len.to_le_bytes());
    v
}

pub fn request_pdu(call_id: u32, ctx: u16, opnum: u16, stub: &[u8], flags: u8) -> Vec<u8> {
    let mut v = vec![5, 0, PTYPE_REQUEST, flags, 0x10, 0, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(&call_id.to_le_bytes());
    v.extend_from_slice(&(stub.len() as u32).to_le_bytes());
    v.extend_from_slice(&ctx.to_le_bytes());
    v.extend_from_slice(&opnum.to_le_bytes());
    v.extend_from_slice(stub);
    let len = v.len() as u16;
    v[8..10].copy_from_slice(&len.to_le_bytes());
    v
}

/// A pipe bound to `iface` on context 0 (the bind_ack is consumed).
pub fn bound(pipe_name: &str, iface: &str, ver: u32, host: &TestHost) -> Pipe {
    bound_with_frag(pipe_name, iface, ver, host, 4280)
}

pub fn bound_with_frag(
    pipe_name: &str,
    iface: &str,
    ver: u32,
    host: &TestHost,
    max_recv: u16,
) -> Pipe {
    let mut p = Pipe::open(pipe_name).unwrap();
    p.write(
        &bind_pdu(
            PTYPE_BIND,
            1,
            4280,
            max_recv,
            &[ctx(0, iface, ver, NDR20, 2)],
        ),
        host,
    )
    .unwrap();
    let acks = drain(&mut p);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].ptype, PTYPE_BIND_ACK);
    p
}

/// Sends one single-fragment request and returns the reassembled response stub.
pub fn call(pipe: &mut Pipe, host: &TestHost, call_id: u32, opnum: u16, stub: &[u8]) -> Vec<u8> {
    pipe.write(&request_pdu(call_id, 0, opnum, stub, 3), host)
        .unwrap();
    let frags = drain(pipe);
    assert!(
        frags.iter().all(|f| f.ptype == PTYPE_RESPONSE),
        "expected a response, got {:?}",
        frags.iter().map(|f| f.ptype).collect::<Vec<_>>()
    );
    reassemble(&frags, call_id, 0, 4280)
}

// ---------------------------------------------------------------- NDR out

#[derive(Default)]
pub struct NdrOut {
    pub b: Vec<u8>,
    next: u32,
}

impl NdrOut {
    pub fn new() -> Self {
        NdrOut {
            b: Vec::new(),
            next: 0x0002_0000,
        }
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        let aligned = self.b.len().next_multiple_of(4);
        self.b.resize(aligned, 0);
        self.b.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn ptr(&mut self) -> &mut Self {
        let id = self.next;
        self.next += 4;
        self.u32(id)
    }
    pub fn null(&mut self) -> &mut Self {
        self.u32(0)
    }
    pub fn wstr(&mut self, s: &str) -> &mut Self {
        let u: Vec<u16> = s.encode_utf16().chain([0]).collect();
        self.u32(u.len() as u32).u32(0).u32(u.len() as u32);
        for c in u {
            self.b.extend_from_slice(&c.to_le_bytes());
        }
        self
    }
}

/// `[in, string, unique] ServerName` = "\\DUET".
pub fn server_name(o: &mut NdrOut) {
    o.ptr().wstr("\\\\DUET");
}

pub fn share_enum_stub(level: u32, pref_max: u32, resume: Option<u32>) -> Vec<u8> {
    let mut o = NdrOut::new();
    server_name(&mut o);
    o.u32(level).u32(level).ptr().u32(0).null().u32(pref_max);
    match resume {
        Some(r) => o.ptr().u32(r),
        None => o.null(),
    };
    o.b
}

pub fn share_get_info_stub(name: &str, level: u32) -> Vec<u8> {
    let mut o = NdrOut::new();
    server_name(&mut o);
    o.wstr(name).u32(level);
    o.b
}

pub fn level_stub(level: u32) -> Vec<u8> {
    let mut o = NdrOut::new();
    server_name(&mut o);
    o.u32(level);
    o.b
}

// ---------------------------------------------------------------- NDR in

pub struct NdrIn<'a> {
    pub b: &'a [u8],
    pub pos: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    U32(u32),
    Str(Option<String>),
    /// A (NULL) byte-array pointer, e.g. shi502_security_descriptor.
    Bytes(Option<Vec<u8>>),
}

impl<'a> NdrIn<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        NdrIn { b, pos: 0 }
    }
    pub fn u32(&mut self) -> u32 {
        self.pos = self.pos.next_multiple_of(4);
        let v = rd32(self.b, self.pos);
        self.pos += 4;
        v
    }
    pub fn wstr(&mut self) -> String {
        let max = self.u32();
        let off = self.u32();
        let act = self.u32();
        assert_eq!(off, 0);
        assert_eq!(max, act, "conformance == variance for returned strings");
        let mut u = Vec::new();
        for _ in 0..act {
            u.push(rd16(self.b, self.pos));
            self.pos += 2;
        }
        assert_eq!(u.pop(), Some(0), "string is NUL terminated");
        String::from_utf16(&u).unwrap()
    }
    pub fn done(&self) {
        assert_eq!(self.pos, self.b.len(), "trailing bytes in stub");
    }

    /// A flat struct of `layout` (`U` u32, `S` string pointer, `B` byte-array
    /// pointer): scalars first, then referents.
    pub fn structs(&mut self, layout: &str, n: usize) -> Vec<Vec<Val>> {
        let mut rows = Vec::new();
        for _ in 0..n {
            let row: Vec<Val> = layout
                .chars()
                .map(|k| {
                    let v = self.u32();
                    match k {
                        'U' => Val::U32(v),
                        'S' => Val::Str((v != 0).then(String::new)),
                        'B' => Val::Bytes((v != 0).then(Vec::new)),
                        _ => unreachable!(),
                    }
                })
                .collect();
            rows.push(row);
        }
        for row in rows.iter_mut() {
            for v in row.iter_mut() {
                match v {
                    Val::Str(Some(s)) => *s = self.wstr(),
                    Val::Bytes(Some(bytes)) => {
                        let n = self.u32();
                        *bytes = self.b[self.pos..self.pos + n as usize].to_vec();
                        self.pos += n as usize;
                    }
                    _ => {}
                }
            }
        }
        rows
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct EnumReply {
    pub level: u32,
    pub container: bool,
    pub entries_read: u32,
    pub entries: Vec<Vec<Val>>,
    pub total: u32,
    pub resume: Option<u32>,
    pub status: u32,
}

/// Decodes a NetrShareEnum response stub with element layout `layout`.
pub fn decode_share_enum(stub: &[u8], layout: &str) -> EnumReply {
    let mut r = NdrIn::new(stub);
    let level = r.u32();
    assert_eq!(r.u32(), level, "union discriminant");
    let container = r.u32() != 0;
    let mut entries_read = 0;
    let mut entries = Vec::new();
    if container && !layout.is_empty() {
        entries_read = r.u32();
        if r.u32() != 0 {
            let n = r.u32();
            assert_eq!(n, entries_read, "array size == EntriesRead");
            entries = r.structs(layout, n as usize);
        }
    }
    let total = r.u32();
    let resume = (r.u32() != 0).then(|| r.u32());
    let status = r.u32();
    r.done();
    EnumReply {
        level,
        container,
        entries_read,
        entries,
        total,
        resume,
        status,
    }
}

/// Decodes `level, [unique ptr -> struct(layout)], status` (the *GetInfo replies).
/// `None` layout: the union arm is empty (unknown level).
pub fn decode_get_info(stub: &[u8], layout: Option<&str>) -> (u32, Option<Vec<Val>>, u32) {
    let mut r = NdrIn::new(stub);
    let level = r.u32();
    let mut info = None;
    if let Some(layout) = layout {
        if r.u32() != 0 {
            info = r.structs(layout, 1).pop();
        }
    }
    let status = r.u32();
    r.done();
    (level, info, status)
}

pub fn s(v: &str) -> Val {
    Val::Str(Some(v.into()))
}

pub fn u(v: u32) -> Val {
    Val::U32(v)
}
