//! Property tests: no input makes a Pipe panic, and every complete request gets
//! exactly one answer (response fragments or a fault).

mod common;

use common::*;
use duet_rpc::Pipe;
use proptest::prelude::*;

fn drain_raw(p: &mut Pipe) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // Read in small pieces to exercise the partial-read path too.
    let mut cur = Vec::new();
    while let Some((bytes, more)) = p.read(61) {
        cur.extend_from_slice(&bytes);
        if !more {
            out.push(std::mem::take(&mut cur));
        }
    }
    assert!(cur.is_empty());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let host = samba_host();
        let mut fresh = Pipe::open("srvsvc").unwrap();
        let _ = fresh.write(&data, &host);
        drain_raw(&mut fresh);
        let mut p = Pipe::open("srvsvc").unwrap();
        p.write(SAMBA_BIND, &host).unwrap();
        let _ = p.write(&data, &host);
        for m in drain_raw(&mut p) {
            parse_pdu(&m);
        }
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_header_never_panic(
        ptype in prop_oneof![Just(0u8), Just(11), Just(14), Just(18), Just(19), any::<u8>()],
        flags in any::<u8>(),
        auth_len in prop_oneof![Just(0u16), any::<u16>()],
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let host = samba_host();
        let mut pdu = vec![5, 0, ptype, flags, 0x10, 0, 0, 0];
        pdu.extend_from_slice(&((16 + body.len()) as u16).to_le_bytes());
        pdu.extend_from_slice(&auth_len.to_le_bytes());
        pdu.extend_from_slice(&7u32.to_le_bytes());
        pdu.extend_from_slice(&body);
        for pre_bind in [false, true] {
            let mut p = Pipe::open("wkssvc").unwrap();
            if pre_bind {
                p.write(&bind_pdu(PTYPE_BIND, 1, 4280, 4280, &[ctx(0, WKSSVC, 1, NDR20, 2)]), &host).unwrap();
                drain_raw(&mut p);
            }
            let _ = p.write(&pdu, &host);
            let _ = p.write(&pdu, &host);
            for m in drain_raw(&mut p) {
                parse_pdu(&m);
            }
        }
    }

    #[test]
    fn every_complete_request_gets_one_answer(
        opnum in prop_oneof![Just(0u16), Just(15), Just(16), Just(21), any::<u16>()],
        level in prop_oneof![Just(0u32), Just(1), Just(2), Just(100), Just(101), Just(102),
                             Just(501), Just(502), Just(1005), any::<u32>()],
        tail in proptest::collection::vec(any::<u8>(), 0..120),
        cut in any::<prop::sample::Index>(),
        srv in any::<bool>(),
    ) {
        let host = samba_host();
        let mut p = if srv { bound("srvsvc", SRVSVC, 3, &host) } else { bound("wkssvc", WKSSVC, 1, &host) };
        // A plausible prefix (server name, level...) followed by noise, cut anywhere.
        let mut stub = match opnum {
            15 => share_enum_stub(level, u32::MAX, Some(0)),
            16 => share_get_info_stub("share", level),
            _ => level_stub(level),
        };
        stub.extend_from_slice(&tail);
        let stub = &stub[..cut.index(stub.len() + 1)];
        p.write(&request_pdu(77, 0, opnum, stub, 3), &host).unwrap();
        let out: Vec<Pdu> = drain_raw(&mut p).iter().map(|m| parse_pdu(m)).collect();
        prop_assert!(!out.is_empty());
        if out[0].ptype == PTYPE_FAULT {
            prop_assert_eq!(out.len(), 1);
            prop_assert_eq!(out[0].call_id, 77);
        } else {
            reassemble(&out, 77, 0, 4280);
        }
    }

    #[test]
    fn chunking_does_not_change_answers(sizes in proptest::collection::vec(1usize..40, 1..40)) {
        let host = samba_host();
        let mut stream = SAMBA_BIND.to_vec();
        stream.extend_from_slice(SAMBA_ENUM_REQ);
        stream.extend_from_slice(SAMBA_ENUM_REQ);
        let mut whole = Pipe::open("srvsvc").unwrap();
        whole.write(&stream, &host).unwrap();
        let want = drain_raw(&mut whole);

        let mut p = Pipe::open("srvsvc").unwrap();
        let mut off = 0;
        for s in sizes.iter().cycle() {
            if off >= stream.len() {
                break;
            }
            let end = (off + s).min(stream.len());
            p.write(&stream[off..end], &host).unwrap();
            off = end;
        }
        prop_assert_eq!(drain_raw(&mut p), want);
    }

    #[test]
    fn mutated_capture_never_panics(
        idx in proptest::collection::vec(any::<prop::sample::Index>(), 1..6),
        vals in proptest::collection::vec(any::<u8>(), 6),
    ) {
        let host = samba_host();
        let mut stream = SAMBA_BIND.to_vec();
        stream.extend_from_slice(SAMBA_ENUM_REQ);
        for (i, ix) in idx.iter().enumerate() {
            let at = ix.index(stream.len());
            stream[at] = vals[i];
        }
        let mut p = Pipe::open("srvsvc").unwrap();
        let _ = p.write(&stream, &host);
        for m in drain_raw(&mut p) {
            parse_pdu(&m);
        }
    }
}
