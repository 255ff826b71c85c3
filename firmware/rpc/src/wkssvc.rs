//! wkssvc (MS-WKST) 6bffd098-a112-3610-9833-46c3f87e345a v1.0: NetrWkstaGetInfo (0),
//! levels 100 and 101. Other opnums fault with nca_s_op_rng_error.

use crate::ndr::{Field, Reader, Writer};
use crate::pdu::{self, Syntax};
use crate::srvsvc::{ERROR_INVALID_LEVEL, NERR_SUCCESS};
use crate::{RpcError, RpcHost};

pub(crate) const SYNTAX: Syntax = Syntax {
    uuid: pdu::uuid(
        0x6bff_d098,
        0xa112,
        0x3610,
        [0x98, 0x33, 0x46, 0xc3, 0xf8, 0x7e, 0x34, 0x5a],
    ),
    version: 1,
};

const OPNUM_WKSTA_GET_INFO: u16 = 0;

pub(crate) fn dispatch(opnum: u16, stub: &[u8], host: &dyn RpcHost) -> Result<Vec<u8>, u32> {
    match opnum {
        OPNUM_WKSTA_GET_INFO => wksta_get_info(stub, host).map_err(|_| pdu::RPC_X_BAD_STUB_DATA),
        _ => Err(pdu::NCA_S_OP_RNG_ERROR),
    }
}

/// NetrWkstaGetInfo: ServerName, Level.
fn wksta_get_info(stub: &[u8], host: &dyn RpcHost) -> Result<Vec<u8>, RpcError> {
    let mut r = Reader::new(stub);
    r.server_name()?;
    let level = r.u32()?;
    let mut w = Writer::new();
    w.u32(level);
    if !matches!(level, 100 | 101) {
        w.u32(ERROR_INVALID_LEVEL);
        return Ok(w.into_bytes());
    }
    let sv = host.server();
    let mut fields = vec![
        Field::U32(sv.platform_id),
        Field::Str(Some(&sv.name)),
        Field::Str(Some(&sv.domain)),
        Field::U32(sv.version_major),
        Field::U32(sv.version_minor),
    ];
    if level == 101 {
        fields.push(Field::Str(None)); // wki101_lanroot: NULL per MS-WKST
    }
    w.referent();
    w.structure(&fields);
    w.u32(NERR_SUCCESS);
    Ok(w.into_bytes())
}
