//! Published known answers: Microsoft's SMB 3.x key-derivation, preauth-integrity and
//! encryption test vectors (Open Specifications blog: "SMB 2 and SMB 3 security in
//! Windows 10: the anatomy of signing and cryptographic keys", 2017-05-26; "Encryption
//! in SMB 3.0: a protocol perspective", 2012-10-05; "SMB 3.1.1 Encryption in Windows 10",
//! 2015-09-09) and the NT hash. The blog names keys from the client's side: its
//! EncryptionKey is our `decryption_c2s`, its DecryptionKey our `encryption_s2c`.

mod common;

use common::*;
use duet_auth::*;

#[test]
fn nt_hash_known_values() {
    // MS-NLMP 4.2.1 ("Password") and the empty password.
    assert_eq!(
        nt_hash("Password"),
        hex16("a4f49c406510bdcab6824ee7c30fd852")
    );
    assert_eq!(nt_hash(""), hex16("31d6cfe0d16ae931b73c59d7e0c089c0"));
    // The shared vectors' password, computed with verify.py's own MD4.
    assert_eq!(
        nt_hash("Ref-Pass1"),
        hex16("602bd10ba8a10de9b9820e510382522e")
    );
    // Non-ASCII goes through UTF-16LE, not UTF-8 (value from the same MD4).
    assert_eq!(
        nt_hash("pässword€"),
        hex16("7688dd15f510dd14cbe111df2d3021d9")
    );
}

#[test]
fn kdf_smb300_blog_vectors() {
    // First channel.
    let sk = hex16("7CD451825D0450D235424E44BA6E78CC");
    assert_eq!(
        kdf(&sk, b"SMB2AESCMAC\0", b"SmbSign\0"),
        hex16("0B7E9C5CAC36C0F6EA9AB275298CEDCE")
    );
    let keys = SessionKeys::derive(0x0300, &sk, &[0; 64]);
    assert_eq!(keys.signing, hex16("0B7E9C5CAC36C0F6EA9AB275298CEDCE"));
    assert_eq!(
        keys.decryption_c2s,
        hex16("FAD27796665B313EBB578F388632B4F7")
    );
    assert_eq!(
        keys.encryption_s2c,
        hex16("B0F0427F7CEB416D1D9DCC0CD4F99447")
    );
    assert_eq!(keys.application, hex16("BB23A4575AA26C721AF525AF15A87B4F"));
    // 3.0.2 derives the same way; the preauth hash plays no part.
    assert_eq!(SessionKeys::derive(0x0302, &sk, &[7; 64]), keys);
    // Second channel (session binding): only the signing key is per channel.
    let sk2 = hex16("4E01A2B313BCF660CC250BEF021AEDE6");
    assert_eq!(
        SessionKeys::derive(0x0300, &sk2, &[0; 64]).signing,
        hex16("BA1A17DBBFEC349BCA105563D598952F")
    );
}

#[test]
fn kdf_smb311_blog_vectors() {
    let sk = hex16("270E1BA896585EEB7AF3472D3B4C75A7");
    let preauth = hex64(
        "0DD13628CC3ED218EF9DF9772D436D0887AB9814BFAE63A80AA845F36909DB79\
         28622DDDAD522D9751640A459762C5A9D6BB084CBB3CE6BDADEF5D5BCE3C6C01",
    );
    let keys = SessionKeys::derive(0x0311, &sk, &preauth);
    assert_eq!(keys.signing, hex16("73FE7A9A77BEF0BDE49C650D8CCB5F76"));
    assert_eq!(
        keys.decryption_c2s,
        hex16("629BCBC54422A0F572B97F45989B6073")
    );
    assert_eq!(
        keys.encryption_s2c,
        hex16("E2AF0DCEFAC68DA71A0DFBD0D1350D74")
    );
    assert_eq!(keys.application, hex16("6D7AD7954E9EC61E907B4D473DC178FF"));
    assert_eq!(kdf(&sk, b"SMBSigningKey\0", &preauth), keys.signing);
}

