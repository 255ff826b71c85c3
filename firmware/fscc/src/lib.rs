//! `duet-fscc`: the wire encodings of MS-FSCC file and file system
//! information that duetd's SMB2/3 layer sends and receives.
//!
//! This crate owns:
//! - QUERY_INFO encoders for file information classes (MS-FSCC 2.4,
//!   [`encode_file_info`]) and file system information classes
//!   (MS-FSCC 2.5, [`encode_fs_info`]), with the minimum output sizes the
//!   SMB layer checks ([`file_info_min_output_size`],
//!   [`fs_info_min_output_size`], [`apply_output_buffer_length`]);
//! - QUERY_DIRECTORY entry chaining ([`DirEntryWriter`]) and search pattern
//!   matching (MS-FSA 2.1.4.4, [`name_matches`]);
//! - SET_INFO decoding ([`decode_set_file_info`]) and FILE_FULL_EA_INFORMATION
//!   lists ([`encode_full_ea_list`], [`decode_get_ea_list`]);
//! - 8.3 short names ([`short_name`]);
//! - SIDs and the default self-relative security descriptor (MS-DTYP 2.4.2,
//!   2.4.6: [`Sid`], [`default_security_descriptor`]);
//! - the FILE_ATTRIBUTE_*, access-mask and information-class constants
//!   ([`consts`]).
//!
//! It must never do I/O, touch the file system, know about SMB2 headers,
//! sessions or NTSTATUS beyond [`FsccError::ntstatus`], or panic on any
//! input: encoders append little-endian bytes to a caller's `Vec<u8>` (and
//! append nothing when they fail), decoders check every bound.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod consts;
mod dir;
mod ea;
mod error;
mod file_info;
mod fs_info;
mod pattern;
mod security;
mod set_info;
mod short_name;
mod wire;

pub use dir::DirEntryWriter;
pub use ea::{decode_get_ea_list, encode_full_ea_list, FullEa};
pub use error::FsccError;
pub use file_info::{
    encode_file_id_information, encode_file_info, encode_stream_information,
    file_info_min_output_size, FileBasics, OpenInfo, StreamEntry,
};
pub use fs_info::{encode_fs_info, fs_info_min_output_size, FsStats};
pub use pattern::name_matches;
pub use security::{
    default_security_descriptor, Ace, Acl, SecurityDescriptor, Sid, SE_DACL_AUTO_INHERIT_REQ,
    SE_SACL_AUTO_INHERIT_REQ,
};
pub use set_info::{decode_set_file_info, SetFileInfo};
pub use short_name::{is_8_3, short_name};

/// Applies a QUERY_INFO OutputBufferLength to an encoded reply
/// (MS-SMB2 3.3.5.20.1): below `min_output_size` (from
/// [`file_info_min_output_size`] / [`fs_info_min_output_size`]) it is
/// `Err(InfoLengthMismatch)` and `encoded` is left alone; otherwise
/// `encoded` is cut to `output_buffer_length` bytes and the result says
/// whether it was cut (true: the SMB layer returns STATUS_BUFFER_OVERFLOW
/// with the truncated data, as MS-FSA 2.1.5.12.19 and 2.1.5.13.1 do).
pub fn apply_output_buffer_length(
    encoded: &mut Vec<u8>,
    min_output_size: usize,
    output_buffer_length: usize,
) -> Result<bool, FsccError> {
    if output_buffer_length < min_output_size {
        return Err(FsccError::InfoLengthMismatch);
    }
    if encoded.len() > output_buffer_length {
        encoded.truncate(output_buffer_length);
        Ok(true)
    } else {
        Ok(false)
    }
}
