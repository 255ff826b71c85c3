//! Directory enumeration entries for QUERY_DIRECTORY (MS-FSCC 2.4.8, 2.4.10,
//! 2.4.15, 2.4.22, 2.4.24, 2.4.33; MS-FSA 2.1.5.6.3).

use crate::consts::*;
use crate::file_info::{reported_attributes, FileBasics};
use crate::wire::{
    block_align, put_u16, put_u32, put_u64, put_u8, put_utf16, put_zeros, utf16_len, utf16_len_u32,
};
use crate::FsccError;

/// Builds one QUERY_DIRECTORY output buffer: entries of one class chained
/// by NextEntryOffset, each starting on an 8-byte boundary (padding bytes
/// are zero), the last entry's NextEntryOffset 0 and no padding after it
/// ("No padding is required following the last data element").
///
/// Entries describe `f` the way the query classes do (same FileAttributes
/// derivation as [`crate::encode_file_info`]). ShortName is
/// [`crate::short_name`] of the name (what FileAlternateNameInformation
/// reports), zero-padded to 24 bytes; names that are already 8.3 names
/// have none (ShortNameLength 0), as on Windows.
#[derive(Debug, Clone)]
pub struct DirEntryWriter {
    class: u8,
    max_output: usize,
    buf: Vec<u8>,
    /// Offset of the last entry written, for patching its NextEntryOffset.
    last_entry: Option<usize>,
    count: usize,
}

impl DirEntryWriter {
    /// Size of the fixed part (FieldOffset of FileName) of an entry of
    /// directory information class `class`, or `None` if `class` is not one
    /// of the six this writer supports. A QUERY_DIRECTORY whose
    /// OutputBufferLength is below this fails with
    /// STATUS_INFO_LENGTH_MISMATCH (MS-FSA 2.1.5.6.3).
    pub fn fixed_size(class: u8) -> Option<usize> {
        Some(match class {
            FILE_DIRECTORY_INFORMATION => 64,
            FILE_FULL_DIRECTORY_INFORMATION => 68,
            FILE_BOTH_DIRECTORY_INFORMATION => 94,
            FILE_NAMES_INFORMATION => 12,
            FILE_ID_BOTH_DIRECTORY_INFORMATION => 104,
            FILE_ID_FULL_DIRECTORY_INFORMATION => 80,
            _ => return None,
        })
    }

    /// A writer for directory information class `class` whose output may not
    /// exceed `max_output` bytes (the request's OutputBufferLength).
    /// `Err(InvalidInfoClass)` for any class but FileDirectoryInformation (1),
    /// FileFullDirectoryInformation (2), FileBothDirectoryInformation (3),
    /// FileNamesInformation (12), FileIdBothDirectoryInformation (37) and
    /// FileIdFullDirectoryInformation (38).
    pub fn new(class: u8, max_output: usize) -> Result<Self, FsccError> {
        Self::fixed_size(class).ok_or(FsccError::InvalidInfoClass)?;
        Ok(Self {
            class,
            max_output,
            buf: Vec::new(),
            last_entry: None,
            count: 0,
        })
    }

    /// Appends one entry for `name` (a single path component, "." and ".."
    /// allowed) with FileIndex `file_index`. Returns false, and appends
    /// nothing, if the entry (with the padding that aligns it) would not fit
    /// in `max_output`.
    pub fn push(&mut self, file_index: u32, name: &str, f: &FileBasics) -> bool {
        let Some(fixed) = Self::fixed_size(self.class) else {
            return false;
        };
        let Some(name_len) = utf16_len_u32(name) else {
            return false;
        };
        let start = match self.last_entry {
            None => 0,
            Some(_) => match block_align(self.buf.len(), 8) {
                Some(s) => s,
                None => return false,
            },
        };
        let Some(end) = start
            .checked_add(fixed)
            .and_then(|e| e.checked_add(name_len as usize))
        else {
            return false;
        };
        if end > self.max_output {
            return false;
        }
        let Ok(next_offset) = u32::try_from(start - self.last_entry.unwrap_or(0)) else {
            return false;
        };
        if let Some(last) = self.last_entry {
            self.buf[last..last + 4].copy_from_slice(&next_offset.to_le_bytes());
        }
        self.buf.resize(start, 0);
        self.put_entry(file_index, name, name_len, f);
        debug_assert_eq!(self.buf.len(), end);
        self.last_entry = Some(start);
        self.count += 1;
        true
    }

    fn put_entry(&mut self, file_index: u32, name: &str, name_len: u32, f: &FileBasics) {
        let out = &mut self.buf;
        put_u32(out, 0); // NextEntryOffset, patched when another entry follows
        put_u32(out, file_index);
        if self.class == FILE_NAMES_INFORMATION {
            // FILE_NAMES_INFORMATION (MS-FSCC 2.4.33).
            put_u32(out, name_len);
            put_utf16(out, name);
            return;
        }
        // Common head of FILE_DIRECTORY_INFORMATION (MS-FSCC 2.4.10) and the
        // classes that extend it.
        put_u64(out, f.creation_time);
        put_u64(out, f.last_access_time);
        put_u64(out, f.last_write_time);
        put_u64(out, f.change_time);
        put_u64(out, f.end_of_file);
        put_u64(out, f.allocation_size);
        put_u32(out, reported_attributes(f));
        put_u32(out, name_len);
        match self.class {
            FILE_FULL_DIRECTORY_INFORMATION => {
                // FILE_FULL_DIR_INFORMATION (MS-FSCC 2.4.15).
                put_u32(out, f.ea_size);
            }
            FILE_ID_FULL_DIRECTORY_INFORMATION => {
                // FILE_ID_FULL_DIR_INFORMATION (MS-FSCC 2.4.24).
                put_u32(out, f.ea_size);
                put_u32(out, 0); // Reserved
                put_u64(out, f.file_id);
            }
            FILE_BOTH_DIRECTORY_INFORMATION | FILE_ID_BOTH_DIRECTORY_INFORMATION => {
                // FILE_BOTH_DIR_INFORMATION (MS-FSCC 2.4.8) /
                // FILE_ID_BOTH_DIR_INFORMATION (MS-FSCC 2.4.22).
                put_u32(out, f.ea_size);
                // At most 12 ASCII characters: 24 bytes of UTF-16.
                let short = crate::short_name(name).unwrap_or_default();
                let short_len = utf16_len(&short).min(24);
                put_u8(out, short_len as u8); // ShortNameLength
                put_u8(out, 0); // Reserved1
                let at = out.len();
                put_utf16(out, &short);
                out.truncate(at + short_len);
                put_zeros(out, 24 - short_len); // ShortName
                if self.class == FILE_ID_BOTH_DIRECTORY_INFORMATION {
                    put_u16(out, 0); // Reserved2
                    put_u64(out, f.file_id);
                }
            }
            _ => {} // FILE_DIRECTORY_INFORMATION ends here.
        }
        put_utf16(out, name);
    }

    /// True while no entry has been pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of entries pushed.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Bytes the output holds so far.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// The output buffer: the entries, the last one unpadded.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}