#[test]
fn kdf_smb2x_uses_the_session_key() {
    let sk = hex16("fe798781a1bedb6c70748562fe9a875f");
    for dialect in [0x0202, 0x0210] {
        let keys = SessionKeys::derive(dialect, &sk, &[0; 64]);
        assert_eq!(keys.signing, sk);
        assert_eq!(keys.application, sk);
    }
}

/// The blog's 3.1.1 session setup: preauth hash chain, then the final response signed
/// with AES-CMAC (3.1.1 without SIGNING_CAPABILITIES).
#[test]
fn smb311_blog_preauth_chain_and_signature() {
    let messages = [
        "FE534D4240000100000000000000800000000000000000000100000000000000FFFE000000000000\
         00000000000000000000000000000000000000000000000024000500000000003F000000ECD86F32\
         6276024F9F7752B89BB33F3A70000000020000000202100200030203110300000100260000000000\
         010020000100FA49E6578F1F3A9F4CD3E9CC14A67AA884B3D05844E0E5A118225C15887F32FF0000\
         0200060000000000020002000100",
        "FE534D4240000100000000000000010001000000000000000100000000000000FFFE000000000000\
         000000000000000000000000000000000000000000000000410001001103020039CBCAF329714942\
         BDCE5D60F09AB3FB2F000000000080000000800000008000D8DAE5ADCBAED00109094AB095AED001\
         80004001C00100006082013C06062B0601050502A08201303082012CA01A3018060A2B0601040182\
         3702021E060A2B06010401823702020AA282010C048201084E45474F455854530100000000000000\
         60000000700000007C7CC0FD06D6362D02DDE1CF343BFE292900F49750B4AA97934D9C4296B26E51\
         FD370471B235E15A50DAE15BD5489C87000000000000000060000000010000000000000000000000\
         5C33530DEAF90D4DB2EC4AE3786EC3084E45474F4558545303000000010000004000000098000000\
         7C7CC0FD06D6362D02DDE1CF343BFE295C33530DEAF90D4DB2EC4AE3786EC3084000000058000000\
         3056A05430523027802530233121301F06035504031318546F6B656E205369676E696E6720507562\
         6C6963204B65793027802530233121301F06035504031318546F6B656E205369676E696E67205075\
         626C6963204B6579010026000000000001002000010060A3C3B95C3C7CCD51EC536648D9B3AC74C4\
         83CA5B65385A251117BEB30712E50000020004000000000001000200",
        "FE534D4240000100000000000100800000000000000000000200000000000000FFFE000000000000\
         00000000000000000000000000000000000000000000000019000001010000000000000058004A00\
         0000000000000000604806062B0601050502A03E303CA00E300C060A2B06010401823702020AA22A\
         04284E544C4D5353500001000000978208E200000000000000000000000000000000060380250000\
         000F",
        "FE534D4240000100160000C00100010001000000000000000200000000000000FFFE000000000000\
         190000000010000000000000000000000000000000000000090000004800B300A181B03081ADA003\
         0A0101A10C060A2B06010401823702020AA281970481944E544C4D53535000020000000C000C0038\
         00000015828AE20D1D8BA31179D008000000000000000050005000440000000A0092270000000F53\
         005500540033003100310002000C0053005500540033003100310001000C00530055005400330031\
         00310004000C0053005500540033003100310003000C0053005500540033003100310007000800A1\
         A1F5ADCBAED00100000000",
        "FE534D4240000100000000000100800000000000000000000300000000000000FFFE000000000000\
         1900000000100000000000000000000000000000000000001900000101000000000000005800CF01\
         0000000000000000A18201CB308201C7A0030A0101A28201AA048201A64E544C4D53535000030000\
         001800180090000000EE00EE00A80000000C000C00580000001A001A0064000000120012007E0000\
         001000100096010000158288E2060380250000000FECAC77A5F385A8BF9C38C706EEEDDCD3530055\
         005400330031003100610064006D0069006E006900730074007200610074006F0072004400520049\
         0056004500520033003100310000000000000000000000000000000000000000000000000063078E\
         B639FE03E20A231C3AE3BF23080101000000000000A1A1F5ADCBAED001BC4AD05F223CC90F000000\
         0002000C0053005500540033003100310001000C0053005500540033003100310004000C00530055\
         00540033003100310003000C0053005500540033003100310007000800A1A1F5ADCBAED001060004\
         00020000000800300030000000000000000000000000300000B61FEFCAA857EA57BF1EDCEBF8974B\
         8E0EBA5A6DFD9D07A31D11B548F8C9D0CC0A00100000000000000000000000000000000000090016\
         0063006900660073002F005300550054003300310031000000000000000000000000003B9BDFF38F\
         5EE8F9663F11A0F4C03A78A31204100100000063775A9A5FD97F0600000000",
    ];
    let expected = [
        "DD94EFC5321BB618A2E208BA8920D2F422992526947A409B5037DE1E0FE8C7362B8C47122594CDE0CE26AA9DFC8BCDBDE0621957672623351A7540F1E54A0426",
        "324BFA92A4F3A190E466EBEA08D9C110DC88BFED758D9846ECC6F541CC1D02AE3C94A79F36011E997E13F841B91B50957AD07B19C8E2539C0B23FDAE09D2C513",
        "AC0B0F2B9986257700365E416D142A6EDC96DF03594A19E52A15F6BD0D041CD5D432F8ED42C55E33197A50C9EC00F1462B50C592211B1471A04B56088FDFD5F9",
        "2729E3440DFDDD839E37193F6E8F20C20CEFB3469E453A70CD980EEC06B8835740A73760085633364C8989895ECE81BF102DEEB14D4B7D48AFA76901A7A38387",
        "0DD13628CC3ED218EF9DF9772D436D0887AB9814BFAE63A80AA845F36909DB7928622DDDAD522D9751640A459762C5A9D6BB084CBB3CE6BDADEF5D5BCE3C6C01",
    ];
    let mut h = PreauthHash::new();
    assert_eq!(h.value(), &[0; 64]);
    for (m, e) in messages.iter().zip(expected) {
        h.update(&hex(m));
        assert_eq!(h.value(), &hex64(e));
    }
    let keys = SessionKeys::derive(
        0x0311,
        &hex16("270E1BA896585EEB7AF3472D3B4C75A7"),
        h.value(),
    );
    let final_response = hex(
        "FE534D4240000100000000000100800009000000000000000300000000000000FFFE000000000000\
         1900000000100000EBE146DA120BA25FC3376A49DFE31BC10900000048001D00A11B3019A0030A01\
         00A3120410010000003B453CDC3524164200000000",
    );
    let signer = Signer::new(SigningAlgorithm::AesCmac, keys.signing);
    assert!(signer.verify(&final_response));
    let mut m = final_response.clone();
    signer.sign(&mut m);
    assert_eq!(m, final_response);
    m[70] ^= 1;
    assert!(!signer.verify(&m));
}

