//! SET_INFO decoding for file information classes (MS-FSCC 2.4, checks of
//! MS-FSA 2.1.5.15 and MS-SMB2 3.3.5.21.1 that need no open state).

use crate::consts::*;
use crate::ea::{decode_full_ea_list, FullEa};
use crate::wire::{decode_utf16le, get_u32, get_u64, get_u8};
use crate::FsccError;

/// A decoded SET_INFO request body for one file information class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetFileInfo {
    /// FileBasicInformation (MS-FSCC 2.4.7). For each time: 0 means "don't
    /// change", `u64::MAX` (-1) "stop updating it for this handle",
    /// `u64::MAX - 1` (-2) "resume updating it". `attributes` 0 means
    /// "don't change".
    Basic {
        /// CreationTime.
        creation_time: u64,
        /// LastAccessTime.
        last_access_time: u64,
        /// LastWriteTime.
        last_write_time: u64,
        /// ChangeTime.
        change_time: u64,
        /// FileAttributes.
        attributes: u32,
    },
    /// FileRenameInformation, FILE_RENAME_INFORMATION_TYPE_2 (MS-FSCC
    /// 2.4.42.2).
    Rename {
        /// ReplaceIfExists.
        replace_if_exists: bool,
        /// RootDirectory; MS-SMB2 3.3.5.21.1 requires the SMB layer to fail
        /// a non-zero value with STATUS_INVALID_PARAMETER.
        root_directory: u64,
        /// FileName: the new path from the share root.
        file_name: String,
    },
    /// FileLinkInformation, FILE_LINK_INFORMATION_TYPE_2 (MS-FSCC 2.4.28.2).
    Link {
        /// ReplaceIfExists.
        replace_if_exists: bool,
        /// RootDirectory; zero for network operations.
        root_directory: u64,
        /// FileName: the link's path from the share root.
        file_name: String,
    },
    /// FileDispositionInformation (MS-FSCC 2.4.11).
    Disposition {
        /// DeletePending.
        delete_pending: bool,
    },
    /// FileDispositionInformationEx (MS-FSCC 2.4.12): FILE_DISPOSITION_* flags.
    DispositionEx {
        /// Flags.
        flags: u32,
    },
    /// FilePositionInformation (MS-FSCC 2.4.40): CurrentByteOffset.
    Position(u64),
    /// FileModeInformation (MS-FSCC 2.4.31): Mode.
    Mode(u32),
    /// FileAllocationInformation (MS-FSCC 2.4.4): AllocationSize.
    Allocation(u64),
    /// FileEndOfFileInformation (MS-FSCC 2.4.14): EndOfFile.
    EndOfFile(u64),
    /// FileValidDataLengthInformation (MS-FSCC 2.4.50): ValidDataLength.
    ValidDataLength(u64),
    /// FileFullEaInformation (MS-FSCC 2.4.16): (EaName, EaValue, Flags) in
    /// list order; an empty value means "delete this EA".
    FullEa(Vec<FullEa>),
}

/// Size of FILE_BASIC_INFORMATION.
const BASIC_SIZE: usize = 40;
/// sizeof(FILE_RENAME_INFORMATION_TYPE_2) and of
/// FILE_LINK_INFORMATION_TYPE_2: Padding makes it "at least 24".
const RENAME_SIZE: usize = 24;
/// FieldOffset(FILE_RENAME_INFORMATION_TYPE_2.FileName).
const RENAME_NAME_OFFSET: usize = 20;

/// Flags FileModeInformation may carry in a SET (MS-FSA 2.1.5.15.8).
const SETTABLE_MODE: u32 = FILE_WRITE_THROUGH
    | FILE_SEQUENTIAL_ONLY
    | FILE_SYNCHRONOUS_IO_ALERT
    | FILE_SYNCHRONOUS_IO_NONALERT;

/// Flags defined for FileDispositionInformationEx (MS-FSCC 2.4.12).
const DISPOSITION_EX_FLAGS: u32 = FILE_DISPOSITION_DELETE
    | FILE_DISPOSITION_POSIX_SEMANTICS
    | FILE_DISPOSITION_FORCE_IMAGE_SECTION_CHECK
    | FILE_DISPOSITION_ON_CLOSE
    | FILE_DISPOSITION_IGNORE_READONLY_ATTRIBUTE;

fn need(input: &[u8], size: usize) -> Result<(), FsccError> {
    if input.len() < size {
        Err(FsccError::InfoLengthMismatch)
    } else {
        Ok(())
    }
}

/// A 64-bit signed field that MUST NOT be negative.
fn non_negative(v: u64) -> Result<u64, FsccError> {
    if v > i64::MAX as u64 {
        Err(FsccError::InvalidParameter)
    } else {
        Ok(v)
    }
}

/// A FILETIME in FileBasicInformation: MUST NOT be less than -2.
fn basic_time(v: u64) -> Result<u64, FsccError> {
    if (v as i64) < -2 {
        Err(FsccError::InvalidParameter)
    } else {
        Ok(v)
    }
}

/// FILE_RENAME_INFORMATION_TYPE_2 / FILE_LINK_INFORMATION_TYPE_2 body.
fn decode_rename(input: &[u8]) -> Result<(bool, u64, String), FsccError> {
    need(input, RENAME_SIZE)?;
    let bad = FsccError::InvalidParameter;
    let replace_if_exists = get_u8(input, 0).ok_or(bad)? != 0;
    let root_directory = get_u64(input, 8).ok_or(bad)?;
    let name_len = get_u32(input, 16).ok_or(bad)? as usize;
    // MS-FSA 2.1.5.15.12: zero, odd, or longer than the buffer holds.
    if name_len == 0 || name_len > input.len() - RENAME_NAME_OFFSET {
        return Err(bad);
    }
    let name = &input[RENAME_NAME_OFFSET..RENAME_NAME_OFFSET + name_len];
    Ok((replace_if_exists, root_directory, decode_utf16le(name)?))
}

