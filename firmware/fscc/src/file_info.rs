//! QUERY_INFO encoders for file information classes (MS-FSCC 2.4) and the
//! per-class minimum output sizes the SMB layer checks first.

use crate::consts::*;
use crate::wire::{put_u16, put_u32, put_u64, put_u8, put_utf16, put_zeros, utf16_len_u32};
use crate::FsccError;

/// What the server knows of one file, in NT terms (times are FILETIME:
/// 100 ns since 1601, MS-FSCC 2.1.1; sizes in bytes).
///
/// The encoders derive the reported values from these the way MS-FSA
/// 2.1.5.12 does, so that every class reports the same thing:
/// - FileAttributes: FILE_ATTRIBUTE_DIRECTORY is forced on for directories
///   and off for files, FILE_ATTRIBUTE_NORMAL is dropped when any other bit
///   is set and reported when none is (MS-FSA 2.1.5.12.6).
/// - NumberOfLinks (MS-FSA 2.1.5.12.27): `number_of_links` is the file
///   system's own count (st_nlink); a directory reports 1, a pending delete
///   removes one link, and zero links report DeletePending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileBasics {
    /// CreationTime (FILETIME).
    pub creation_time: u64,
    /// LastAccessTime (FILETIME).
    pub last_access_time: u64,
    /// LastWriteTime (FILETIME).
    pub last_write_time: u64,
    /// ChangeTime (FILETIME).
    pub change_time: u64,
    /// EndOfFile: size of the data stream in bytes.
    pub end_of_file: u64,
    /// AllocationSize: bytes allocated on disk.
    pub allocation_size: u64,
    /// FILE_ATTRIBUTE_* bits (MS-FSCC 2.6) as stored for the file.
    pub attributes: u32,
    /// The 64-bit file ID (MS-FSCC 2.1.9), reported as IndexNumber / FileId.
    pub file_id: u64,
    /// Hard links as the file system counts them (see the type docs).
    pub number_of_links: u32,
    /// The file is a directory.
    pub is_directory: bool,
    /// A delete is pending on the file's link.
    pub delete_pending: bool,
    /// EaSize to report: the size in bytes of the FILE_FULL_EA_INFORMATION
    /// list holding all EAs of the file (0 when it has none).
    pub ea_size: u32,
}

/// Per-open values some classes report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenInfo<'a> {
    /// Path from the share root, '\' separated, no leading '\'; "" is the
    /// share root.
    pub name: &'a str,
    /// Open.GrantedAccess (FileAccessInformation).
    pub access_mask: u32,
    /// Open.CurrentByteOffset (FilePositionInformation).
    pub position: u64,
    /// Open.Mode (FileModeInformation, MS-FSCC 2.4.31).
    pub mode: u32,
    /// AlignmentRequirement (FileAlignmentInformation, MS-FSCC 2.4.3).
    pub alignment: u32,
}

/// FileAttributes as MS-FSA 2.1.5.12.6 reports them.
pub(crate) fn reported_attributes(f: &FileBasics) -> u32 {
    let mut a = f.attributes & !FILE_ATTRIBUTE_NORMAL;
    if f.is_directory {
        a |= FILE_ATTRIBUTE_DIRECTORY;
    } else {
        a &= !FILE_ATTRIBUTE_DIRECTORY;
    }
    if a == 0 {
        FILE_ATTRIBUTE_NORMAL
    } else {
        a
    }
}

/// (NumberOfLinks, DeletePending) as MS-FSA 2.1.5.12.27 reports them.
fn reported_links(f: &FileBasics) -> (u32, bool) {
    let mut links = if f.is_directory && f.number_of_links > 0 {
        1
    } else {
        f.number_of_links
    };
    if f.delete_pending {
        links = links.saturating_sub(1);
    }
    (links, f.delete_pending || links == 0)
}

/// The name FileNameInformation reports: BuildRelativeName (MS-FSA
/// 2.1.4.15) from the share root, which starts with '\'; the root is "\".
fn absolute_name(open: &OpenInfo<'_>) -> String {
    let mut s = String::with_capacity(open.name.len() + 1);
    s.push('\\');
    s.push_str(open.name.trim_start_matches('\\'));
    s
}

