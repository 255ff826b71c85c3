//! Byte layouts of the QUERY_INFO file system information classes
//! (MS-FSCC 2.5).

use duet_fscc::consts::*;
use duet_fscc::{encode_fs_info, fs_info_min_output_size, FsStats, FsccError};

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

const CLUSTER: u64 = 512 * 8;

fn stats() -> FsStats {
    FsStats {
        total_bytes: 1000 * CLUSTER + 123,
        free_bytes: 400 * CLUSTER + 5,
        caller_available_bytes: 300 * CLUSTER,
        bytes_per_sector: 512,
        sectors_per_allocation_unit: 8,
        volume_serial: 0xCAFE_F00D,
        volume_label: "duet".into(),
        volume_creation_time: 0x01D9_0000_0000_0000,
        fs_name: "NTFS".into(),
        max_component_name_length: 255,
        fs_attributes: FILE_CASE_SENSITIVE_SEARCH
            | FILE_CASE_PRESERVED_NAMES
            | FILE_UNICODE_ON_DISK
            | FILE_PERSISTENT_ACLS
            | FILE_SUPPORTS_OBJECT_IDS,
    }
}

fn enc(class: u8, s: &FsStats) -> Vec<u8> {
    let mut out = Vec::new();
    encode_fs_info(class, s, &mut out).unwrap();
    out
}

#[test]
fn volume_information() {
    let s = stats();
    let b = enc(FILE_FS_VOLUME_INFORMATION, &s);
    let label = utf16("duet");
    assert_eq!(b.len(), 18 + label.len());
    assert_eq!(u64_at(&b, 0), s.volume_creation_time);
    assert_eq!(u32_at(&b, 8), 0xCAFE_F00D);
    assert_eq!(u32_at(&b, 12) as usize, label.len());
    assert_eq!(b[16], 1, "SupportsObjects follows FILE_SUPPORTS_OBJECT_IDS");
    assert_eq!(b[17], 0, "Reserved");
    assert_eq!(&b[18..], &label[..]);

    let s = FsStats {
        fs_attributes: 0,
        volume_label: String::new(),
        ..stats()
    };
    let b = enc(FILE_FS_VOLUME_INFORMATION, &s);
    assert_eq!(b.len(), 18);
    assert_eq!((u32_at(&b, 12), b[16]), (0, 0));
}

#[test]
fn size_information_is_24_bytes() {
    let b = enc(FILE_FS_SIZE_INFORMATION, &stats());
    assert_eq!(b.len(), 24);
    assert_eq!(u64_at(&b, 0), 1000, "TotalAllocationUnits");
    assert_eq!(u64_at(&b, 8), 300, "AvailableAllocationUnits: the caller's");
    assert_eq!(u32_at(&b, 16), 8, "SectorsPerAllocationUnit");
    assert_eq!(u32_at(&b, 20), 512, "BytesPerSector");
}

#[test]
fn full_size_information_is_32_bytes() {
    let b = enc(FILE_FS_FULL_SIZE_INFORMATION, &stats());
    assert_eq!(b.len(), 32);
    assert_eq!(u64_at(&b, 0), 1000, "TotalAllocationUnits");
    assert_eq!(u64_at(&b, 8), 300, "CallerAvailableAllocationUnits");
    assert_eq!(u64_at(&b, 16), 400, "ActualAvailableAllocationUnits");
    assert_eq!(u32_at(&b, 24), 8);
    assert_eq!(u32_at(&b, 28), 512);
}

#[test]
fn zero_cluster_size_is_rejected() {
    for s in [
        FsStats {
            bytes_per_sector: 0,
            ..stats()
        },
        FsStats {
            sectors_per_allocation_unit: 0,
            ..stats()
        },
    ] {
        for class in [FILE_FS_SIZE_INFORMATION, FILE_FS_FULL_SIZE_INFORMATION] {
            let mut out = Vec::new();
            assert_eq!(
                encode_fs_info(class, &s, &mut out),
                Err(FsccError::InvalidParameter)
            );
            assert!(out.is_empty());
        }
    }
}

