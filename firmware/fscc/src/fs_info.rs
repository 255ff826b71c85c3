//! QUERY_INFO encoders for file system information classes (MS-FSCC 2.5).

use crate::consts::*;
use crate::wire::{put_u32, put_u64, put_u8, put_utf16, put_zeros, utf16_len_u32};
use crate::FsccError;

/// What the server knows of the volume behind a share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsStats {
    /// Total bytes of the volume visible to the caller.
    pub total_bytes: u64,
    /// Free bytes of the volume (ActualAvailableAllocationUnits).
    pub free_bytes: u64,
    /// Free bytes the caller may use (after quotas and reserved space).
    pub caller_available_bytes: u64,
    /// Logical bytes per sector (usually 512).
    pub bytes_per_sector: u32,
    /// Sectors per allocation unit (cluster).
    pub sectors_per_allocation_unit: u32,
    /// VolumeSerialNumber (MS-FSCC 2.5.9).
    pub volume_serial: u32,
    /// VolumeLabel (MS-FSCC 2.5.9); at most 32 characters on Windows.
    pub volume_label: String,
    /// VolumeCreationTime (FILETIME).
    pub volume_creation_time: u64,
    /// FileSystemName (MS-FSCC 2.5.1), "NTFS".
    pub fs_name: String,
    /// MaximumComponentNameLength (MS-FSCC 2.5.1), 1..=255.
    pub max_component_name_length: u32,
    /// FileSystemAttributes (MS-FSCC 2.5.1), FILE_CASE_* / FILE_SUPPORTS_* bits.
    pub fs_attributes: u32,
}

impl FsStats {
    /// Bytes per allocation unit; zero sizes are `InvalidParameter`.
    fn cluster_size(&self) -> Result<u64, FsccError> {
        let c = u64::from(self.bytes_per_sector) * u64::from(self.sectors_per_allocation_unit);
        if c == 0 {
            Err(FsccError::InvalidParameter)
        } else {
            Ok(c)
        }
    }
}