/// FILE_NAME_INFORMATION (MS-FSCC 2.1.7): FileNameLength, FileName.
fn put_name_information(out: &mut Vec<u8>, name: &str) -> Result<(), FsccError> {
    let len = utf16_len_u32(name).ok_or(FsccError::InvalidParameter)?;
    put_u32(out, len);
    put_utf16(out, name);
    Ok(())
}

/// FILE_BASIC_INFORMATION (MS-FSCC 2.4.7), 40 bytes.
fn put_basic(out: &mut Vec<u8>, f: &FileBasics) {
    put_u64(out, f.creation_time);
    put_u64(out, f.last_access_time);
    put_u64(out, f.last_write_time);
    put_u64(out, f.change_time);
    put_u32(out, reported_attributes(f));
    put_u32(out, 0); // Reserved
}

/// FILE_STANDARD_INFORMATION (MS-FSCC 2.4.47), 24 bytes.
fn put_standard(out: &mut Vec<u8>, f: &FileBasics) {
    let (links, delete_pending) = reported_links(f);
    put_u64(out, f.allocation_size);
    put_u64(out, f.end_of_file);
    put_u32(out, links);
    put_u8(out, u8::from(delete_pending));
    put_u8(out, u8::from(f.is_directory));
    put_u16(out, 0); // Reserved
}

/// FILE_NETWORK_OPEN_INFORMATION (MS-FSCC 2.4.34), 56 bytes.
fn put_network_open(out: &mut Vec<u8>, f: &FileBasics) {
    put_u64(out, f.creation_time);
    put_u64(out, f.last_access_time);
    put_u64(out, f.last_write_time);
    put_u64(out, f.change_time);
    put_u64(out, f.allocation_size);
    put_u64(out, f.end_of_file);
    put_u32(out, reported_attributes(f));
    put_u32(out, 0); // Reserved
}

/// The default data stream's name, "::$DATA" (MS-FSCC 2.4.49).
const DEFAULT_STREAM_NAME: &str = "::$DATA";

