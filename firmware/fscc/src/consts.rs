//! Numeric constants of MS-FSCC, MS-SMB2 and MS-DTYP that the SMB layer and
//! this crate share. Names are the specs' own.

// ---------------------------------------------------------------------
// File information classes (MS-FSCC 2.4, "Level" column).
// ---------------------------------------------------------------------

/// FileDirectoryInformation (MS-FSCC 2.4.10).
pub const FILE_DIRECTORY_INFORMATION: u8 = 1;
/// FileFullDirectoryInformation (MS-FSCC 2.4.15).
pub const FILE_FULL_DIRECTORY_INFORMATION: u8 = 2;
/// FileBothDirectoryInformation (MS-FSCC 2.4.8).
pub const FILE_BOTH_DIRECTORY_INFORMATION: u8 = 3;
/// FileBasicInformation (MS-FSCC 2.4.7).
pub const FILE_BASIC_INFORMATION: u8 = 4;
/// FileStandardInformation (MS-FSCC 2.4.47).
pub const FILE_STANDARD_INFORMATION: u8 = 5;
/// FileInternalInformation (MS-FSCC 2.4.27).
pub const FILE_INTERNAL_INFORMATION: u8 = 6;
/// FileEaInformation (MS-FSCC 2.4.13).
pub const FILE_EA_INFORMATION: u8 = 7;
/// FileAccessInformation (MS-FSCC 2.4.1).
pub const FILE_ACCESS_INFORMATION: u8 = 8;
/// FileNameInformation (MS-FSCC 2.4.32).
pub const FILE_NAME_INFORMATION: u8 = 9;
/// FileRenameInformation (MS-FSCC 2.4.42).
pub const FILE_RENAME_INFORMATION: u8 = 10;
/// FileLinkInformation (MS-FSCC 2.4.28).
pub const FILE_LINK_INFORMATION: u8 = 11;
/// FileNamesInformation (MS-FSCC 2.4.33).
pub const FILE_NAMES_INFORMATION: u8 = 12;
/// FileDispositionInformation (MS-FSCC 2.4.11).
pub const FILE_DISPOSITION_INFORMATION: u8 = 13;
/// FilePositionInformation (MS-FSCC 2.4.40).
pub const FILE_POSITION_INFORMATION: u8 = 14;
/// FileFullEaInformation (MS-FSCC 2.4.16).
pub const FILE_FULL_EA_INFORMATION: u8 = 15;
/// FileModeInformation (MS-FSCC 2.4.31).
pub const FILE_MODE_INFORMATION: u8 = 16;
/// FileAlignmentInformation (MS-FSCC 2.4.3).
pub const FILE_ALIGNMENT_INFORMATION: u8 = 17;
/// FileAllInformation (MS-FSCC 2.4.2).
pub const FILE_ALL_INFORMATION: u8 = 18;
/// FileAllocationInformation (MS-FSCC 2.4.4).
pub const FILE_ALLOCATION_INFORMATION: u8 = 19;
/// FileEndOfFileInformation (MS-FSCC 2.4.14).
pub const FILE_END_OF_FILE_INFORMATION: u8 = 20;
/// FileAlternateNameInformation (MS-FSCC 2.4.5).
pub const FILE_ALTERNATE_NAME_INFORMATION: u8 = 21;
/// FileStreamInformation (MS-FSCC 2.4.49).
pub const FILE_STREAM_INFORMATION: u8 = 22;
/// FilePipeInformation (MS-FSCC 2.4.37).
pub const FILE_PIPE_INFORMATION: u8 = 23;
/// FilePipeLocalInformation (MS-FSCC 2.4.38).
pub const FILE_PIPE_LOCAL_INFORMATION: u8 = 24;
/// FilePipeRemoteInformation (MS-FSCC 2.4.39).
pub const FILE_PIPE_REMOTE_INFORMATION: u8 = 25;
/// FileCompressionInformation (MS-FSCC 2.4.9).
pub const FILE_COMPRESSION_INFORMATION: u8 = 28;
/// FileQuotaInformation (MS-FSCC 2.4.41).
pub const FILE_QUOTA_INFORMATION: u8 = 32;
/// FileNetworkOpenInformation (MS-FSCC 2.4.34).
pub const FILE_NETWORK_OPEN_INFORMATION: u8 = 34;
/// FileAttributeTagInformation (MS-FSCC 2.4.6).
pub const FILE_ATTRIBUTE_TAG_INFORMATION: u8 = 35;
/// FileIdBothDirectoryInformation (MS-FSCC 2.4.22).
pub const FILE_ID_BOTH_DIRECTORY_INFORMATION: u8 = 37;
/// FileIdFullDirectoryInformation (MS-FSCC 2.4.24).
pub const FILE_ID_FULL_DIRECTORY_INFORMATION: u8 = 38;
/// FileValidDataLengthInformation (MS-FSCC 2.4.50).
pub const FILE_VALID_DATA_LENGTH_INFORMATION: u8 = 39;
/// FileShortNameInformation (MS-FSCC 2.4.46).
pub const FILE_SHORT_NAME_INFORMATION: u8 = 40;
/// FileNormalizedNameInformation (MS-FSCC 2.4.35).
pub const FILE_NORMALIZED_NAME_INFORMATION: u8 = 48;
/// FileIdInformation (MS-FSCC 2.4.26).
pub const FILE_ID_INFORMATION: u8 = 59;
/// FileDispositionInformationEx (MS-FSCC 2.4.12).
pub const FILE_DISPOSITION_INFORMATION_EX: u8 = 64;
/// FileRenameInformationEx (MS-FSCC 2.4.43).
pub const FILE_RENAME_INFORMATION_EX: u8 = 65;