/// "Encryption in SMB 3.0": AES-128-CCM, keys from the session key; the nonce uses all
/// 16 bytes of the field (as Windows 8 sent it), which the AAD covers.
#[test]
fn smb300_ccm_blog_vectors() {
    let keys = SessionKeys::derive(0x0300, &hex16("B4546771B515F766A86735532DD6C4F0"), &[0; 64]);
    assert_eq!(
        keys.decryption_c2s,
        hex16("261B72350558F2E9DCF613070383EDBF")
    );
    assert_eq!(
        keys.encryption_s2c,
        hex16("8FE2B57EC34D2DB5B1A9727F526BBDB5")
    );

    // Client -> server WRITE "Smb3 encryption testing": the server opens it.
    let request = hex(
        "FD534D4281A286535415445DAE393921E44FA42E66E69A111892584FB5ED524A\
         744DA3EE87000000000001001100001400E4080025C8FEE16605A437832D1CD5\
         2DA9F4645333482A175FE5384563F45FCDAFAEF38BC62BA4D5C62897996625A4\
         4C29BE5658DE2E6117585779E7B59FFD971278D08580D7FA899E410E910EABF5\
         AA1DB43050B33B49182637759AC15D84BFCDF5B6B238993C0F4CF4D6012023F6\
         C627297075D84B7803912D0A9639634453595EF3E33FFE4E7AC2AB",
    );
    let plain_request = hex(
        "FE534D4240000100000000000900400008000000000000000400000000000000\
         FFFE0000010000001100001400E4080000000000000000000000000000000000\
         3100700017000000000000000000000015010000390000020100000039020000\
         00000000000000007000000000000000536D623320656E6372797074696F6E20\
         74657374696E67",
    );
    let open = TransformCipher::new(CipherId::Aes128Ccm, &keys.decryption_c2s).unwrap();
    assert_eq!(
        TransformHeader::parse(&request).unwrap().session_id,
        0x8E40014000011
    );
    assert_eq!(
        open.decrypt(&mut request.clone()).unwrap(),
        &plain_request[..]
    );

    // Server -> client WRITE response: decrypt with the key the server encrypts with.
    let response = hex(
        "FD534D42A6015530A18F6D9AFFE22AFAE8E66484860000000000000011000014\
         00E4080050000000000001001100001400E40800DBF46435C5F14169293CE079\
         E344479BF670227E49873F458672C3098DAC467DD5809F369D67409166515787\
         1483E01F7BECD02064EAC3E235F913668BBC2F097980D4B378F1993EFF6E60D1\
         77309E5B",
    );
    let plain_response = hex(
        "FE534D4240000100000000000900210009000000000000000400000000000000\
         FFFE0000010000001100001400E4080000000000000000000000000000000000\
         11000000170000000000000000000000",
    );
    let seal = TransformCipher::new(CipherId::Aes128Ccm, &keys.encryption_s2c).unwrap();
    assert_eq!(
        seal.decrypt(&mut response.clone()).unwrap(),
        &plain_response[..]
    );
    // What the server seals, it (and so the client) can open; CCM uses 11 nonce bytes.
    let mut body = plain_response.clone();
    let th = seal
        .encrypt(&[0x42; 16], 0x8E40014000011, &mut body)
        .unwrap();
    assert_eq!(&th[31..36], &[0; 5]);
    let mut frame = [&th[..], &body[..]].concat();
    assert_eq!(seal.decrypt(&mut frame).unwrap(), &plain_response[..]);
}

