//! Renames (SET_INFO FileRenameInformation, MS-SMB2 3.3.5.21.1, MS-FSA 2.1.5.15.11): the
//! checks against other opens and the update of every open's path.
//!
//! Owns: rename rules. Never replaces a file that someone has open, or a directory; never
//! moves a directory with open files below it.

use duet_hal::fs::FsError;

use super::create::fs_status;
use super::files::FileKey;
use super::{names, notify, Conn, Fail};
use crate::wire::status;

fn parent_of(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// A rename through SET_INFO FileRenameInformation (MS-FSA 2.1.5.15.11). `from` is the
/// open's path, `to` the new share path as the client spelled it (names match
/// case-insensitively: `names`).
pub fn rename(
    conn: &mut Conn,
    vol: u64,
    from: &str,
    to: &str,
    replace: bool,
    is_dir: bool,
) -> Result<(), Fail> {
    let open = conn
        .opens
        .get(&vol)
        .ok_or(Fail::Status(status::FILE_CLOSED))?;
    let root = open
        .root
        .clone()
        .ok_or(Fail::Status(status::INVALID_PARAMETER))?;
    let key = open.key;
    super::streams::check_file_rename(conn, key)?;
    // Another connection may have renamed the file (or a directory above it) since this
    // open was made: the file table has its current path.
    let from = key
        .and_then(|k| conn.server.files.lock().ok().and_then(|f| f.path_of(&k)))
        .unwrap_or_else(|| from.to_string());
    let from = from.as_str();
    if from.is_empty() || to.is_empty() {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    // The target's directory, with its name on disk; the last component as the client
    // spelled it.
    let (to_dir, to_leaf) = parent_of(to);
    let (to_dir, _) = names::resolve(&conn.server.names, &root, to_dir);
    let to_spelled = join(&to_dir, to_leaf);
    if from == to_spelled {
        return Ok(());
    }
    // Windows opens the target's directory for the rename (FILE_ADD_FILE or
    // FILE_ADD_SUBDIRECTORY, sharing read and write): opens of that directory that
    // deny write sharing, or that hold DELETE access, make it a sharing violation.
    let dir_meta = root.stat(&to_dir).map_err(|e| match e {
        FsError::NotFound | FsError::PathNotFound => Fail::Status(status::OBJECT_PATH_NOT_FOUND),
        e => Fail::Status(fs_status(&e)),
    })?;
    if !dir_meta.is_dir {
        return Err(Fail::Status(status::OBJECT_PATH_NOT_FOUND));
    }
    let dir_key = FileKey {
        dev: dir_meta.dev,
        ino: dir_meta.ino,
        stream: 0,
    };
    if !conn
        .server
        .files
        .lock()
        .map(|f| f.check_rename_target_dir(&dir_key, is_dir))
        .unwrap_or(true)
    {
        return Err(Fail::Status(status::SHARING_VIOLATION));
    }
    let (existing, _) = names::resolve(&conn.server.names, &root, &to_spelled);
    let mut replacing = false;
    let target = if existing == from {
        // Only the case of the name changes.
        to_spelled.clone()
    } else {
        match root.stat(&existing) {
            Ok(m) => {
                if !replace {
                    return Err(Fail::Status(status::OBJECT_NAME_COLLISION));
                }
                if m.is_dir {
                    return Err(Fail::Status(status::ACCESS_DENIED));
                }
                let tkey = FileKey {
                    dev: m.dev,
                    ino: m.ino,
                    stream: 0,
                };
                if conn
                    .server
                    .files
                    .lock()
                    .map(|f| f.open_count(&tkey) > 0)
                    .unwrap_or(false)
                {
                    return Err(Fail::Status(status::ACCESS_DENIED));
                }
                replacing = true;
                existing
            }
            Err(_) => to_spelled.clone(),
        }
    };
    if is_dir
        && conn
            .server
            .files
            .lock()
            .map(|f| f.has_open_below(&root, from))
            .unwrap_or(false)
    {
        return Err(Fail::Status(status::ACCESS_DENIED));
    }
    // Without a replace the rename itself refuses an existing target (atomically).
    root.rename(from, &target, replacing)
        .map_err(|e| Fail::Status(fs_status(&e)))?;
    names::forget(&conn.server.names, &root, &to_dir);
    if let Some(k) = key {
        if let Ok(mut f) = conn.server.files.lock() {
            f.set_path(&k, &target);
        }
        // Durable opens are restored by path: their records follow the file.
        super::durable::file_renamed(conn, k, &target);
    }
    for o in conn.opens.values_mut() {
        if o.key == key && key.is_some() {
            o.path = target.clone();
        }
    }
    notify::report(
        conn,
        &root,
        from,
        notify::FILE_ACTION_RENAMED_OLD_NAME,
        is_dir,
    );
    notify::report(
        conn,
        &root,
        &target,
        notify::FILE_ACTION_RENAMED_NEW_NAME,
        is_dir,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::create::{FILE_CREATE, FILE_DIRECTORY_FILE, FILE_OPEN, FILE_OPEN_IF};
    use super::super::testkit::{CreateArgs, Kit};
    use crate::wire::status;
    use duet_fscc::consts::*;

    fn args(name: &str, desired: u32, share: u32, disposition: u32, options: u32) -> CreateArgs {
        CreateArgs {
            desired,
            share,
            disposition,
            options,
            ..CreateArgs::new(name)
        }
    }

    /// The smb2.rename share tests: the target directory is held open by another handle.
    #[test]
    fn an_open_of_the_target_directory_can_forbid_the_rename() {
        let rw = FILE_READ_DATA
            | FILE_WRITE_DATA
            | FILE_APPEND_DATA
            | FILE_READ_ATTRIBUTES
            | SYNCHRONIZE;
        // (access of the directory's open, its share mode, the rename's status)
        let cases = [
            (rw | DELETE, 7, status::SHARING_VIOLATION),
            (rw | DELETE, 0, status::SHARING_VIOLATION),
            (rw, 7, status::SUCCESS),
            (rw, 0, status::SHARING_VIOLATION),
            (rw, 3, status::SUCCESS),
            // Attribute-only opens take no part (Word opens the directory so).
            (FILE_READ_ATTRIBUTES | SYNCHRONIZE, 0, status::SUCCESS),
        ];
        for (access, share, want) in cases {
            let kit = Kit::new();
            let mut c = kit.client();
            c.touch(&args("d", 0x001F_01FF, 7, FILE_CREATE, FILE_DIRECTORY_FILE))
                .unwrap();
            let dir = c
                .create(&args("d", access, share, FILE_OPEN, FILE_DIRECTORY_FILE))
                .unwrap();
            let f = c
                .create(&args("d\\file.txt", rw | DELETE, 0, FILE_CREATE, 0))
                .unwrap();
            assert_eq!(
                c.rename(f.fid, "d\\newname.txt", false),
                want,
                "access {access:#x} share {share}"
            );
            assert_eq!(kit.path("d/newname.txt").exists(), want == status::SUCCESS);
            // Elsewhere the directory's open does not matter.
            assert_eq!(c.rename(f.fid, "moved.txt", false), status::SUCCESS);
            assert_eq!(c.close(f.fid), 0);
            assert_eq!(c.close(dir.fid), 0);
        }
    }

    #[test]
    fn target_names_match_without_regard_to_case() {
        let kit = Kit::new();
        let mut c = kit.client();
        c.touch(&CreateArgs::new("b.txt")).unwrap();
        c.touch(&args(
            "Sub",
            0x001F_01FF,
            7,
            FILE_CREATE,
            FILE_DIRECTORY_FILE,
        ))
        .unwrap();
        let a = c.create(&CreateArgs::new("a.txt")).unwrap();
        // Another spelling of an existing name collides, or is replaced.
        assert_eq!(
            c.rename(a.fid, "B.TXT", false),
            status::OBJECT_NAME_COLLISION
        );
        assert_eq!(c.rename(a.fid, "B.TXT", true), status::SUCCESS);
        assert!(
            kit.path("b.txt").is_file()
                && !kit.path("a.txt").exists()
                && !kit.path("B.TXT").exists()
        );
        // Changing only the case renames; the target's directory is found in any case.
        assert_eq!(c.rename(a.fid, "B.tXt", false), status::SUCCESS);
        assert!(kit.path("B.tXt").is_file() && !kit.path("b.txt").exists());
        assert_eq!(c.rename(a.fid, "SUB\\Moved.txt", false), status::SUCCESS);
        assert!(kit.path("Sub/Moved.txt").is_file());
        // A target directory that does not exist.
        assert_eq!(
            c.rename(a.fid, "nodir\\x.txt", false),
            status::OBJECT_PATH_NOT_FOUND
        );
        assert_eq!(
            c.rename(a.fid, "Sub\\Moved.txt\\x.txt", false),
            status::OBJECT_PATH_NOT_FOUND
        );
        // The same name again is a no-op.
        assert_eq!(c.rename(a.fid, "sub\\Moved.txt", false), status::SUCCESS);
        assert!(kit.path("Sub/Moved.txt").is_file());
        // The open follows its file.
        assert_eq!(c.close(a.fid), 0);
        assert!(c
            .touch(&args("sub\\moved.TXT", 0x001F_01FF, 7, FILE_OPEN, 0))
            .is_ok());
    }

    #[test]
    fn a_rename_through_another_connection_moves_every_open() {
        let kit = Kit::new();
        let mut one = kit.client();
        let mut two = kit.client();
        let h1 = one.create(&CreateArgs::new("x.txt")).unwrap();
        let h2 = two.create(&CreateArgs::new("x.txt")).unwrap();
        assert_eq!(two.rename(h2.fid, "y.txt", false), status::SUCCESS);
        // The first connection's handle still renames the file, from where it is now.
        assert_eq!(one.rename(h1.fid, "z.txt", false), status::SUCCESS);
        assert!(kit.path("z.txt").is_file() && !kit.path("y.txt").exists());
        assert_eq!(one.close(h1.fid), 0);
        assert_eq!(two.close(h2.fid), 0);
    }

    #[test]
    fn a_directory_with_open_files_below_cannot_move() {
        let kit = Kit::new();
        let mut c = kit.client();
        let d = c
            .create(&args("d", 0x001F_01FF, 7, FILE_CREATE, FILE_DIRECTORY_FILE))
            .unwrap();
        c.touch(&args(
            "d\\sub",
            0x001F_01FF,
            7,
            FILE_CREATE,
            FILE_DIRECTORY_FILE,
        ))
        .unwrap();
        let f = c
            .create(&args("d\\sub\\f", 0x001F_01FF, 7, FILE_OPEN_IF, 0))
            .unwrap();
        assert_eq!(c.rename(d.fid, "e", false), status::ACCESS_DENIED);
        assert_eq!(c.close(f.fid), 0);
        assert_eq!(c.rename(d.fid, "e", false), status::SUCCESS);
        assert!(kit.path("e/sub/f").is_file());
        assert_eq!(c.close(d.fid), 0);
    }
}