// ---------------------------------------------------------------------
// File system information classes (MS-FSCC 2.5).
// ---------------------------------------------------------------------

/// FileFsVolumeInformation (MS-FSCC 2.5.9).
pub const FILE_FS_VOLUME_INFORMATION: u8 = 1;
/// FileFsLabelInformation (MS-FSCC 2.5.5).
pub const FILE_FS_LABEL_INFORMATION: u8 = 2;
/// FileFsSizeInformation (MS-FSCC 2.5.8).
pub const FILE_FS_SIZE_INFORMATION: u8 = 3;
/// FileFsDeviceInformation (MS-FSCC 2.5.10).
pub const FILE_FS_DEVICE_INFORMATION: u8 = 4;
/// FileFsAttributeInformation (MS-FSCC 2.5.1).
pub const FILE_FS_ATTRIBUTE_INFORMATION: u8 = 5;
/// FileFsControlInformation (MS-FSCC 2.5.2).
pub const FILE_FS_CONTROL_INFORMATION: u8 = 6;
/// FileFsFullSizeInformation (MS-FSCC 2.5.4).
pub const FILE_FS_FULL_SIZE_INFORMATION: u8 = 7;
/// FileFsObjectIdInformation (MS-FSCC 2.5.6).
pub const FILE_FS_OBJECT_ID_INFORMATION: u8 = 8;
/// FileFsSectorSizeInformation (MS-FSCC 2.5.7).
pub const FILE_FS_SECTOR_SIZE_INFORMATION: u8 = 11;

// ---------------------------------------------------------------------
// File attributes (MS-FSCC 2.6).
// ---------------------------------------------------------------------

/// A file or directory that is read-only.
pub const FILE_ATTRIBUTE_READONLY: u32 = 0x0000_0001;
/// A file or directory that is hidden.
pub const FILE_ATTRIBUTE_HIDDEN: u32 = 0x0000_0002;
/// A file or directory that the operating system uses.
pub const FILE_ATTRIBUTE_SYSTEM: u32 = 0x0000_0004;
/// This item is a directory.
pub const FILE_ATTRIBUTE_DIRECTORY: u32 = 0x0000_0010;
/// A file or directory that requires to be archived.
pub const FILE_ATTRIBUTE_ARCHIVE: u32 = 0x0000_0020;
/// A file that has no other attributes set; valid only alone.
pub const FILE_ATTRIBUTE_NORMAL: u32 = 0x0000_0080;
/// A file that is being used for temporary storage.
pub const FILE_ATTRIBUTE_TEMPORARY: u32 = 0x0000_0100;
/// A sparse file.
pub const FILE_ATTRIBUTE_SPARSE_FILE: u32 = 0x0000_0200;
/// A file or directory that has an associated reparse point.
pub const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x0000_0400;
/// A file or directory that is compressed.
pub const FILE_ATTRIBUTE_COMPRESSED: u32 = 0x0000_0800;
/// The data in this file is not available immediately.
pub const FILE_ATTRIBUTE_OFFLINE: u32 = 0x0000_1000;
/// A file or directory that is not indexed by the content indexing service.
pub const FILE_ATTRIBUTE_NOT_CONTENT_INDEXED: u32 = 0x0000_2000;
/// A file or directory that is encrypted.
pub const FILE_ATTRIBUTE_ENCRYPTED: u32 = 0x0000_4000;
/// A file or directory that is configured with integrity support.
pub const FILE_ATTRIBUTE_INTEGRITY_STREAM: u32 = 0x0000_8000;
/// A file or directory excluded from the data integrity scan.
pub const FILE_ATTRIBUTE_NO_SCRUB_DATA: u32 = 0x0002_0000;
/// The file has no physical representation on the local system.
pub const FILE_ATTRIBUTE_RECALL_ON_OPEN: u32 = 0x0004_0000;
/// The file should be kept fully present locally.
pub const FILE_ATTRIBUTE_PINNED: u32 = 0x0008_0000;
/// The file should not be kept fully present locally.
pub const FILE_ATTRIBUTE_UNPINNED: u32 = 0x0010_0000;
/// The file is not fully present locally.
pub const FILE_ATTRIBUTE_RECALL_ON_DATA_ACCESS: u32 = 0x0040_0000;