/// Decodes the SET_INFO buffer of file information class `class`.
///
/// Checks that need no open state are made here; everything else (access,
/// directory vs file, FILE_ATTRIBUTE_DIRECTORY on a file, the synchronous
/// flags of FileModeInformation against Open.Mode, name validity beyond
/// UTF-16) is the SMB layer's.
///
/// Errors:
/// - `InfoLengthMismatch`: `input` is shorter than the class's structure
///   (FileBasicInformation 40, rename/link 24, disposition 1,
///   DispositionEx 4, position/allocation/end-of-file/valid-data-length 8,
///   mode 4, an EA list its 8-byte header).
/// - `InvalidParameter`: a time below -2; a negative position, size or
///   valid data length; a mode with flags other than FILE_WRITE_THROUGH,
///   FILE_SEQUENTIAL_ONLY, FILE_SYNCHRONOUS_IO_ALERT,
///   FILE_SYNCHRONOUS_IO_NONALERT, or with both synchronous flags; a
///   rename/link FileName that is empty, of odd length, longer than the
///   buffer, or not valid UTF-16 (unpaired surrogates).
/// - `NotSupported`: FileDispositionInformationEx with undefined flags
///   (MS-FSA 2.1.5.15.4); settable classes this server does not implement:
///   FilePipeInformation, FileQuotaInformation, FileShortNameInformation,
///   FileRenameInformationEx (MS-SMB2 3.3.5.21.1).
/// - `EaListInconsistent` / `InvalidEaName`: FileFullEaInformation, see
///   MS-FSCC 2.4.16.
/// - `InvalidInfoClass`: every other class.
pub fn decode_set_file_info(class: u8, input: &[u8]) -> Result<SetFileInfo, FsccError> {
    let bad = FsccError::InvalidParameter;
    match class {
        FILE_BASIC_INFORMATION => {
            need(input, BASIC_SIZE)?;
            let time = |off| get_u64(input, off).ok_or(bad).and_then(basic_time);
            Ok(SetFileInfo::Basic {
                creation_time: time(0)?,
                last_access_time: time(8)?,
                last_write_time: time(16)?,
                change_time: time(24)?,
                attributes: get_u32(input, 32).ok_or(bad)?,
            })
        }
        FILE_RENAME_INFORMATION => {
            let (replace_if_exists, root_directory, file_name) = decode_rename(input)?;
            Ok(SetFileInfo::Rename {
                replace_if_exists,
                root_directory,
                file_name,
            })
        }
        FILE_LINK_INFORMATION => {
            let (replace_if_exists, root_directory, file_name) = decode_rename(input)?;
            Ok(SetFileInfo::Link {
                replace_if_exists,
                root_directory,
                file_name,
            })
        }
        FILE_DISPOSITION_INFORMATION => {
            need(input, 1)?;
            Ok(SetFileInfo::Disposition {
                delete_pending: get_u8(input, 0).ok_or(bad)? != 0,
            })
        }
        FILE_DISPOSITION_INFORMATION_EX => {
            need(input, 4)?;
            let flags = get_u32(input, 0).ok_or(bad)?;
            if flags & !DISPOSITION_EX_FLAGS != 0 {
                return Err(FsccError::NotSupported);
            }
            Ok(SetFileInfo::DispositionEx { flags })
        }
        FILE_POSITION_INFORMATION => {
            need(input, 8)?;
            Ok(SetFileInfo::Position(non_negative(
                get_u64(input, 0).ok_or(bad)?,
            )?))
        }
        FILE_MODE_INFORMATION => {
            need(input, 4)?;
            let mode = get_u32(input, 0).ok_or(bad)?;
            let both_sync = FILE_SYNCHRONOUS_IO_ALERT | FILE_SYNCHRONOUS_IO_NONALERT;
            if mode & !SETTABLE_MODE != 0 || mode & both_sync == both_sync {
                return Err(bad);
            }
            Ok(SetFileInfo::Mode(mode))
        }
        FILE_ALLOCATION_INFORMATION => {
            need(input, 8)?;
            Ok(SetFileInfo::Allocation(non_negative(
                get_u64(input, 0).ok_or(bad)?,
            )?))
        }
        FILE_END_OF_FILE_INFORMATION => {
            need(input, 8)?;
            Ok(SetFileInfo::EndOfFile(non_negative(
                get_u64(input, 0).ok_or(bad)?,
            )?))
        }
        FILE_VALID_DATA_LENGTH_INFORMATION => {
            need(input, 8)?;
            Ok(SetFileInfo::ValidDataLength(non_negative(
                get_u64(input, 0).ok_or(bad)?,
            )?))
        }
        FILE_FULL_EA_INFORMATION => Ok(SetFileInfo::FullEa(decode_full_ea_list(input)?)),
        FILE_PIPE_INFORMATION
        | FILE_QUOTA_INFORMATION
        | FILE_SHORT_NAME_INFORMATION
        | FILE_RENAME_INFORMATION_EX => Err(FsccError::NotSupported),
        _ => Err(FsccError::InvalidInfoClass),
    }
}