/// "SMB 3.1.1 Encryption in Windows 10": AES-128-GCM.
#[test]
fn smb311_gcm_blog_vectors() {
    let preauth = hex64(
        "B23F3CBFD69487D9832B79B1594A367CDD950909B774C3A4C412B4FCEA9EDDDBA7DB256BA2EA30E9\
         77F11F9B113247578E0E915C6D2A513B8F2FCA5707DC8770",
    );
    let keys = SessionKeys::derive(0x0311, &hex16("419FDDF34C1E001909D362AE7FB6AF79"), &preauth);
    assert_eq!(
        keys.decryption_c2s,
        hex16("A2F5E80E5D59103034F32E52F698E5EC")
    );
    assert_eq!(
        keys.encryption_s2c,
        hex16("748C50868C90F302962A5C35F5F9A8BF")
    );

    // The client's encryption, reproduced exactly with the client->server key.
    let plain_request = hex(
        "FE534D4240000100000000000900010008000000000000000500000000000000FFFE000001000000\
         25000000001000000000000000000000000000000000000031007000170000000000000000000000\
         0600000004000000010000000400000000000000000000007000000000000000536D623320656E63\
         72797074696F6E2074657374696E67",
    );
    let request = hex(
        "FD534D42BD73D97D2BC9001BCAFAC0FDFF5FEEBCC7D6822D269CAF48904C664C0000000087000000\
         0000010025000000001000006ECDD2A7AFC7B47763057A041B8FD4DAFFE990B70C9E09D36C084E02\
         D14EF247F8BDE38ACF6256F8B1D3B56F77FBDEB312FEA5E92CBCC1ED8FB2EBBFAA75E49A4A394BB4\
         4576545567C24D4C014D47C9FBDFDAFD2C4F9B72F8D256452620A299F48E29E53D6B61D1C13A19E9\
         1AF013F00D17E3ABC2FC3D36C8C1B6B93973253852DBD442E46EE8",
    );
    let c2s = TransformCipher::new(CipherId::Aes128Gcm, &keys.decryption_c2s).unwrap();
    let mut nonce = [0u8; 16];
    nonce[..12].copy_from_slice(&hex("C7D6822D269CAF48904C664C"));
    let mut body = plain_request.clone();
    let th = c2s.encrypt(&nonce, 0x100000000025, &mut body).unwrap();
    assert_eq!([&th[..], &body[..]].concat(), request);
    assert_eq!(
        c2s.decrypt(&mut request.clone()).unwrap(),
        &plain_request[..]
    );

    let response = hex(
        "FD534D42ACBE1CB7ED343ADF1725EF144D90D4B0E06831DD2E8EB7B4000000000000000050000000\
         00000100250000000010000026BBBF949983A6C1C796559D0F2C510CB651D1F7B6AC8DED32A2A0B8\
         F2D793A815C6F6B848D69767A215841A42D400AE6DDB5F0B44173A014973321FDD7950DA6179159B\
         82E03C9E18A050FF0EA1C967",
    );
    let plain_response = hex(
        "FE534D4240000100000000000900010001000000000000000500000000000000FFFE000001000000\
         25000000001000000000000000000000000000000000000011000000170000000000000000000000",
    );
    let s2c = TransformCipher::new(CipherId::Aes128Gcm, &keys.encryption_s2c).unwrap();
    assert_eq!(
        s2c.decrypt(&mut response.clone()).unwrap(),
        &plain_response[..]
    );
}