#[test]
fn device_information_is_8_bytes() {
    let b = enc(FILE_FS_DEVICE_INFORMATION, &stats());
    assert_eq!(b.len(), 8);
    assert_eq!(u32_at(&b, 0), FILE_DEVICE_DISK);
    assert_eq!(u32_at(&b, 4), FILE_DEVICE_IS_MOUNTED);
    let ro = FsStats {
        fs_attributes: FILE_READ_ONLY_VOLUME,
        ..stats()
    };
    let b = enc(FILE_FS_DEVICE_INFORMATION, &ro);
    assert_eq!(
        u32_at(&b, 4),
        FILE_DEVICE_IS_MOUNTED | FILE_READ_ONLY_DEVICE
    );
}

#[test]
fn attribute_information() {
    let s = stats();
    let b = enc(FILE_FS_ATTRIBUTE_INFORMATION, &s);
    assert_eq!(b.len(), 12 + 8);
    assert_eq!(u32_at(&b, 0), s.fs_attributes);
    assert_eq!(u32_at(&b, 4), 255);
    assert_eq!(u32_at(&b, 8), 8);
    assert_eq!(&b[12..], &utf16("NTFS")[..], "not null-terminated");
}

#[test]
fn control_information_is_48_bytes() {
    let b = enc(FILE_FS_CONTROL_INFORMATION, &stats());
    assert_eq!(b.len(), 48);
    assert_eq!(&b[0..24], &[0; 24]);
    assert_eq!(u64_at(&b, 24), u64::MAX, "DefaultQuotaThreshold: none");
    assert_eq!(u64_at(&b, 32), u64::MAX, "DefaultQuotaLimit: none");
    assert_eq!(u32_at(&b, 40), 0);
    assert_eq!(u32_at(&b, 44), 0);
}

#[test]
fn object_id_information_is_64_bytes() {
    let b = enc(FILE_FS_OBJECT_ID_INFORMATION, &stats());
    assert_eq!(b.len(), 64);
    assert_eq!(u32_at(&b, 0), 0xCAFE_F00D);
    assert!(b[4..].iter().all(|&x| x == 0));
}

#[test]
fn sector_size_information_is_28_bytes() {
    let b = enc(FILE_FS_SECTOR_SIZE_INFORMATION, &stats());
    assert_eq!(b.len(), 28);
    for o in [0, 4, 8, 12] {
        assert_eq!(u32_at(&b, o), 512, "offset {o}");
    }
    assert_eq!(
        u32_at(&b, 16),
        SSINFO_FLAGS_ALIGNED_DEVICE | SSINFO_FLAGS_PARTITION_ALIGNED_ON_DEVICE
    );
    assert_eq!(u32_at(&b, 20), 0);
    assert_eq!(u32_at(&b, 24), 0);
}

#[test]
fn unknown_fs_classes() {
    for class in [0u8, 2, 9, 10, 12, 255] {
        let mut out = vec![9];
        assert_eq!(
            encode_fs_info(class, &stats(), &mut out),
            Err(FsccError::InvalidInfoClass),
            "class {class}"
        );
        assert_eq!(out, [9]);
        assert_eq!(fs_info_min_output_size(class), None);
    }
}

#[test]
fn minimum_sizes_match_smbtorture() {
    // smb2.getinfo.qfs_buffercheck, plus FileFsObjectIdInformation.
    let table = [
        (FILE_FS_VOLUME_INFORMATION, 24),
        (FILE_FS_SIZE_INFORMATION, 24),
        (FILE_FS_DEVICE_INFORMATION, 8),
        (FILE_FS_ATTRIBUTE_INFORMATION, 16),
        (FILE_FS_CONTROL_INFORMATION, 48),
        (FILE_FS_FULL_SIZE_INFORMATION, 32),
        (FILE_FS_OBJECT_ID_INFORMATION, 64),
        (FILE_FS_SECTOR_SIZE_INFORMATION, 28),
    ];
    for (class, size) in table {
        assert_eq!(fs_info_min_output_size(class), Some(size), "class {class}");
    }
}