/// Appends the QUERY_INFO reply for file information class `class`
/// (MS-FSCC 2.4) describing `f` as seen through `open`.
///
/// The full structure is appended; the SMB layer applies OutputBufferLength
/// with [`file_info_min_output_size`] and [`crate::apply_output_buffer_length`].
///
/// Classes and what they report:
/// - FileBasicInformation (4), FileStandardInformation (5),
///   FileInternalInformation (6), FileEaInformation (7),
///   FileAccessInformation (8), FilePositionInformation (14),
///   FileModeInformation (16), FileAlignmentInformation (17),
///   FileCompressionInformation (28, always COMPRESSION_FORMAT_NONE),
///   FileNetworkOpenInformation (34), FileAttributeTagInformation (35,
///   ReparseTag 0): fixed layouts.
/// - FileNameInformation (9) and FileAllInformation (18): the name from the
///   share root with a leading '\' (MS-FSA 2.1.4.15; the root is "\").
/// - FileNormalizedNameInformation (48): the name without leading '\', the
///   root being empty (what Samba's smbtorture expects).
/// - FileAlternateNameInformation (21): the 8.3 name of the last component
///   of the name, [`crate::short_name`] or the name itself when it is
///   already an 8.3 name; the share root has none: `Err(ObjectNameNotFound)`
///   (MS-FSA 2.1.5.12.4).
/// - FileStreamInformation (22): one "::$DATA" entry for a file, nothing
///   (zero bytes) for a directory.
/// - FileIdInformation (59): VolumeSerialNumber 0 and the 64-bit file ID
///   widened to 128 bits; use [`encode_file_id_information`] to report a
///   volume serial number.
///
/// Any other class is `Err(InvalidInfoClass)`. On error nothing is appended.
pub fn encode_file_info(
    class: u8,
    f: &FileBasics,
    open: &OpenInfo<'_>,
    out: &mut Vec<u8>,
) -> Result<(), FsccError> {
    match class {
        FILE_BASIC_INFORMATION => put_basic(out, f),
        FILE_STANDARD_INFORMATION => put_standard(out, f),
        // FILE_INTERNAL_INFORMATION (MS-FSCC 2.4.27): IndexNumber.
        FILE_INTERNAL_INFORMATION => put_u64(out, f.file_id),
        // FILE_EA_INFORMATION (MS-FSCC 2.4.13): EaSize.
        FILE_EA_INFORMATION => put_u32(out, f.ea_size),
        // FILE_ACCESS_INFORMATION (MS-FSCC 2.4.1): AccessFlags.
        FILE_ACCESS_INFORMATION => put_u32(out, open.access_mask),
        FILE_NAME_INFORMATION => put_name_information(out, &absolute_name(open))?,
        // FILE_POSITION_INFORMATION (MS-FSCC 2.4.40): CurrentByteOffset.
        FILE_POSITION_INFORMATION => put_u64(out, open.position),
        // FILE_MODE_INFORMATION (MS-FSCC 2.4.31): Mode.
        FILE_MODE_INFORMATION => put_u32(out, open.mode),
        // FILE_ALIGNMENT_INFORMATION (MS-FSCC 2.4.3): AlignmentRequirement.
        FILE_ALIGNMENT_INFORMATION => put_u32(out, open.alignment),
        FILE_ALL_INFORMATION => {
            // Validate the only fallible part before appending anything.
            let name = absolute_name(open);
            utf16_len_u32(&name).ok_or(FsccError::InvalidParameter)?;
            // FILE_ALL_INFORMATION (MS-FSCC 2.4.2): the fixed structures in
            // order, then FILE_NAME_INFORMATION; 100 bytes + name.
            put_basic(out, f);
            put_standard(out, f);
            put_u64(out, f.file_id);
            put_u32(out, f.ea_size);
            put_u32(out, open.access_mask);
            put_u64(out, open.position);
            put_u32(out, open.mode);
            put_u32(out, open.alignment);
            put_name_information(out, &name)?;
        }
        FILE_ALTERNATE_NAME_INFORMATION => {
            let last = open
                .name
                .trim_matches('\\')
                .rsplit('\\')
                .next()
                .unwrap_or_default();
            if last.is_empty() {
                return Err(FsccError::ObjectNameNotFound);
            }
            let short = crate::short_name(last);
            put_name_information(out, short.as_deref().unwrap_or(last))?;
        }
        FILE_STREAM_INFORMATION => {
            if !f.is_directory {
                // FILE_STREAM_INFORMATION (MS-FSCC 2.4.49), a single entry:
                // NextEntryOffset 0, no padding after the last entry.
                put_u32(out, 0);
                put_u32(out, (DEFAULT_STREAM_NAME.len() * 2) as u32);
                put_u64(out, f.end_of_file);
                put_u64(out, f.allocation_size);
                put_utf16(out, DEFAULT_STREAM_NAME);
            }
        }
        FILE_COMPRESSION_INFORMATION => {
            // FILE_COMPRESSION_INFORMATION (MS-FSCC 2.4.9), 16 bytes. Nothing
            // is compressed here: CompressedFileSize is the file size (zero
            // for directories, MS-FSA 2.1.5.12.8), format NONE, shifts 0.
            put_u64(out, if f.is_directory { 0 } else { f.end_of_file });
            put_u16(out, COMPRESSION_FORMAT_NONE);
            put_u8(out, 0); // CompressionUnitShift
            put_u8(out, 0); // ChunkShift
            put_u8(out, 0); // ClusterShift
            put_zeros(out, 3); // Reserved
        }
        FILE_NETWORK_OPEN_INFORMATION => put_network_open(out, f),
        FILE_ATTRIBUTE_TAG_INFORMATION => {
            // FILE_ATTRIBUTE_TAG_INFORMATION (MS-FSCC 2.4.6): no reparse
            // points are exposed, so ReparseTag is 0.
            put_u32(out, reported_attributes(f));
            put_u32(out, 0);
        }
        FILE_NORMALIZED_NAME_INFORMATION => {
            put_name_information(out, open.name.trim_start_matches('\\'))?
        }
        FILE_ID_INFORMATION => encode_file_id_information(0, f, out),
        _ => return Err(FsccError::InvalidInfoClass),
    }
    Ok(())
}

