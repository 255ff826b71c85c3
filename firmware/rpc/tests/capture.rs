//! Replays the DCE/RPC traffic of `smbclient -L` against Samba (share-listing.pcap)
//! into a Pipe and compares our answers with Samba's.

mod common;

use common::*;
use duet_rpc::Pipe;

#[test]
fn bind_from_capture_is_acked_like_samba() {
    let host = samba_host();
    let mut pipe = Pipe::open("srvsvc").unwrap();
    pipe.write(SAMBA_BIND, &host).unwrap();
    let out = drain(&mut pipe);
    assert_eq!(out.len(), 1);
    let ours = &out[0];
    let samba = parse_pdu(SAMBA_BIND_ACK);

    assert_eq!(ours.ptype, PTYPE_BIND_ACK);
    assert_eq!(ours.flags, samba.flags);
    assert_eq!(ours.call_id, samba.call_id);
    assert_eq!(ours.auth_len, 0);
    assert_eq!(ours.frag_len, samba.frag_len);
    // max_xmit_frag / max_recv_frag: 4280 both, as Samba negotiated.
    assert_eq!(&ours.raw[16..20], &samba.raw[16..20]);
    assert_ne!(rd32(&ours.raw, 20), 0, "assoc group assigned");
    // Secondary address: same pipe, case aside.
    let sec_len = rd16(&ours.raw, 24) as usize;
    assert_eq!(sec_len, rd16(&samba.raw, 24) as usize);
    let sec = &ours.raw[26..26 + sec_len];
    assert!(sec.eq_ignore_ascii_case(&samba.raw[26..26 + sec_len]));
    assert_eq!(sec.last(), Some(&0));
    // Result list (after padding) is byte-identical: 1 result, acceptance, NDR20 v2.
    assert_eq!(&ours.raw[40..], &samba.raw[40..]);
    assert_eq!(rd16(&ours.raw, 44), 0, "acceptance");
    assert_eq!(&ours.raw[48..64], &uuid(NDR20));
}

#[test]
fn share_enum_from_capture_matches_samba_response() {
    let host = samba_host();
    let mut pipe = Pipe::open("\\SRVSVC").unwrap();
    pipe.write(SAMBA_BIND, &host).unwrap();
    drain(&mut pipe);
    pipe.write(SAMBA_ENUM_REQ, &host).unwrap();
    let out = drain(&mut pipe);

    let samba = parse_pdu(SAMBA_ENUM_RESP);
    let req = parse_pdu(SAMBA_ENUM_REQ);
    assert_eq!(out.len(), 1, "one fragment, as Samba sent");
    let ours = &out[0];
    // Header: type, flags, call id echoed from the request, context id, cancel count.
    assert_eq!(ours.ptype, samba.ptype);
    assert_eq!(ours.flags, samba.flags);
    assert_eq!(ours.call_id, req.call_id);
    assert_eq!(ours.call_id, samba.call_id);
    assert_eq!(rd16(&ours.raw, 20), rd16(&samba.raw, 20));
    assert_eq!(ours.raw[22], samba.raw[22]);
    // alloc_hint rule: whole stub length for a single fragment, in both.
    assert_eq!(rd32(&samba.raw, 16) as usize, samba.raw.len() - 24);
    assert_eq!(rd32(&ours.raw, 16) as usize, ours.raw.len() - 24);

    let ours_stub = reassemble(&out, 2, 0, 4280);
    let samba_stub = reassemble(std::slice::from_ref(&samba), 2, 0, 4280);
    // Same shares => same NDR size; only referent id values may differ.
    assert_eq!(ours_stub.len(), samba_stub.len());
    let ours_reply = decode_share_enum(&ours_stub, "SUS");
    let samba_reply = decode_share_enum(&samba_stub, "SUS");
    assert_eq!(ours_reply, samba_reply);
    assert_eq!(
        ours_reply.entries,
        vec![
            vec![s("share"), u(0), s("")],
            vec![
                s("IPC$"),
                u(0x8000_0003),
                s("IPC Service (Samba 4.17.12-Debian)")
            ],
        ]
    );
    assert_eq!(ours_reply.total, 2);
    assert_eq!(ours_reply.resume, Some(0));
    assert_eq!(ours_reply.status, 0);
}

#[test]
fn capture_stream_in_odd_pieces_gives_same_answers() {
    let host = samba_host();
    let mut whole = Pipe::open("srvsvc").unwrap();
    let mut stream = SAMBA_BIND.to_vec();
    stream.extend_from_slice(SAMBA_ENUM_REQ);
    // Both PDUs in one write (transceive style)...
    whole.write(&stream, &host).unwrap();
    let a: Vec<Vec<u8>> = drain(&mut whole).into_iter().map(|p| p.raw).collect();
    assert_eq!(a.len(), 2);
    // ...and byte by byte.
    let mut bytewise = Pipe::open("srvsvc").unwrap();
    for b in &stream {
        bytewise.write(std::slice::from_ref(b), &host).unwrap();
    }
    let b: Vec<Vec<u8>> = drain(&mut bytewise).into_iter().map(|p| p.raw).collect();
    assert_eq!(a, b);
}

#[test]
fn short_reads_split_one_message_and_report_overflow() {
    let host = samba_host();
    let mut pipe = Pipe::open("srvsvc").unwrap();
    assert!(pipe.read(100).is_none());
    pipe.write(SAMBA_BIND, &host).unwrap();
    pipe.write(SAMBA_ENUM_REQ, &host).unwrap();
    // First message (bind_ack, 68 bytes) read 30 at a time.
    let (a, more) = pipe.read(30).unwrap();
    assert_eq!((a.len(), more), (30, true));
    let (b, more) = pipe.read(30).unwrap();
    assert_eq!((b.len(), more), (30, true));
    let (c, more) = pipe.read(30).unwrap();
    assert_eq!(
        (c.len(), more),
        (8, false),
        "never crosses into the next message"
    );
    let ack = [a, b, c].concat();
    assert_eq!(parse_pdu(&ack).ptype, PTYPE_BIND_ACK);
    // Second message whole.
    let (resp, more) = pipe.read(4280).unwrap();
    assert!(!more);
    assert_eq!(parse_pdu(&resp).ptype, PTYPE_RESPONSE);
    assert!(pipe.read(4280).is_none());
}
