//! Sparse files in `duet_hal::fs`: the SPARSE_FILE flag, zeroing ranges
//! with and without deallocation, and allocated-range queries (on the
//! filesystem of $TMPDIR: ext4 on the project's machines, 4 KiB blocks).

use duet_hal::fs::{dos, Disposition, FsError, Handle, Kind, OpenOptions, ShareRoot};
use tempfile::TempDir;

const K64: u64 = 64 * 1024;

fn share() -> (TempDir, ShareRoot) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = ShareRoot::open(dir.path()).expect("open share");
    (dir, s)
}

fn create(s: &ShareRoot, path: &str, len: u64) -> Handle {
    let o = OpenOptions {
        read: true,
        write: true,
        disposition: Disposition::Create,
        ..OpenOptions::default()
    };
    let (h, _) = s.open_file(path, &o).expect("create");
    if len > 0 {
        h.write_at(&vec![0xA5u8; len as usize], 0).expect("fill");
    }
    h
}

fn reopen(s: &ShareRoot, path: &str) -> Handle {
    s.open_file(path, &OpenOptions::default())
        .expect("reopen")
        .0
}

fn sparse(h: &Handle) -> bool {
    h.meta().expect("meta").dos_attributes & dos::SPARSE_FILE != 0
}

/// Whether the filesystem under $TMPDIR deallocates punched blocks (ext4,
/// xfs, btrfs, tmpfs do); the allocation assertions need it.
fn punches(s: &ShareRoot) -> bool {
    let h = create(s, "probe", 2 * K64);
    h.zero_range(0, K64, true).expect("punch");
    let (r, _) = h.allocated_ranges(0, 2 * K64, 16).expect("ranges");
    r == vec![(K64, K64)]
}

#[test]
fn sparse_flag_persists_and_survives_attribute_changes() {
    let (_d, s) = share();
    let h = create(&s, "f", 0);
    assert!(!sparse(&h));
    h.set_sparse(true).expect("set");
    assert!(sparse(&h));
    assert!(sparse(&reopen(&s, "f")), "kept across opens");
    assert_eq!(
        h.meta().unwrap().dos_attributes,
        dos::ARCHIVE | dos::SPARSE_FILE
    );
    // Setting other attributes neither sets nor clears it.
    h.set_dos_attributes(dos::HIDDEN).expect("attrs");
    assert_eq!(
        h.meta().unwrap().dos_attributes,
        dos::HIDDEN | dos::SPARSE_FILE
    );
    h.set_dos_attributes(0).expect("clear attrs");
    assert_eq!(h.meta().unwrap().dos_attributes, dos::SPARSE_FILE);
    h.set_sparse(false).expect("clear");
    assert!(!sparse(&h));
    assert_eq!(h.meta().unwrap().dos_attributes, dos::NORMAL);
    // Asking for it through the attributes does not make a file sparse.
    let o = OpenOptions {
        write: true,
        disposition: Disposition::Create,
        attributes_on_create: dos::SPARSE_FILE | dos::NORMAL,
        ..OpenOptions::default()
    };
    let (g, _) = s.open_file("g", &o).expect("create g");
    assert!(!sparse(&g));
    g.set_dos_attributes(dos::SPARSE_FILE | dos::ARCHIVE)
        .expect("attrs");
    assert!(!sparse(&g));
}

#[test]
fn directories_cannot_be_sparse() {
    let (_d, s) = share();
    let o = OpenOptions {
        disposition: Disposition::Create,
        kind: Kind::Directory,
        ..OpenOptions::default()
    };
    let (h, _) = s.open_file("d", &o).expect("mkdir");
    assert!(matches!(
        h.set_sparse(true),
        Err(FsError::InvalidParameter(_))
    ));
}

#[test]
fn zero_range_zeroes_within_eof_only() {
    let (_d, s) = share();
    let h = create(&s, "f", 10_000);
    for dealloc in [false, true] {
        h.write_at(&vec![0xA5u8; 10_000], 0).unwrap();
        h.zero_range(100, 5000, dealloc).expect("zero");
        let mut buf = vec![0u8; 10_000];
        assert_eq!(h.read_at(&mut buf, 0).unwrap(), 10_000);
        assert!(buf[..100].iter().all(|&b| b == 0xA5));
        assert!(buf[100..5100].iter().all(|&b| b == 0));
        assert!(buf[5100..].iter().all(|&b| b == 0xA5));
        // Past the end: nothing happens, the size stays.
        h.zero_range(9_000, 50_000, dealloc).expect("zero past eof");
        h.zero_range(20_000, 10, dealloc).expect("zero beyond eof");
        assert_eq!(h.meta().unwrap().size, 10_000);
        assert_eq!(h.read_at(&mut buf, 0).unwrap(), 10_000);
        assert!(buf[9_000..].iter().all(|&b| b == 0));
    }
}

