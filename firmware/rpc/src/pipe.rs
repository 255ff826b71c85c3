//! One open named pipe: PDU reassembly, the association state machine (bind,
//! alter_context, requests), and the outgoing message queue the SMB layer reads.

use std::collections::VecDeque;

use crate::pdu::{self, ContextResult, Header, Syntax};
use crate::{srvsvc, wkssvc, RpcError, RpcHost};

/// Largest fragment we send or advertise (what Windows and Samba use on ncacn_np).
const MAX_FRAG: u16 = 4280;
/// C706 MustRecvFragSize: every implementation can receive fragments this large.
const MIN_FRAG: u16 = 1432;
/// Assoc group id handed out when the client asks for a new group. A pipe is its
/// own association; nothing is shared between pipes, so a constant suffices.
const ASSOC_GROUP: u32 = 0x0000_53F0;
/// Upper bound on a reassembled request stub (ours are a few hundred bytes).
const MAX_REQUEST_STUB: usize = 256 * 1024;
/// Upper bound on response bytes waiting for the client to read them.
const MAX_QUEUED: usize = 4 * 1024 * 1024;
/// Upper bound on negotiated presentation contexts per pipe.
const MAX_CONTEXTS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interface {
    Srvsvc,
    Wkssvc,
}

impl Interface {
    fn syntax(self) -> Syntax {
        match self {
            Interface::Srvsvc => srvsvc::SYNTAX,
            Interface::Wkssvc => wkssvc::SYNTAX,
        }
    }

    fn sec_addr(self) -> &'static str {
        match self {
            Interface::Srvsvc => "\\PIPE\\srvsvc",
            Interface::Wkssvc => "\\PIPE\\wkssvc",
        }
    }

    fn dispatch(self, opnum: u16, stub: &[u8], host: &dyn RpcHost) -> Result<Vec<u8>, u32> {
        match self {
            Interface::Srvsvc => srvsvc::dispatch(opnum, stub, host),
            Interface::Wkssvc => wkssvc::dispatch(opnum, stub, host),
        }
    }

    /// C706 compatibility: same UUID and major version, client minor <= ours.
    fn matches(self, s: &Syntax) -> bool {
        let ours = self.syntax();
        s.uuid == ours.uuid
            && (s.version & 0xFFFF) == (ours.version & 0xFFFF)
            && (s.version >> 16) <= (ours.version >> 16)
    }
}

#[derive(Debug)]
struct Association {
    group: u32,
    /// Largest fragment we send (the client's max_recv_frag, clamped).
    xmit_frag: u16,
    /// Largest fragment we accept, as advertised.
    recv_frag: u16,
    contexts: Vec<u16>,
}

#[derive(Debug)]
struct PendingCall {
    call_id: u32,
    context_id: u16,
    opnum: u16,
    stub: Vec<u8>,
}

/// The server end of one open named pipe (`\srvsvc` or `\wkssvc`).
///
/// The pipe is in message mode: each queued PDU is one message, and [`Pipe::read`]
/// never returns bytes of two messages at once.
#[derive(Debug)]
pub struct Pipe {
    iface: Interface,
    input: Vec<u8>,
    assoc: Option<Association>,
    call: Option<PendingCall>,
    /// Call whose remaining fragments are dropped (it was already faulted).
    discard_call: Option<u32>,
    out: VecDeque<Vec<u8>>,
    out_offset: usize,
    out_bytes: usize,
}

impl Pipe {
    /// Opens the pipe named `name` (`srvsvc` or `wkssvc`, case-insensitive, with or
    /// without one leading `\`); `None` for any other pipe.
    pub fn open(name: &str) -> Option<Pipe> {
        let bare = name.strip_prefix('\\').unwrap_or(name);
        let iface = if bare.eq_ignore_ascii_case("srvsvc") {
            Interface::Srvsvc
        } else if bare.eq_ignore_ascii_case("wkssvc") {
            Interface::Wkssvc
        } else {
            return None;
        };
        Some(Pipe {
            iface,
            input: Vec::new(),
            assoc: None,
            call: None,
            discard_call: None,
            out: VecDeque::new(),
            out_offset: 0,
            out_bytes: 0,
        })
    }