// ---------------------------------------------------------------------
// Access mask (MS-SMB2 2.2.13.1.1 and 2.2.13.1.2, MS-DTYP 2.4.3).
// ---------------------------------------------------------------------

/// Right to read data from the file.
pub const FILE_READ_DATA: u32 = 0x0000_0001;
/// Right to enumerate the directory (same bit as FILE_READ_DATA).
pub const FILE_LIST_DIRECTORY: u32 = 0x0000_0001;
/// Right to write data into the file.
pub const FILE_WRITE_DATA: u32 = 0x0000_0002;
/// Right to create a file in the directory (same bit as FILE_WRITE_DATA).
pub const FILE_ADD_FILE: u32 = 0x0000_0002;
/// Right to append data to the file.
pub const FILE_APPEND_DATA: u32 = 0x0000_0004;
/// Right to create a subdirectory (same bit as FILE_APPEND_DATA).
pub const FILE_ADD_SUBDIRECTORY: u32 = 0x0000_0004;
/// Right to read the extended attributes.
pub const FILE_READ_EA: u32 = 0x0000_0008;
/// Right to write or change the extended attributes.
pub const FILE_WRITE_EA: u32 = 0x0000_0010;
/// Right to execute the file.
pub const FILE_EXECUTE: u32 = 0x0000_0020;
/// Right to traverse the directory (same bit as FILE_EXECUTE).
pub const FILE_TRAVERSE: u32 = 0x0000_0020;
/// Right to delete entries within a directory.
pub const FILE_DELETE_CHILD: u32 = 0x0000_0040;
/// Right to read the attributes of the file.
pub const FILE_READ_ATTRIBUTES: u32 = 0x0000_0080;
/// Right to change the attributes of the file.
pub const FILE_WRITE_ATTRIBUTES: u32 = 0x0000_0100;
/// Right to delete the file.
pub const DELETE: u32 = 0x0001_0000;
/// Right to read the security descriptor.
pub const READ_CONTROL: u32 = 0x0002_0000;
/// Right to change the DACL.
pub const WRITE_DAC: u32 = 0x0004_0000;
/// Right to change the owner.
pub const WRITE_OWNER: u32 = 0x0008_0000;
/// Right to wait on the handle.
pub const SYNCHRONIZE: u32 = 0x0010_0000;
/// Right to read or change the SACL.
pub const ACCESS_SYSTEM_SECURITY: u32 = 0x0100_0000;
/// Request for the maximum rights the caller may have.
pub const MAXIMUM_ALLOWED: u32 = 0x0200_0000;
/// Request for all rights.
pub const GENERIC_ALL: u32 = 0x1000_0000;
/// Request for execute rights.
pub const GENERIC_EXECUTE: u32 = 0x2000_0000;
/// Request for write rights.
pub const GENERIC_WRITE: u32 = 0x4000_0000;
/// Request for read rights.
pub const GENERIC_READ: u32 = 0x8000_0000;
/// Every specific and standard right on a file (MS-DTYP 2.4.3 mapping of
/// GENERIC_ALL for files): 0x001F01FF.
pub const FILE_ALL_ACCESS: u32 = 0x001F_01FF;
/// GENERIC_READ mapped for files: READ_CONTROL | SYNCHRONIZE |
/// FILE_READ_DATA | FILE_READ_ATTRIBUTES | FILE_READ_EA.
pub const FILE_GENERIC_READ: u32 = 0x0012_0089;
/// GENERIC_WRITE mapped for files: READ_CONTROL | SYNCHRONIZE |
/// FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES | FILE_WRITE_EA | FILE_APPEND_DATA.
pub const FILE_GENERIC_WRITE: u32 = 0x0012_0116;
/// GENERIC_EXECUTE mapped for files: READ_CONTROL | SYNCHRONIZE |
/// FILE_READ_ATTRIBUTES | FILE_EXECUTE.
pub const FILE_GENERIC_EXECUTE: u32 = 0x0012_00A0;