#[test]
fn aes256_ciphers_round_trip_and_reject_tampering() {
    let preauth = [0x5a; 64];
    let (s2c, c2s) =
        SessionKeys::cipher_keys_256(&hex16("419FDDF34C1E001909D362AE7FB6AF79"), &preauth);
    assert_ne!(s2c, c2s);
    // L = 256 changes the whole key, not just its length.
    let k128 = SessionKeys::derive(0x0311, &hex16("419FDDF34C1E001909D362AE7FB6AF79"), &preauth);
    assert_ne!(s2c[..16], k128.encryption_s2c);
    for id in [
        CipherId::Aes128Ccm,
        CipherId::Aes128Gcm,
        CipherId::Aes256Ccm,
        CipherId::Aes256Gcm,
    ] {
        assert_eq!(CipherId::from_u16(id as u16), Some(id));
        let key = &s2c[..id.key_len()];
        assert!(matches!(
            TransformCipher::new(id, &s2c[..20]),
            Err(AuthError::KeyLength { .. })
        ));
        let cipher = TransformCipher::new(id, key).unwrap();
        let plain = hello_txt();
        let mut body = plain.clone();
        let th = cipher.encrypt(&[9; 16], 77, &mut body).unwrap();
        assert_ne!(body, plain);
        assert!(th[20 + id.nonce_len()..36].iter().all(|&b| b == 0));
        let frame = [&th[..], &body[..]].concat();
        assert_eq!(cipher.decrypt(&mut frame.clone()).unwrap(), &plain[..]);
        for at in [0, 4, 25, 36, 50, 60] {
            let mut bad = frame.clone();
            bad[at] ^= 0x10;
            assert!(cipher.decrypt(&mut bad).is_err(), "{id:?}: byte {at}");
        }
        assert!(cipher.decrypt(&mut frame[..51].to_vec()).is_err());
    }
}