    /// Client wrote bytes (SMB2 WRITE, or the input of FSCTL_PIPE_TRANSCEIVE).
    /// Reassembles PDUs (and multi-fragment requests), answers each complete one
    /// into the outgoing queue.
    ///
    /// Errors mean the byte stream itself is unusable (not DCE/RPC v5, big-endian,
    /// impossible lengths, a PDU type a client must not send) or that the client
    /// is not reading its answers; buffered partial input is then dropped. Answers
    /// queued before the error stay queued.
    pub fn write(&mut self, data: &[u8], host: &dyn RpcHost) -> Result<(), RpcError> {
        let mut input = std::mem::take(&mut self.input);
        input.extend_from_slice(data);
        let mut consumed = 0;
        let result = loop {
            let rest = &input[consumed..];
            match pdu::frame(rest) {
                Ok(None) => break Ok(()),
                Ok(Some(h)) => {
                    let len = h.frag_length as usize;
                    consumed += len;
                    if let Err(e) = self.handle(&rest[..len], h, host) {
                        break Err(e);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok(()) => {
                input.drain(..consumed);
                self.input = input;
            }
            Err(_) => self.input = Vec::new(),
        }
        result
    }

    /// Client reads up to `max` bytes: returns the bytes and whether more of the
    /// same message remains (the SMB layer then answers STATUS_BUFFER_OVERFLOW);
    /// `None` when nothing is queued.
    pub fn read(&mut self, max: usize) -> Option<(Vec<u8>, bool)> {
        let front = self.out.front()?;
        let start = self.out_offset;
        let end = front.len().min(start.saturating_add(max));
        let chunk = front[start..end].to_vec();
        self.out_bytes -= chunk.len();
        if end == front.len() {
            self.out.pop_front();
            self.out_offset = 0;
            Some((chunk, false))
        } else {
            self.out_offset = end;
            Some((chunk, true))
        }
    }

    fn queue(&mut self, msgs: Vec<Vec<u8>>) -> Result<(), RpcError> {
        let size: usize = msgs.iter().map(Vec::len).sum();
        if self.out_bytes + size > MAX_QUEUED {
            return Err(RpcError::QueueFull(self.out_bytes));
        }
        self.out_bytes += size;
        self.out.extend(msgs);
        Ok(())
    }

    fn handle(&mut self, pdu: &[u8], h: Header, host: &dyn RpcHost) -> Result<(), RpcError> {
        if !h.little_endian() {
            return Err(RpcError::UnsupportedDataRepresentation(h.drep));
        }
        match h.ptype {
            pdu::PTYPE_BIND => self.on_bind(pdu, h, false),
            pdu::PTYPE_ALTER_CONTEXT => self.on_bind(pdu, h, true),
            pdu::PTYPE_REQUEST => self.on_request(pdu, h, host),
            // Calls are answered synchronously: nothing is left to cancel.
            pdu::PTYPE_CO_CANCEL => Ok(()),
            pdu::PTYPE_ORPHANED => {
                if self.call.as_ref().is_some_and(|c| c.call_id == h.call_id) {
                    self.call = None;
                }
                if h.flags & pdu::PFC_LAST_FRAG == 0 {
                    self.discard_call = Some(h.call_id);
                }
                Ok(())
            }
            other => Err(RpcError::UnexpectedPdu(other)),
        }
    }

    /// The answer to a bind we refuse, or to an alter_context we cannot parse.
    fn refuse(&mut self, h: &Header, alter: bool, nak_reason: u16) -> Result<(), RpcError> {
        let msg = if alter {
            pdu::fault(h.call_id, 0, pdu::NCA_S_PROTO_ERROR)
        } else {
            pdu::bind_nak(h.call_id, nak_reason)
        };
        self.queue(vec![msg])
    }

    fn on_bind(&mut self, raw: &[u8], h: Header, alter: bool) -> Result<(), RpcError> {
        if alter != self.assoc.is_some() {
            // A second bind, or alter_context before any bind.
            return self.refuse(&h, alter, pdu::NAK_REASON_NOT_SPECIFIED);
        }
        if h.minor > 1 {
            return self.refuse(&h, alter, pdu::NAK_PROTOCOL_VERSION_NOT_SUPPORTED);
        }
        if h.auth_length != 0 {
            return self.refuse(&h, alter, pdu::NAK_AUTHENTICATION_TYPE_NOT_RECOGNIZED);
        }
        let bind = match pdu::parse_bind(raw, raw.len()) {
            Some(b) if !b.contexts.is_empty() => b,
            _ => return self.refuse(&h, alter, pdu::NAK_REASON_NOT_SPECIFIED),
        };

        let mut accepted: Vec<u16> = Vec::new();
        let results: Vec<ContextResult> = bind
            .contexts
            .iter()
            .map(|c| {
                let btfn = c
                    .transfer_syntaxes
                    .iter()
                    .find(|t| t.uuid[..8] == pdu::BTFN_PREFIX && t.version == 1);
                let ndr20 = c
                    .transfer_syntaxes
                    .iter()
                    .any(|t| t.uuid == pdu::NDR20 && t.version == pdu::NDR20_VERSION);
                if let (Some(t), false) = (btfn, alter) {
                    // Bitmask is the first of the eight octets after the prefix. We
                    // have no security contexts to multiplex; orphaned PDUs never
                    // close the pipe.
                    let offered = u16::from(t.uuid[8]);
                    ContextResult {
                        result: pdu::RESULT_NEGOTIATE_ACK,
                        reason: offered & pdu::BTFN_KEEP_CONNECTION_ON_ORPHAN,
                        transfer: pdu::NULL_SYNTAX,
                    }
                } else if !self.iface.matches(&c.abstract_syntax) {
                    ContextResult {
                        result: pdu::RESULT_PROVIDER_REJECTION,
                        reason: pdu::REASON_ABSTRACT_SYNTAX_NOT_SUPPORTED,
                        transfer: pdu::NULL_SYNTAX,
                    }
                } else if ndr20 {
                    accepted.push(c.id);
                    ContextResult {
                        result: pdu::RESULT_ACCEPTANCE,
                        reason: 0,
                        transfer: Syntax {
                            uuid: pdu::NDR20,
                            version: pdu::NDR20_VERSION,
                        },
                    }
                } else {
                    // NDR64 and anything else.
                    ContextResult {
                        result: pdu::RESULT_PROVIDER_REJECTION,
                        reason: pdu::REASON_TRANSFER_SYNTAXES_NOT_SUPPORTED,
                        transfer: pdu::NULL_SYNTAX,
                    }
                }
            })
            .collect();

        let known = self.assoc.as_ref().map_or(0, |a| a.contexts.len());
        if known + accepted.len() > MAX_CONTEXTS {
            return self.refuse(&h, alter, pdu::NAK_LOCAL_LIMIT_EXCEEDED);
        }

        let assoc = self.assoc.get_or_insert_with(|| Association {
            group: if bind.assoc_group != 0 {
                bind.assoc_group
            } else {
                ASSOC_GROUP
            },
            xmit_frag: bind.max_recv_frag.clamp(MIN_FRAG, MAX_FRAG),
            recv_frag: bind.max_xmit_frag.clamp(MIN_FRAG, MAX_FRAG),
            contexts: Vec::new(),
        });
        for id in accepted {
            if !assoc.contexts.contains(&id) {
                assoc.contexts.push(id);
            }
        }
        let (ptype, sec_addr) = if alter {
            (pdu::PTYPE_ALTER_CONTEXT_RESP, "")
        } else {
            (pdu::PTYPE_BIND_ACK, self.iface.sec_addr())
        };
        let msg = pdu::bind_ack(
            ptype,
            h.call_id,
            assoc.xmit_frag,
            assoc.recv_frag,
            assoc.group,
            sec_addr,
            &results,
        );
        self.queue(vec![msg])
    }

    fn on_request(&mut self, raw: &[u8], h: Header, host: &dyn RpcHost) -> Result<(), RpcError> {
        let first = h.flags & pdu::PFC_FIRST_FRAG != 0;
        let last = h.flags & pdu::PFC_LAST_FRAG != 0;
        let (Some(context_id), Some(opnum)) = (pdu::le16(raw, 20), pdu::le16(raw, 22)) else {
            return self.protocol_fault(h.call_id, 0, last);
        };
        let stub_start = if h.flags & pdu::PFC_OBJECT_UUID != 0 {
            pdu::REQUEST_HEADER_LEN + 16
        } else {
            pdu::REQUEST_HEADER_LEN
        };
        if self.assoc.is_none() || h.auth_length != 0 || raw.len() < stub_start {
            // No association yet, or an auth verifier we never negotiated.
            self.call = None;
            return self.protocol_fault(h.call_id, context_id, last);
        }
        let stub = &raw[stub_start..];

        if first {
            self.call = None;
            self.discard_call = None;
            if last {
                return self.dispatch(h.call_id, context_id, opnum, stub, host);
            }
            if stub.len() > MAX_REQUEST_STUB {
                return self.protocol_fault(h.call_id, context_id, last);
            }
            self.call = Some(PendingCall {
                call_id: h.call_id,
                context_id,
                opnum,
                stub: stub.to_vec(),
            });
            return Ok(());
        }

        if self.discard_call == Some(h.call_id) {
            if last {
                self.discard_call = None;
            }
            return Ok(());
        }
        match self.call.as_mut() {
            Some(c) if c.call_id == h.call_id => {
                if c.stub.len() + stub.len() > MAX_REQUEST_STUB {
                    let ctx = c.context_id;
                    self.call = None;
                    return self.protocol_fault(h.call_id, ctx, last);
                }
                c.stub.extend_from_slice(stub);
                if last {
                    if let Some(c) = self.call.take() {
                        return self.dispatch(c.call_id, c.context_id, c.opnum, &c.stub, host);
                    }
                }
                Ok(())
            }
            _ => self.protocol_fault(h.call_id, context_id, last),
        }
    }

    /// Faults `call_id` with nca_s_proto_error and drops its remaining fragments.
    fn protocol_fault(
        &mut self,
        call_id: u32,
        context_id: u16,
        last: bool,
    ) -> Result<(), RpcError> {
        if !last {
            self.discard_call = Some(call_id);
        }
        self.queue(vec![pdu::fault(
            call_id,
            context_id,
            pdu::NCA_S_PROTO_ERROR,
        )])
    }

    fn dispatch(
        &mut self,
        call_id: u32,
        context_id: u16,
        opnum: u16,
        stub: &[u8],
        host: &dyn RpcHost,
    ) -> Result<(), RpcError> {
        let Some(assoc) = self.assoc.as_ref() else {
            return self.protocol_fault(call_id, context_id, true);
        };
        if !assoc.contexts.contains(&context_id) {
            return self.queue(vec![pdu::fault(call_id, context_id, pdu::NCA_S_UNK_IF)]);
        }
        let xmit = assoc.xmit_frag;
        match self.iface.dispatch(opnum, stub, host) {
            Ok(out) => self.queue(pdu::responses(call_id, context_id, &out, xmit)),
            Err(status) => self.queue(vec![pdu::fault(call_id, context_id, status)]),
        }
    }
}