/// Appends the QUERY_INFO reply for file system information class `class`
/// (MS-FSCC 2.5) describing `s`.
///
/// - FileFsVolumeInformation (1): SupportsObjects is TRUE when
///   `fs_attributes` has FILE_SUPPORTS_OBJECT_IDS (NTFS does, MS-FSCC <185>).
/// - FileFsSizeInformation (3), FileFsFullSizeInformation (7): byte counts
///   divided by the cluster size (`bytes_per_sector *
///   sectors_per_allocation_unit`; zero is `InvalidParameter`), rounded down.
/// - FileFsDeviceInformation (4): FILE_DEVICE_DISK, FILE_DEVICE_IS_MOUNTED,
///   plus FILE_READ_ONLY_DEVICE for FILE_READ_ONLY_VOLUME.
/// - FileFsAttributeInformation (5).
/// - FileFsControlInformation (6): no quotas; all zero except
///   DefaultQuotaThreshold and DefaultQuotaLimit, which say "none set"
///   (0xFFFFFFFFFFFFFFFF).
/// - FileFsObjectIdInformation (8): ObjectId is the volume serial number
///   in its first four bytes, ExtendedInfo 48 zero bytes.
/// - FileFsSectorSizeInformation (11): every sector size is
///   `bytes_per_sector`, flags ALIGNED_DEVICE | PARTITION_ALIGNED_ON_DEVICE,
///   offsets 0 (what Samba reports).
///
/// Any other class is `Err(InvalidInfoClass)`. On error nothing is appended.
pub fn encode_fs_info(class: u8, s: &FsStats, out: &mut Vec<u8>) -> Result<(), FsccError> {
    match class {
        FILE_FS_VOLUME_INFORMATION => {
            let label_len = utf16_len_u32(&s.volume_label).ok_or(FsccError::InvalidParameter)?;
            // FILE_FS_VOLUME_INFORMATION (MS-FSCC 2.5.9): 18 bytes + label.
            put_u64(out, s.volume_creation_time);
            put_u32(out, s.volume_serial);
            put_u32(out, label_len);
            put_u8(
                out,
                u8::from(s.fs_attributes & FILE_SUPPORTS_OBJECT_IDS != 0),
            );
            put_u8(out, 0); // Reserved
            put_utf16(out, &s.volume_label);
        }
        FILE_FS_SIZE_INFORMATION => {
            let cluster = s.cluster_size()?;
            // FILE_FS_SIZE_INFORMATION (MS-FSCC 2.5.8): 24 bytes.
            put_u64(out, s.total_bytes / cluster);
            put_u64(out, s.caller_available_bytes / cluster);
            put_u32(out, s.sectors_per_allocation_unit);
            put_u32(out, s.bytes_per_sector);
        }
        FILE_FS_DEVICE_INFORMATION => {
            let mut characteristics = FILE_DEVICE_IS_MOUNTED;
            if s.fs_attributes & FILE_READ_ONLY_VOLUME != 0 {
                characteristics |= FILE_READ_ONLY_DEVICE;
            }
            // FILE_FS_DEVICE_INFORMATION (MS-FSCC 2.5.10): 8 bytes.
            put_u32(out, FILE_DEVICE_DISK);
            put_u32(out, characteristics);
        }
        FILE_FS_ATTRIBUTE_INFORMATION => {
            let name_len = utf16_len_u32(&s.fs_name).ok_or(FsccError::InvalidParameter)?;
            // FILE_FS_ATTRIBUTE_INFORMATION (MS-FSCC 2.5.1): 12 bytes + name.
            put_u32(out, s.fs_attributes);
            put_u32(out, s.max_component_name_length);
            put_u32(out, name_len);
            put_utf16(out, &s.fs_name);
        }
        FILE_FS_CONTROL_INFORMATION => {
            // FILE_FS_CONTROL_INFORMATION (MS-FSCC 2.5.2): 48 bytes.
            put_u64(out, 0); // FreeSpaceStartFiltering
            put_u64(out, 0); // FreeSpaceThreshold
            put_u64(out, 0); // FreeSpaceStopFiltering
            put_u64(out, u64::MAX); // DefaultQuotaThreshold: none set
            put_u64(out, u64::MAX); // DefaultQuotaLimit: none set
            put_u32(out, 0); // FileSystemControlFlags: quotas not tracked
            put_u32(out, 0); // Padding
        }
        FILE_FS_FULL_SIZE_INFORMATION => {
            let cluster = s.cluster_size()?;
            // FILE_FS_FULL_SIZE_INFORMATION (MS-FSCC 2.5.4): 32 bytes.
            put_u64(out, s.total_bytes / cluster);
            put_u64(out, s.caller_available_bytes / cluster);
            put_u64(out, s.free_bytes / cluster);
            put_u32(out, s.sectors_per_allocation_unit);
            put_u32(out, s.bytes_per_sector);
        }
        FILE_FS_OBJECT_ID_INFORMATION => {
            // FILE_FS_OBJECTID_INFORMATION (MS-FSCC 2.5.6): 64 bytes.
            put_u32(out, s.volume_serial);
            put_zeros(out, 12);
            put_zeros(out, 48); // ExtendedInfo
        }
        FILE_FS_SECTOR_SIZE_INFORMATION => {
            // FILE_FS_SECTOR_SIZE_INFORMATION (MS-FSCC 2.5.7): 28 bytes.
            put_u32(out, s.bytes_per_sector); // LogicalBytesPerSector
            put_u32(out, s.bytes_per_sector); // PhysicalBytesPerSectorForAtomicity
            put_u32(out, s.bytes_per_sector); // PhysicalBytesPerSectorForPerformance
            put_u32(out, s.bytes_per_sector); // FileSystemEffectivePhysicalBytesPerSectorForAtomicity
            put_u32(
                out,
                SSINFO_FLAGS_ALIGNED_DEVICE | SSINFO_FLAGS_PARTITION_ALIGNED_ON_DEVICE,
            );
            put_u32(out, 0); // ByteOffsetForSectorAlignment
            put_u32(out, 0); // ByteOffsetForPartitionAlignment
        }
        _ => return Err(FsccError::InvalidInfoClass),
    }
    Ok(())
}

/// The smallest OutputBufferLength a QUERY_INFO for file system class
/// `class` accepts; below it the SMB layer fails the request with
/// STATUS_INFO_LENGTH_MISMATCH (MS-SMB2 3.3.5.20.2, MS-FSA 2.1.5.13).
///
/// These are the values smbtorture's smb2.getinfo.qfs_buffercheck expects:
/// FileFsVolumeInformation BlockAlign(18, 8) = 24, FileFsAttributeInformation
/// 16, the fixed classes their size. `None` for classes [`encode_fs_info`]
/// does not handle.
pub fn fs_info_min_output_size(class: u8) -> Option<usize> {
    Some(match class {
        FILE_FS_VOLUME_INFORMATION => 24,
        FILE_FS_SIZE_INFORMATION => 24,
        FILE_FS_DEVICE_INFORMATION => 8,
        FILE_FS_ATTRIBUTE_INFORMATION => 16,
        FILE_FS_CONTROL_INFORMATION => 48,
        FILE_FS_FULL_SIZE_INFORMATION => 32,
        FILE_FS_OBJECT_ID_INFORMATION => 64,
        FILE_FS_SECTOR_SIZE_INFORMATION => 28,
        _ => return None,
    })
}