// ---------------------------------------------------------------------
// FileModeInformation (MS-FSCC 2.4.31).
// ---------------------------------------------------------------------

/// Writes reach the file before completing.
pub const FILE_WRITE_THROUGH: u32 = 0x0000_0002;
/// Access is sequential.
pub const FILE_SEQUENTIAL_ONLY: u32 = 0x0000_0004;
/// No buffering in driver caches.
pub const FILE_NO_INTERMEDIATE_BUFFERING: u32 = 0x0000_0008;
/// Synchronous I/O, alertable.
pub const FILE_SYNCHRONOUS_IO_ALERT: u32 = 0x0000_0010;
/// Synchronous I/O, not alertable.
pub const FILE_SYNCHRONOUS_IO_NONALERT: u32 = 0x0000_0020;
/// Not implemented; always returned as not set.
pub const FILE_DELETE_ON_CLOSE: u32 = 0x0000_1000;

// ---------------------------------------------------------------------
// FileAlignmentInformation (MS-FSCC 2.4.3).
// ---------------------------------------------------------------------

/// No alignment requirement.
pub const FILE_BYTE_ALIGNMENT: u32 = 0x0000_0000;
/// 2-byte alignment.
pub const FILE_WORD_ALIGNMENT: u32 = 0x0000_0001;
/// 4-byte alignment.
pub const FILE_LONG_ALIGNMENT: u32 = 0x0000_0003;
/// 8-byte alignment.
pub const FILE_QUAD_ALIGNMENT: u32 = 0x0000_0007;
/// 512-byte alignment.
pub const FILE_512_BYTE_ALIGNMENT: u32 = 0x0000_01FF;

// ---------------------------------------------------------------------
// FileDispositionInformationEx flags (MS-FSCC 2.4.12).
// ---------------------------------------------------------------------

/// No flag: the file is not deleted.
pub const FILE_DISPOSITION_DO_NOT_DELETE_FILE: u32 = 0x0000_0000;
/// The file should be deleted.
pub const FILE_DISPOSITION_DELETE: u32 = 0x0000_0001;
/// Delete with POSIX semantics.
pub const FILE_DISPOSITION_POSIX_SEMANTICS: u32 = 0x0000_0002;
/// Fail if an image section exists.
pub const FILE_DISPOSITION_FORCE_IMAGE_SECTION_CHECK: u32 = 0x0000_0004;
/// Update the delete-on-close state.
pub const FILE_DISPOSITION_ON_CLOSE: u32 = 0x0000_0008;
/// Allow deleting a read-only file.
pub const FILE_DISPOSITION_IGNORE_READONLY_ATTRIBUTE: u32 = 0x0000_0010;

// ---------------------------------------------------------------------
// FILE_FULL_EA_INFORMATION flags (MS-FSCC 2.4.16).
// ---------------------------------------------------------------------

/// The file cannot be interpreted without understanding its EAs.
pub const FILE_NEED_EA: u8 = 0x80;

// ---------------------------------------------------------------------
// FileCompressionInformation (MS-FSCC 2.4.9).
// ---------------------------------------------------------------------

/// The file or directory is not compressed.
pub const COMPRESSION_FORMAT_NONE: u16 = 0x0000;
/// LZNT1 compression.
pub const COMPRESSION_FORMAT_LZNT1: u16 = 0x0002;

// ---------------------------------------------------------------------
// FileFsAttributeInformation FileSystemAttributes (MS-FSCC 2.5.1).
// ---------------------------------------------------------------------

