//! The one error type of this crate and its NTSTATUS mapping.

use thiserror::Error;

/// Why an encoder or decoder of this crate refused its input.
///
/// Every variant corresponds to exactly one NTSTATUS; the SMB layer sends
/// [`FsccError::ntstatus`] to the client. Encoders and decoders that return
/// an error have appended nothing to their output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum FsccError {
    /// The information class is not one this crate handles for the request
    /// (MS-FSCC 2.4 / 2.5: "STATUS_INVALID_INFO_CLASS MUST be returned").
    #[error("invalid information class")]
    InvalidInfoClass,
    /// The input buffer is shorter than the fixed part of the class's
    /// structure, or an output buffer is shorter than the fixed part of the
    /// reply (MS-FSA 2.1.5.12 / 2.1.5.15).
    #[error("information length mismatch")]
    InfoLengthMismatch,
    /// A field holds a value the spec forbids (negative sizes, times below
    /// -2, bad names: odd UTF-16 length, unpaired surrogates, empty).
    #[error("invalid parameter")]
    InvalidParameter,
    /// The output buffer cannot hold even one complete entry where the spec
    /// asks for STATUS_BUFFER_TOO_SMALL (FileFullEaInformation queries,
    /// MS-FSA 2.1.5.12.12).
    #[error("buffer too small")]
    BufferTooSmall,
    /// FileAlternateNameInformation on a volume without 8.3 names
    /// (MS-FSA 2.1.5.12.4: "Open.Link.ShortName is empty").
    #[error("object name not found")]
    ObjectNameNotFound,
    /// The class is defined for this operation but the store does not
    /// implement it (MS-SMB2 3.3.5.21.1), or it carries undefined flags
    /// (MS-FSA 2.1.5.15.4, FileDispositionInformationEx).
    #[error("not supported")]
    NotSupported,
    /// A FILE_FULL_EA_INFORMATION list that is not well formed: entries
    /// overrunning the buffer, a missing name terminator, a bad
    /// NextEntryOffset (MS-SMB2 3.3.5.21.1).
    #[error("EA list inconsistent")]
    EaListInconsistent,
    /// An EA name or flags byte that MS-FSCC 2.4.16 does not allow.
    #[error("invalid EA name")]
    InvalidEaName,
    /// A SID that does not follow MS-DTYP 2.4.2 (string or packet form).
    #[error("invalid SID")]
    InvalidSid,
}

impl FsccError {
    /// The NTSTATUS value (MS-ERREF 2.3) the SMB layer returns for this error.
    pub const fn ntstatus(self) -> u32 {
        match self {
            FsccError::InvalidInfoClass => 0xC000_0003,
            FsccError::InfoLengthMismatch => 0xC000_0004,
            FsccError::InvalidParameter => 0xC000_000D,
            FsccError::BufferTooSmall => 0xC000_0023,
            FsccError::ObjectNameNotFound => 0xC000_0034,
            FsccError::NotSupported => 0xC000_00BB,
            FsccError::EaListInconsistent => 0x8000_0014,
            FsccError::InvalidEaName => 0x8000_0013,
            FsccError::InvalidSid => 0xC000_0078,
        }
    }
}
