//! Round trips for every opnum / level, presentation-context negotiation,
//! fragmentation and the error paths.

mod common;

use common::*;
use duet_rpc::{Pipe, RpcError};

fn srv(host: &TestHost) -> Pipe {
    bound("srvsvc", SRVSVC, 3, host)
}

fn wks(host: &TestHost) -> Pipe {
    bound("wkssvc", WKSSVC, 1, host)
}

fn duet_host() -> TestHost {
    host_with(vec![
        share("media", 0, "Movies & music"),
        share("backup", 0, ""),
        share("Ünïcødé", 0, "日本語"),
        share("IPC$", 0x8000_0003, "IPC Service (duet)"),
    ])
}

// ---------------------------------------------------------------- srvsvc 15

#[test]
fn share_enum_every_level() {
    let host = duet_host();
    let mut p = srv(&host);
    let ipc_type = u(0x8000_0003);
    let cases: [(u32, &str); 5] = [
        (0, "S"),
        (1, "SUS"),
        (2, "SUSUUUSS"),
        (501, "SUSU"),
        (502, "SUSUUUSSUB"),
    ];
    for (i, (level, layout)) in cases.into_iter().enumerate() {
        let stub = call(
            &mut p,
            &host,
            10 + i as u32,
            15,
            &share_enum_stub(level, u32::MAX, Some(0)),
        );
        let r = decode_share_enum(&stub, layout);
        assert_eq!(r.level, level);
        assert!(r.container);
        assert_eq!(r.status, 0, "level {level}");
        assert_eq!(r.total, 4);
        assert_eq!(r.entries_read, 4);
        assert_eq!(r.resume, Some(0));
        let names: Vec<Val> = r.entries.iter().map(|e| e[0].clone()).collect();
        assert_eq!(
            names,
            vec![s("media"), s("backup"), s("Ünïcødé"), s("IPC$")]
        );
        let ipc = &r.entries[3];
        match level {
            0 => assert_eq!(ipc.len(), 1),
            1 => assert_eq!(
                ipc,
                &vec![s("IPC$"), ipc_type.clone(), s("IPC Service (duet)")]
            ),
            2 => {
                assert_eq!(
                    &ipc[..3],
                    &[s("IPC$"), ipc_type.clone(), s("IPC Service (duet)")]
                );
                assert_eq!(ipc[4], u(u32::MAX), "max_uses unlimited");
                assert_eq!(ipc[7], Val::Str(None), "no password");
            }
            501 => assert_eq!(ipc[3], u(0), "flags"),
            502 => {
                assert_eq!(r.entries[2][2], s("日本語"));
                assert_eq!(ipc[8], u(0), "reserved = sd length");
                assert_eq!(ipc[9], Val::Bytes(None), "no security descriptor");
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn share_enum_bad_level_is_invalid_level() {
    let host = duet_host();
    let mut p = srv(&host);
    let stub = call(
        &mut p,
        &host,
        2,
        15,
        &share_enum_stub(503, u32::MAX, Some(0)),
    );
    let mut r = NdrIn::new(&stub);
    assert_eq!(r.u32(), 503);
    assert_eq!(r.u32(), 503);
    let _total = r.u32();
    let _resume_ptr = r.u32();
    assert_eq!(r.u32(), 124, "ERROR_INVALID_LEVEL");
    r.done();
}

#[test]
fn share_enum_honours_prefered_maximum_length_and_resume_handle() {
    let shares: Vec<_> = (0..10)
        .map(|i| share(&format!("share{i:02}"), 0, "some comment"))
        .collect();
    let host = host_with(shares);
    let mut p = srv(&host);
    // Level 1 entry: 12 scalar + name(12+16) + comment(12+26, padded) ~ 80 bytes.
    let mut resume = 0;
    let mut seen = Vec::new();
    for call_id in 2.. {
        let stub = call(
            &mut p,
            &host,
            call_id,
            15,
            &share_enum_stub(1, 200, Some(resume)),
        );
        let r = decode_share_enum(&stub, "SUS");
        assert_eq!(
            r.total as usize,
            10 - seen.len(),
            "TotalEntries from the resume point"
        );
        assert!(!r.entries.is_empty());
        seen.extend(r.entries.iter().map(|e| e[0].clone()));
        if r.status == 0 {
            assert_eq!(r.resume, Some(0));
            break;
        }
        assert_eq!(r.status, 234, "ERROR_MORE_DATA");
        assert!(r.entries.len() < 10);
        resume = r.resume.unwrap();
        assert_eq!(resume as usize, seen.len(), "resume handle = next index");
    }
    let want: Vec<Val> = (0..10).map(|i| s(&format!("share{i:02}"))).collect();
    assert_eq!(seen, want);

    // A tiny limit still returns one entry (progress), with ERROR_MORE_DATA.
    let stub = call(&mut p, &host, 50, 15, &share_enum_stub(0, 1, Some(0)));
    let r = decode_share_enum(&stub, "S");
    assert_eq!((r.entries.len(), r.status, r.resume), (1, 234, Some(1)));

    // Resume past the end: success, nothing.
    let stub = call(
        &mut p,
        &host,
        51,
        15,
        &share_enum_stub(1, u32::MAX, Some(99)),
    );
    let r = decode_share_enum(&stub, "SUS");
    assert_eq!((r.entries.len(), r.total, r.status), (0, 0, 0));

    // No resume handle in, none out.
    let stub = call(&mut p, &host, 52, 15, &share_enum_stub(1, u32::MAX, None));
    let r = decode_share_enum(&stub, "SUS");
    assert_eq!((r.entries.len(), r.resume), (10, None));
}

#[test]
fn share_enum_accepts_client_supplied_buffer() {
    // A client may (pointlessly) send a filled container; it must be skipped.
    let host = duet_host();
    let mut p = srv(&host);
    let mut o = NdrOut::new();
    server_name(&mut o);
    o.u32(1).u32(1).ptr(); // level, switch, Ctr1*
    o.u32(1).ptr().u32(1); // count, Buffer*, max count
    o.ptr().u32(0).null(); // netname*, type, remark NULL
    o.wstr("junk");
    o.u32(u32::MAX).ptr().u32(0);
    let stub = call(&mut p, &host, 2, 15, &o.b);
    assert_eq!(decode_share_enum(&stub, "SUS").entries.len(), 4);
}

#[test]
fn empty_share_list() {
    let host = host_with(vec![]);
    let mut p = srv(&host);
    let stub = call(&mut p, &host, 2, 15, &share_enum_stub(1, u32::MAX, Some(0)));
    let r = decode_share_enum(&stub, "SUS");
    assert_eq!((r.entries_read, r.total, r.status), (0, 0, 0));
}

// ---------------------------------------------------------------- srvsvc 16

#[test]
fn share_get_info_every_level() {
    let host = duet_host();
    let mut p = srv(&host);
    let cases: [(u32, &str); 6] = [
        (0, "S"),
        (1, "SUS"),
        (2, "SUSUUUSS"),
        (501, "SUSU"),
        (502, "SUSUUUSSUB"),
        (1005, "U"),
    ];
    for (i, (level, layout)) in cases.into_iter().enumerate() {
        // Case-insensitive lookup.
        let stub = call(
            &mut p,
            &host,
            2 + i as u32,
            16,
            &share_get_info_stub("MEDIA", level),
        );
        let (l, info, status) = decode_get_info(&stub, Some(layout));
        assert_eq!((l, status), (level, 0));
        let info = info.expect("info pointer");
        assert_eq!(info.len(), layout.len());
        if level != 1005 {
            assert_eq!(info[0], s("media"));
        } else {
            assert_eq!(info[0], u(0));
        }
        if level == 1 {
            assert_eq!(info, vec![s("media"), u(0), s("Movies & music")]);
        }
    }
    let stub = call(&mut p, &host, 20, 16, &share_get_info_stub("ipc$", 1));
    let (_, info, _) = decode_get_info(&stub, Some("SUS"));
    assert_eq!(info.unwrap()[1], u(0x8000_0003));
    let stub = call(&mut p, &host, 21, 16, &share_get_info_stub("ünïcødé", 0));
    assert_eq!(
        decode_get_info(&stub, Some("S")).1.unwrap()[0],
        s("Ünïcødé")
    );
}

#[test]
fn share_get_info_errors() {
    let host = duet_host();
    let mut p = srv(&host);
    let stub = call(&mut p, &host, 2, 16, &share_get_info_stub("nosuch", 1));
    assert_eq!(decode_get_info(&stub, Some("SUS")), (1, None, 2310));
    let stub = call(&mut p, &host, 3, 16, &share_get_info_stub("media", 7));
    assert_eq!(decode_get_info(&stub, None), (7, None, 124));
    let stub = call(&mut p, &host, 4, 16, &share_get_info_stub("", 1));
    assert_eq!(decode_get_info(&stub, Some("SUS")), (1, None, 87));
}

// ---------------------------------------------------------------- srvsvc 21

#[test]
fn server_get_info_levels() {
    let host = duet_host();
    let mut p = srv(&host);
    let stub = call(&mut p, &host, 2, 21, &level_stub(100));
    assert_eq!(
        decode_get_info(&stub, Some("US")),
        (100, Some(vec![u(500), s("DUET")]), 0)
    );
    let stub = call(&mut p, &host, 3, 21, &level_stub(101));
    assert_eq!(
        decode_get_info(&stub, Some("USUUUS")),
        (
            101,
            Some(vec![
                u(500),
                s("DUET"),
                u(6),
                u(1),
                u(0x9a03),
                s("duet NAS")
            ]),
            0
        )
    );
    let stub = call(&mut p, &host, 4, 21, &level_stub(102));
    let (_, info, status) = decode_get_info(&stub, Some("USUUUSUUUUUUS"));
    let info = info.unwrap();
    assert_eq!(status, 0);
    assert_eq!(
        &info[..6],
        &[u(500), s("DUET"), u(6), u(1), u(0x9a03), s("duet NAS")]
    );
    assert_eq!(info[8], u(0), "not hidden");
    assert_eq!(info[11], u(0), "licenses MUST be 0");
    assert_eq!(info[12], s("c:\\"));
    let stub = call(&mut p, &host, 5, 21, &level_stub(503));
    assert_eq!(decode_get_info(&stub, None), (503, None, 124));
}

// ---------------------------------------------------------------- wkssvc 0

#[test]
fn wksta_get_info_levels() {
    let host = duet_host();
    let mut p = wks(&host);
    let stub = call(&mut p, &host, 2, 0, &level_stub(100));
    assert_eq!(
        decode_get_info(&stub, Some("USSUU")),
        (
            100,
            Some(vec![u(500), s("DUET"), s("WORKGROUP"), u(6), u(1)]),
            0
        )
    );
    let stub = call(&mut p, &host, 3, 0, &level_stub(101));
    assert_eq!(
        decode_get_info(&stub, Some("USSUUS")),
        (
            101,
            Some(vec![
                u(500),
                s("DUET"),
                s("WORKGROUP"),
                u(6),
                u(1),
                Val::Str(None)
            ]),
            0
        )
    );
    let stub = call(&mut p, &host, 4, 0, &level_stub(102));
    assert_eq!(decode_get_info(&stub, None), (102, None, 124));
}

// ---------------------------------------------------------------- faults

fn one_fault(p: &mut Pipe, host: &TestHost, pdu: &[u8]) -> Pdu {
    p.write(pdu, host).unwrap();
    let out = drain(p);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ptype, PTYPE_FAULT);
    out.into_iter().next().unwrap()
}

#[test]
fn unknown_opnum_faults_op_rng_error() {
    let host = duet_host();
    let mut p = srv(&host);
    for opnum in [0u16, 14, 22, 0xFFFF] {
        let f = one_fault(
            &mut p,
            &host,
            &request_pdu(7, 0, opnum, &level_stub(100), 3),
        );
        assert_eq!(fault_status(&f), NCA_S_OP_RNG_ERROR);
        assert_eq!(f.call_id, 7);
        assert_eq!(f.flags, 0x23, "first | last | did_not_execute");
    }
    let mut w = wks(&host);
    let f = one_fault(
        &mut w,
        &host,
        &request_pdu(3, 0, 15, &share_enum_stub(1, u32::MAX, None), 3),
    );
    assert_eq!(fault_status(&f), NCA_S_OP_RNG_ERROR);
}

#[test]
fn request_on_unbound_context_faults() {
    let host = duet_host();
    let mut p = srv(&host);
    let f = one_fault(&mut p, &host, &request_pdu(5, 3, 21, &level_stub(100), 3));
    assert_eq!(fault_status(&f), NCA_S_UNK_IF);
    assert_eq!(rd16(&f.raw, 20), 3);
    // No bind at all.
    let mut fresh = Pipe::open("srvsvc").unwrap();
    let f = one_fault(
        &mut fresh,
        &host,
        &request_pdu(1, 0, 21, &level_stub(100), 3),
    );
    assert_eq!(f.call_id, 1);
    // The pipe still works afterwards.
    assert!(call(&mut p, &host, 6, 21, &level_stub(100)).len() > 8);
}

#[test]
fn bad_stub_faults_and_pipe_survives() {
    let host = duet_host();
    let mut p = srv(&host);
    let good = share_enum_stub(1, u32::MAX, Some(0));
    for cut in [0, 3, 8, 20, good.len() - 1] {
        let f = one_fault(&mut p, &host, &request_pdu(9, 0, 15, &good[..cut], 3));
        assert_eq!(fault_status(&f), RPC_X_BAD_STUB_DATA, "cut at {cut}");
    }
    // Mismatched union discriminant.
    let mut bad = good.clone();
    let at = bad.len() - 28; // the union switch
    bad[at] = 2;
    let f = one_fault(&mut p, &host, &request_pdu(10, 0, 15, &bad, 3));
    assert_eq!(fault_status(&f), RPC_X_BAD_STUB_DATA);
    // String claiming more characters than sent.
    let mut o = NdrOut::new();
    o.ptr().u32(0x4000_0000).u32(0).u32(0x4000_0000);
    let f = one_fault(&mut p, &host, &request_pdu(11, 0, 21, &o.b, 3));
    assert_eq!(fault_status(&f), RPC_X_BAD_STUB_DATA);
    assert!(!call(&mut p, &host, 12, 15, &good).is_empty());
}

#[test]
fn truncated_request_header_faults() {
    let host = duet_host();
    let mut p = srv(&host);
    let mut short = request_pdu(4, 0, 15, &[], 3);
    short.truncate(20);
    short[8] = 20;
    let f = one_fault(&mut p, &host, &short);
    assert_eq!(fault_status(&f), NCA_S_PROTO_ERROR);
    assert_eq!(f.call_id, 4);
    // Auth verifier on a request: we never negotiated one.
    let mut authed = request_pdu(5, 0, 21, &[0; 16], 3);
    authed[10] = 8;
    let f = one_fault(&mut p, &host, &authed);
    assert_eq!(fault_status(&f), NCA_S_PROTO_ERROR);
}

#[test]
fn stream_errors_are_errors_not_panics() {
    let host = duet_host();
    let mut p = Pipe::open("srvsvc").unwrap();
    assert!(matches!(
        p.write(b"GET / HTTP/1.1\r\n\r\n", &host),
        Err(RpcError::BadVersion { major: b'G', .. })
    ));
    // frag_length below the header size.
    let mut h = SAMBA_BIND.to_vec();
    h[8] = 10;
    h[9] = 0;
    assert!(matches!(
        p.write(&h, &host),
        Err(RpcError::BadFragmentLength { .. })
    ));
    // Big-endian data representation.
    let mut be = SAMBA_BIND.to_vec();
    be[4] = 0x00;
    be[8..10].copy_from_slice(&72u16.to_be_bytes());
    assert!(matches!(
        p.write(&be, &host),
        Err(RpcError::UnsupportedDataRepresentation(_))
    ));
    // A server-only PDU type from the client.
    let mut resp = SAMBA_ENUM_RESP.to_vec();
    assert!(matches!(
        p.write(&resp, &host),
        Err(RpcError::UnexpectedPdu(2))
    ));
    resp[2] = 99;
    assert!(p.write(&resp, &host).is_err());
    assert!(p.read(1000).is_none(), "nothing answered");
    // After errors, a clean bind still works.
    p.write(SAMBA_BIND, &host).unwrap();
    assert_eq!(drain(&mut p)[0].ptype, PTYPE_BIND_ACK);
    // Partial PDU: buffered, not an error, answered when complete.
    p.write(&SAMBA_ENUM_REQ[..50], &host).unwrap();
    assert!(p.read(1000).is_none());
    p.write(&SAMBA_ENUM_REQ[50..], &host).unwrap();
    assert_eq!(drain(&mut p)[0].ptype, PTYPE_RESPONSE);
}

// ---------------------------------------------------------------- binds

fn bind_results(ack: &Pdu) -> Vec<(u16, u16, [u8; 16], u32)> {
    let sec_len = rd16(&ack.raw, 24) as usize;
    let mut off = (26 + sec_len).next_multiple_of(4);
    let n = ack.raw[off] as usize;
    off += 4;
    (0..n)
        .map(|i| {
            let o = off + i * 24;
            let mut u = [0u8; 16];
            u.copy_from_slice(&ack.raw[o + 4..o + 20]);
            (
                rd16(&ack.raw, o),
                rd16(&ack.raw, o + 2),
                u,
                rd32(&ack.raw, o + 20),
            )
        })
        .collect()
}

#[test]
fn bind_negotiates_ndr20_rejects_ndr64_and_acks_feature_negotiation() {
    // What a Windows client sends: NDR20, NDR64 and bind-time feature negotiation.
    let host = duet_host();
    let mut p = Pipe::open("srvsvc").unwrap();
    let b = bind_pdu(
        PTYPE_BIND,
        1,
        5840,
        5840,
        &[
            ctx(0, SRVSVC, 3, NDR20, 2),
            ctx(1, SRVSVC, 3, NDR64, 1),
            ctx(2, SRVSVC, 3, BTFN_3, 1),
        ],
    );
    p.write(&b, &host).unwrap();
    let out = drain(&mut p);
    assert_eq!(out[0].ptype, PTYPE_BIND_ACK);
    assert_eq!(rd16(&out[0].raw, 16), 4280, "max_xmit clamped");
    assert_eq!(rd16(&out[0].raw, 18), 4280, "max_recv clamped");
    assert_eq!(
        bind_results(&out[0]),
        vec![
            (0, 0, uuid(NDR20), 2),
            (2, 2, [0; 16], 0), // provider_rejection, proposed_transfer_syntaxes_not_supported
            (3, 2, [0; 16], 0), // negotiate_ack, KeepConnectionOnOrphan only
        ]
    );
    // Only context 0 is usable.
    let f = one_fault(&mut p, &host, &request_pdu(2, 1, 21, &level_stub(100), 3));
    assert_eq!(fault_status(&f), NCA_S_UNK_IF);
    let f = one_fault(&mut p, &host, &request_pdu(3, 2, 21, &level_stub(100), 3));
    assert_eq!(fault_status(&f), NCA_S_UNK_IF);
    assert!(!call(&mut p, &host, 4, 21, &level_stub(100)).is_empty());
}

#[test]
fn bind_rejects_other_interfaces_and_versions() {
    let host = duet_host();
    let mut p = Pipe::open("wkssvc").unwrap();
    let b = bind_pdu(
        PTYPE_BIND,
        1,
        4280,
        4280,
        &[
            ctx(0, SRVSVC, 3, NDR20, 2),
            ctx(1, WKSSVC, 2, NDR20, 2),
            ctx(2, WKSSVC, 1 | (1 << 16), NDR20, 2), // v1.1 > our v1.0
            ctx(3, WKSSVC, 1, NDR20, 1),             // NDR v1
            ctx(4, WKSSVC, 1, NDR20, 2),
        ],
    );
    p.write(&b, &host).unwrap();
    let out = drain(&mut p);
    let r = bind_results(&out[0]);
    let codes: Vec<(u16, u16)> = r.iter().map(|x| (x.0, x.1)).collect();
    assert_eq!(codes, vec![(2, 1), (2, 1), (2, 1), (2, 2), (0, 0)]);
    let sec_len = rd16(&out[0].raw, 24) as usize;
    assert!(out[0].raw[26..26 + sec_len].eq_ignore_ascii_case(b"\\PIPE\\wkssvc\0"));
}

#[test]
fn bind_naks() {
    let host = duet_host();
    // Auth verifier: not supported.
    let mut p = Pipe::open("srvsvc").unwrap();
    let mut authed = SAMBA_BIND.to_vec();
    authed.extend_from_slice(&[10, 2, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    let len = authed.len() as u16;
    authed[8..10].copy_from_slice(&len.to_le_bytes());
    authed[10] = 8;
    p.write(&authed, &host).unwrap();
    let out = drain(&mut p);
    assert_eq!(out[0].ptype, PTYPE_BIND_NAK);
    assert_eq!(
        rd16(&out[0].raw, 16),
        8,
        "authentication_type_not_recognized"
    );
    assert_eq!(&out[0].raw[18..21], &[1, 5, 0], "offers 5.0");

    // No contexts / truncated context list.
    let mut p = Pipe::open("srvsvc").unwrap();
    p.write(&bind_pdu(PTYPE_BIND, 1, 4280, 4280, &[]), &host)
        .unwrap();
    assert_eq!(drain(&mut p)[0].ptype, PTYPE_BIND_NAK);
    let mut cut = SAMBA_BIND[..60].to_vec();
    cut[8] = 60;
    p.write(&cut, &host).unwrap();
    assert_eq!(drain(&mut p)[0].ptype, PTYPE_BIND_NAK);

    // Second bind on a bound pipe.
    let mut p = Pipe::open("srvsvc").unwrap();
    p.write(SAMBA_BIND, &host).unwrap();
    p.write(SAMBA_BIND, &host).unwrap();
    let out = drain(&mut p);
    assert_eq!(
        out.iter().map(|o| o.ptype).collect::<Vec<_>>(),
        vec![PTYPE_BIND_ACK, PTYPE_BIND_NAK]
    );
}

#[test]
fn alter_context_adds_a_context() {
    let host = duet_host();
    let mut p = srv(&host);
    let alter = bind_pdu(PTYPE_ALTER, 2, 4280, 4280, &[ctx(5, SRVSVC, 3, NDR20, 2)]);
    p.write(&alter, &host).unwrap();
    let out = drain(&mut p);
    assert_eq!(out[0].ptype, PTYPE_ALTER_RESP);
    assert_eq!(rd16(&out[0].raw, 24), 0, "no secondary address");
    assert_eq!(bind_results(&out[0])[0].0, 0);
    p.write(&request_pdu(3, 5, 21, &level_stub(100), 3), &host)
        .unwrap();
    let out = drain(&mut p);
    assert_eq!(out[0].ptype, PTYPE_RESPONSE);
    assert_eq!(rd16(&out[0].raw, 20), 5);
    // alter_context before bind: protocol error fault.
    let mut fresh = Pipe::open("srvsvc").unwrap();
    let f = one_fault(&mut fresh, &host, &alter);
    assert_eq!(fault_status(&f), NCA_S_PROTO_ERROR);
}

// ---------------------------------------------------------------- fragmentation

fn many_shares(n: usize) -> TestHost {
    host_with(
        (0..n)
            .map(|i| {
                share(
                    &format!("share-number-{i:04}"),
                    0,
                    &"comment ".repeat(i % 7),
                )
            })
            .collect(),
    )
}

#[test]
fn responses_fragment_at_client_max_recv_frag() {
    for max_recv in [1432u16, 2048, 4280, 5840] {
        let host = many_shares(150);
        let mut p = bound_with_frag("srvsvc", SRVSVC, 3, &host, max_recv);
        p.write(
            &request_pdu(9, 0, 15, &share_enum_stub(2, u32::MAX, Some(0)), 3),
            &host,
        )
        .unwrap();
        let frags = drain(&mut p);
        let limit = max_recv.min(4280) as usize;
        assert!(frags.len() > 3);
        assert!(
            frags[..frags.len() - 1]
                .iter()
                .all(|f| f.raw.len() > limit - 32),
            "fragments are filled up"
        );
        let stub = reassemble(&frags, 9, 0, limit);
        let r = decode_share_enum(&stub, "SUSUUUSS");
        assert_eq!(r.entries.len(), 150);
        assert_eq!(r.entries[149][0], s("share-number-0149"));
        assert_eq!(r.entries[13][2], s(&"comment ".repeat(6)));
    }
}

#[test]
fn tiny_max_recv_frag_is_raised_to_the_c706_minimum() {
    let host = many_shares(40);
    let mut p = bound_with_frag("srvsvc", SRVSVC, 3, &host, 100);
    p.write(
        &request_pdu(9, 0, 15, &share_enum_stub(1, u32::MAX, Some(0)), 3),
        &host,
    )
    .unwrap();
    let frags = drain(&mut p);
    let stub = reassemble(&frags, 9, 0, 1432);
    assert_eq!(decode_share_enum(&stub, "SUS").entries.len(), 40);
}

#[test]
fn multi_fragment_request_is_reassembled() {
    let host = samba_host();
    let req = parse_pdu(SAMBA_ENUM_REQ);
    let stub = &req.raw[24..];
    let mut single = Pipe::open("srvsvc").unwrap();
    single.write(SAMBA_BIND, &host).unwrap();
    drain(&mut single);
    single.write(SAMBA_ENUM_REQ, &host).unwrap();
    let want: Vec<Vec<u8>> = drain(&mut single).into_iter().map(|p| p.raw).collect();

    let mut p = Pipe::open("srvsvc").unwrap();
    p.write(SAMBA_BIND, &host).unwrap();
    drain(&mut p);
    let chunks: Vec<&[u8]> = stub.chunks(16).collect();
    for (i, c) in chunks.iter().enumerate() {
        let mut flags = 0;
        if i == 0 {
            flags |= 1;
        }
        if i + 1 == chunks.len() {
            flags |= 2;
        }
        p.write(&request_pdu(2, 0, 15, c, flags), &host).unwrap();
        if i + 1 < chunks.len() {
            assert!(p.read(100).is_none(), "no answer before the last fragment");
        }
    }
    let got: Vec<Vec<u8>> = drain(&mut p).into_iter().map(|p| p.raw).collect();
    assert_eq!(got, want);

    // A middle fragment of an unknown call: fault, later fragments dropped.
    p.write(&request_pdu(40, 0, 15, &stub[..16], 0), &host)
        .unwrap();
    p.write(&request_pdu(40, 0, 15, &stub[16..], 2), &host)
        .unwrap();
    let out = drain(&mut p);
    assert_eq!(out.len(), 1);
    assert_eq!(fault_status(&out[0]), NCA_S_PROTO_ERROR);
    // A call abandoned by an orphaned PDU produces nothing.
    p.write(&request_pdu(41, 0, 15, &stub[..16], 1), &host)
        .unwrap();
    let mut orphan = request_pdu(41, 0, 0, &[], 3);
    orphan[2] = 19;
    orphan.truncate(16);
    orphan[8] = 16;
    p.write(&orphan, &host).unwrap();
    p.write(&request_pdu(41, 0, 15, &stub[16..], 2), &host)
        .unwrap();
    let out = drain(&mut p);
    assert_eq!(out.len(), 1, "only a fault for the stray last fragment");
}

#[test]
fn open_names() {
    for n in [
        "srvsvc", "\\srvsvc", "SRVSVC", "\\SrvSvc", "wkssvc", "\\WKSSVC",
    ] {
        assert!(Pipe::open(n).is_some(), "{n}");
    }
    for n in [
        "",
        "\\",
        "lsarpc",
        "\\\\srvsvc",
        "srvsvc\\",
        "\\PIPE\\srvsvc",
        "samr",
    ] {
        assert!(Pipe::open(n).is_none(), "{n}");
    }
}