/// Case-sensitive lookups are supported.
pub const FILE_CASE_SENSITIVE_SEARCH: u32 = 0x0000_0001;
/// The case of names is preserved on disk.
pub const FILE_CASE_PRESERVED_NAMES: u32 = 0x0000_0002;
/// Unicode names on disk.
pub const FILE_UNICODE_ON_DISK: u32 = 0x0000_0004;
/// ACLs are preserved and enforced.
pub const FILE_PERSISTENT_ACLS: u32 = 0x0000_0008;
/// File-based compression.
pub const FILE_FILE_COMPRESSION: u32 = 0x0000_0010;
/// Per-user quotas.
pub const FILE_VOLUME_QUOTAS: u32 = 0x0000_0020;
/// Sparse files.
pub const FILE_SUPPORTS_SPARSE_FILES: u32 = 0x0000_0040;
/// Reparse points.
pub const FILE_SUPPORTS_REPARSE_POINTS: u32 = 0x0000_0080;
/// Remote storage.
pub const FILE_SUPPORTS_REMOTE_STORAGE: u32 = 0x0000_0100;
/// Cleanup returns result information.
pub const FILE_RETURNS_CLEANUP_RESULT_INFO: u32 = 0x0000_0200;
/// POSIX-style unlink and rename.
pub const FILE_SUPPORTS_POSIX_UNLINK_RENAME: u32 = 0x0000_0400;
/// The volume is compressed.
pub const FILE_VOLUME_IS_COMPRESSED: u32 = 0x0000_8000;
/// Object identifiers.
pub const FILE_SUPPORTS_OBJECT_IDS: u32 = 0x0001_0000;
/// Encrypted File System.
pub const FILE_SUPPORTS_ENCRYPTION: u32 = 0x0002_0000;
/// Named streams.
pub const FILE_NAMED_STREAMS: u32 = 0x0004_0000;
/// The volume is mounted read-only.
pub const FILE_READ_ONLY_VOLUME: u32 = 0x0008_0000;
/// The volume is write once.
pub const FILE_SEQUENTIAL_WRITE_ONCE: u32 = 0x0010_0000;
/// Transactions.
pub const FILE_SUPPORTS_TRANSACTIONS: u32 = 0x0020_0000;
/// Hard links.
pub const FILE_SUPPORTS_HARD_LINKS: u32 = 0x0040_0000;
/// Extended attributes are stored persistently.
pub const FILE_SUPPORTS_EXTENDED_ATTRIBUTES: u32 = 0x0080_0000;
/// Open by FileID or ObjectID.
pub const FILE_SUPPORTS_OPEN_BY_FILE_ID: u32 = 0x0100_0000;
/// USN change journal.
pub const FILE_SUPPORTS_USN_JOURNAL: u32 = 0x0200_0000;
/// Integrity streams.
pub const FILE_SUPPORT_INTEGRITY_STREAMS: u32 = 0x0400_0000;
/// Block reference counting.
pub const FILE_SUPPORTS_BLOCK_REFCOUNTING: u32 = 0x0800_0000;
/// Sparse valid data length.
pub const FILE_SUPPORTS_SPARSE_VDL: u32 = 0x1000_0000;

// ---------------------------------------------------------------------
// FileFsDeviceInformation (MS-FSCC 2.5.10).
// ---------------------------------------------------------------------

/// Volume resides on a CD ROM.
pub const FILE_DEVICE_CD_ROM: u32 = 0x0000_0002;
/// Volume resides on a disk.
pub const FILE_DEVICE_DISK: u32 = 0x0000_0007;
/// Removable media.
pub const FILE_REMOVABLE_MEDIA: u32 = 0x0000_0001;
/// The device cannot be written to.
pub const FILE_READ_ONLY_DEVICE: u32 = 0x0000_0002;
/// Floppy disk device.
pub const FILE_FLOPPY_DISKETTE: u32 = 0x0000_0004;
/// Write-once media.
pub const FILE_WRITE_ONCE_MEDIA: u32 = 0x0000_0008;
/// Remote file system.
pub const FILE_REMOTE_DEVICE: u32 = 0x0000_0010;
/// A file system is mounted on the device.
pub const FILE_DEVICE_IS_MOUNTED: u32 = 0x0000_0020;
/// Virtual volume.
pub const FILE_VIRTUAL_VOLUME: u32 = 0x0000_0040;

// ---------------------------------------------------------------------
// FileFsSectorSizeInformation flags (MS-FSCC 2.5.7).
// ---------------------------------------------------------------------