/// One stream of a file as FileStreamInformation reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamEntry<'a> {
    /// The stream's name with its type: "::$DATA" for the unnamed data
    /// stream, ":NAME:$DATA" for a named one.
    pub name: &'a str,
    /// StreamSize in bytes.
    pub size: u64,
    /// StreamAllocationSize in bytes.
    pub allocation: u64,
}

/// Appends FILE_STREAM_INFORMATION (MS-FSCC 2.4.49) listing `streams` in
/// order: each entry 8-byte aligned with its NextEntryOffset, the last one
/// 0 and unpadded. No streams append nothing (a directory without named
/// streams). A name too long for a 32-bit length is `Err(InvalidParameter)`
/// (nothing appended).
pub fn encode_stream_information(
    streams: &[StreamEntry<'_>],
    out: &mut Vec<u8>,
) -> Result<(), FsccError> {
    if streams.iter().any(|s| utf16_len_u32(s.name).is_none()) {
        return Err(FsccError::InvalidParameter);
    }
    let mut prev: Option<usize> = None;
    for s in streams {
        if let Some(p) = prev {
            while !(out.len() - p).is_multiple_of(8) {
                out.push(0);
            }
            let next = (out.len() - p) as u32;
            out[p..p + 4].copy_from_slice(&next.to_le_bytes());
        }
        prev = Some(out.len());
        put_u32(out, 0);
        put_u32(out, utf16_len_u32(s.name).unwrap_or(0));
        put_u64(out, s.size);
        put_u64(out, s.allocation);
        put_utf16(out, s.name);
    }
    Ok(())
}

/// Appends FILE_ID_INFORMATION (MS-FSCC 2.4.26, 24 bytes):
/// VolumeSerialNumber, then the 128-bit FileId (MS-FSCC 2.1.10) holding the
/// 64-bit file ID in its low 8 bytes.
pub fn encode_file_id_information(volume_serial_number: u64, f: &FileBasics, out: &mut Vec<u8>) {
    put_u64(out, volume_serial_number);
    put_u64(out, f.file_id);
    put_u64(out, 0);
}

/// The smallest OutputBufferLength a QUERY_INFO for file information class
/// `class` accepts; below it the SMB layer fails the request with
/// STATUS_INFO_LENGTH_MISMATCH (MS-SMB2 3.3.5.20.1, MS-FSA 2.1.5.12).
///
/// Fixed-size classes need their whole structure; FileAllInformation needs
/// BlockAlign(100 + 2, 8) = 104, the name classes BlockAlign(4 + 2, 4) = 8,
/// FileStreamInformation sizeof(FILE_STREAM_INFORMATION) = 32 (the values
/// smbtorture's smb2.getinfo.qfile_buffercheck expects).
/// `None` for classes [`encode_file_info`] does not handle.
pub fn file_info_min_output_size(class: u8) -> Option<usize> {
    Some(match class {
        FILE_BASIC_INFORMATION => 40,
        FILE_STANDARD_INFORMATION => 24,
        FILE_INTERNAL_INFORMATION => 8,
        FILE_EA_INFORMATION => 4,
        FILE_ACCESS_INFORMATION => 4,
        FILE_NAME_INFORMATION => 8,
        FILE_POSITION_INFORMATION => 8,
        FILE_MODE_INFORMATION => 4,
        FILE_ALIGNMENT_INFORMATION => 4,
        FILE_ALL_INFORMATION => 104,
        FILE_ALTERNATE_NAME_INFORMATION => 8,
        FILE_STREAM_INFORMATION => 32,
        FILE_COMPRESSION_INFORMATION => 16,
        FILE_NETWORK_OPEN_INFORMATION => 56,
        FILE_ATTRIBUTE_TAG_INFORMATION => 8,
        FILE_NORMALIZED_NAME_INFORMATION => 8,
        FILE_ID_INFORMATION => 24,
        _ => return None,
    })
}