#[test]
fn punched_ranges_are_holes_and_zeroed_ranges_are_not() {
    let (_d, s) = share();
    if !punches(&s) {
        eprintln!("skipped: this filesystem does not deallocate punched ranges");
        return;
    }
    let h = create(&s, "f", 4 * K64);
    let all = |h: &Handle| h.allocated_ranges(0, u64::MAX / 2, 64).unwrap();
    assert_eq!(all(&h), (vec![(0, 4 * K64)], false));
    // Zeroing without deallocation keeps the space (ext4 marks it unwritten,
    // which SEEK_DATA may report as a hole: not asserted) and the size.
    h.zero_range(0, K64, false).unwrap();
    assert!(h.meta().unwrap().allocation >= 4 * K64);
    // Punch the second and fourth 64 KiB.
    h.write_at(&vec![1u8; K64 as usize], 0).unwrap();
    h.zero_range(K64, K64, true).unwrap();
    h.zero_range(3 * K64, K64, true).unwrap();
    assert_eq!(all(&h), (vec![(0, K64), (2 * K64, K64)], false));
    assert_eq!(h.meta().unwrap().size, 4 * K64);
    // Clipping to the range asked and to EOF, off by one either side.
    assert_eq!(
        h.allocated_ranges(0, K64 - 1, 8).unwrap().0,
        vec![(0, K64 - 1)]
    );
    assert_eq!(h.allocated_ranges(0, K64 + 1, 8).unwrap().0, vec![(0, K64)]);
    assert_eq!(h.allocated_ranges(1, K64, 8).unwrap().0, vec![(1, K64 - 1)]);
    assert_eq!(
        h.allocated_ranges(K64 - 1, K64, 8).unwrap().0,
        vec![(K64 - 1, 1)]
    );
    assert!(h
        .allocated_ranges(K64 + 1, K64 - 1, 8)
        .unwrap()
        .0
        .is_empty());
    assert_eq!(
        h.allocated_ranges(2 * K64 + 5, 10 * K64, 8).unwrap().0,
        vec![(2 * K64 + 5, K64 - 5)]
    );
    assert!(h.allocated_ranges(4 * K64, 100, 8).unwrap().0.is_empty());
    assert!(h.allocated_ranges(0, 0, 8).unwrap().0.is_empty());
    // A limit on the number of ranges.
    assert_eq!(
        h.allocated_ranges(0, 4 * K64, 1).unwrap(),
        (vec![(0, K64)], true)
    );
    assert_eq!(h.allocated_ranges(0, 4 * K64, 0).unwrap(), (vec![], true));
    assert_eq!(
        h.allocated_ranges(0, 2 * K64, 1).unwrap(),
        (vec![(0, K64)], false)
    );
    // Data written into a hole makes it allocated again; the data reads back.
    h.write_at(b"abc", K64 + 10).unwrap();
    let (r, _) = all(&h);
    assert_eq!(r.len(), 2);
    assert!(r[0].0 == 0 && r[0].1 > K64, "{r:?}");
    let mut buf = [9u8; 16];
    h.read_at(&mut buf, K64 + 5).unwrap();
    assert_eq!(&buf, b"\0\0\0\0\0abc\0\0\0\0\0\0\0\0");
}

#[test]
fn punching_to_the_end_of_file_frees_the_last_partial_block() {
    let (_d, s) = share();
    if !punches(&s) {
        eprintln!("skipped: this filesystem does not deallocate punched ranges");
        return;
    }
    let h = create(&s, "f", K64 + 1024);
    h.zero_range(0, K64 + 1024, true).expect("punch");
    assert_eq!(h.allocated_ranges(0, 2 * K64, 8).unwrap(), (vec![], false));
    assert_eq!(h.meta().unwrap().size, K64 + 1024);
    // Short of the end, the partial block stays (zeroed).
    let g = create(&s, "g", K64 + 1024);
    g.zero_range(0, K64 + 1000, true).expect("punch");
    assert_eq!(
        g.allocated_ranges(0, 2 * K64, 8).unwrap().0,
        vec![(K64, 1024)]
    );
    let mut buf = vec![1u8; 1024];
    g.read_at(&mut buf, K64).unwrap();
    assert!(buf[..1000].iter().all(|&b| b == 0) && buf[1000..].iter().all(|&b| b == 0xA5));
}