/// First physical sector aligned with the first logical sector.
pub const SSINFO_FLAGS_ALIGNED_DEVICE: u32 = 0x0000_0001;
/// The partition is aligned to physical sectors.
pub const SSINFO_FLAGS_PARTITION_ALIGNED_ON_DEVICE: u32 = 0x0000_0002;
/// No seek penalty.
pub const SSINFO_FLAGS_NO_SEEK_PENALTY: u32 = 0x0000_0004;
/// TRIM or UNMAP supported.
pub const SSINFO_FLAGS_TRIM_ENABLED: u32 = 0x0000_0008;
/// Offset could not be computed.
pub const SSINFO_OFFSET_UNKNOWN: u32 = 0xFFFF_FFFF;

// ---------------------------------------------------------------------
// SECURITY_INFORMATION (MS-DTYP 2.4.7) as used in SMB2 AdditionalInformation.
// ---------------------------------------------------------------------

/// The owner of the object.
pub const OWNER_SECURITY_INFORMATION: u32 = 0x0000_0001;
/// The primary group of the object.
pub const GROUP_SECURITY_INFORMATION: u32 = 0x0000_0002;
/// The DACL of the object.
pub const DACL_SECURITY_INFORMATION: u32 = 0x0000_0004;
/// The SACL of the object.
pub const SACL_SECURITY_INFORMATION: u32 = 0x0000_0008;
/// The mandatory integrity label.
pub const LABEL_SECURITY_INFORMATION: u32 = 0x0000_0010;

// ---------------------------------------------------------------------
// SECURITY_DESCRIPTOR Control (MS-DTYP 2.4.6) and ACL/ACE (2.4.4, 2.4.5).
// ---------------------------------------------------------------------

/// OD: Owner Defaulted.
pub const SE_OWNER_DEFAULTED: u16 = 0x0001;
/// GD: Group Defaulted.
pub const SE_GROUP_DEFAULTED: u16 = 0x0002;
/// DP: DACL Present.
pub const SE_DACL_PRESENT: u16 = 0x0004;
/// DD: DACL Defaulted.
pub const SE_DACL_DEFAULTED: u16 = 0x0008;
/// SP: SACL Present.
pub const SE_SACL_PRESENT: u16 = 0x0010;
/// SD: SACL Defaulted.
pub const SE_SACL_DEFAULTED: u16 = 0x0020;
/// DI: DACL Auto-Inherited.
pub const SE_DACL_AUTO_INHERITED: u16 = 0x0400;
/// SI: SACL Auto-Inherited.
pub const SE_SACL_AUTO_INHERITED: u16 = 0x0800;
/// PD: DACL Protected.
pub const SE_DACL_PROTECTED: u16 = 0x1000;
/// PS: SACL Protected.
pub const SE_SACL_PROTECTED: u16 = 0x2000;
/// SR: Self-Relative.
pub const SE_SELF_RELATIVE: u16 = 0x8000;

/// SECURITY_DESCRIPTOR Revision (MS-DTYP 2.4.6): MUST be one.
pub const SECURITY_DESCRIPTOR_REVISION: u8 = 1;
/// ACL revision for ACLs without object ACEs (MS-DTYP 2.4.5).
pub const ACL_REVISION: u8 = 2;
/// ACCESS_ALLOWED_ACE_TYPE (MS-DTYP 2.4.4.1).
pub const ACCESS_ALLOWED_ACE_TYPE: u8 = 0x00;
/// ACCESS_DENIED_ACE_TYPE (MS-DTYP 2.4.4.1).
pub const ACCESS_DENIED_ACE_TYPE: u8 = 0x01;
/// OBJECT_INHERIT_ACE (MS-DTYP 2.4.4.1).
pub const OBJECT_INHERIT_ACE: u8 = 0x01;
/// CONTAINER_INHERIT_ACE (MS-DTYP 2.4.4.1).
pub const CONTAINER_INHERIT_ACE: u8 = 0x02;
/// NO_PROPAGATE_INHERIT_ACE (MS-DTYP 2.4.4.1).
pub const NO_PROPAGATE_INHERIT_ACE: u8 = 0x04;
/// INHERIT_ONLY_ACE (MS-DTYP 2.4.4.1).
pub const INHERIT_ONLY_ACE: u8 = 0x08;
/// INHERITED_ACE (MS-DTYP 2.4.4.1).
pub const INHERITED_ACE: u8 = 0x10;

// ---------------------------------------------------------------------
// Reparse tags (MS-FSCC 2.1.2.1) this server may report.
// ---------------------------------------------------------------------

/// Symbolic link reparse point.
pub const IO_REPARSE_TAG_SYMLINK: u32 = 0xA000_000C;
