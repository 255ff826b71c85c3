//! Case-insensitive name lookup. Windows clients expect names to compare without regard
//! to case (the server's opens are IsCaseInsensitive, MS-FSA 2.1.5.1 and 2.1.1.6); the
//! share's Linux filesystem is case-sensitive. A name that does not exist as spelled is
//! looked up in its parent directory ignoring case.
//!
//! Owns: turning a client's spelling of a share path into the spelling on disk, and a
//! bounded cache of case-folded directory listings, so that creating many new names in a
//! large directory does not list it once per create. Never resolves anything outside the
//! share: every lookup goes through `duet_hal::fs::ShareRoot`.

use std::collections::HashMap;
use std::sync::Mutex;

use duet_hal::fs::{Disposition, FsError, Kind, Meta, OpenOptions, ShareRoot};

use super::files::FileKey;

/// Directories whose listing is kept.
const MAX_DIRS: usize = 64;
/// Names kept over all cached directories; a bigger directory is listed but not kept.
const MAX_NAMES: usize = 256 * 1024;

/// Simple uppercase of one character (its single-character mapping; characters whose
/// uppercase is several characters, such as 'ß', stay as they are), as Windows' upcase
/// table compares names.
fn fold_char(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// A name in the form names are compared in.
pub fn fold(name: &str) -> String {
    name.chars().map(fold_char).collect()
}

/// What tells whether a directory's entries changed: both times move when an entry is
/// added, removed or renamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Version {
    write_time: u64,
    change_time: u64,
}

impl Version {
    fn of(m: &Meta) -> Version {
        Version {
            write_time: m.write_time,
            change_time: m.change_time,
        }
    }
}

struct Listing {
    version: Version,
    /// Folded name -> the name on disk.
    names: HashMap<String, String>,
    used: u64,
}

/// Folded listings of recently searched directories, by directory identity.
#[derive(Default)]
pub struct NameCache {
    dirs: HashMap<FileKey, Listing>,
    names: usize,
    tick: u64,
}

impl NameCache {
    fn get(&mut self, key: &FileKey, version: Version, folded: &str) -> Option<Option<String>> {
        self.tick += 1;
        let tick = self.tick;
        let l = self.dirs.get_mut(key)?;
        if l.version != version {
            self.remove(key);
            return None;
        }
        l.used = tick;
        Some(find(&l.names, folded))
    }

    fn remove(&mut self, key: &FileKey) {
        if let Some(l) = self.dirs.remove(key) {
            self.names -= l.names.len();
        }
    }

    fn insert(&mut self, key: FileKey, version: Version, names: HashMap<String, String>) {
        self.remove(&key);
        if names.len() > MAX_NAMES {
            return;
        }
        while !self.dirs.is_empty()
            && (self.dirs.len() >= MAX_DIRS || self.names + names.len() > MAX_NAMES)
        {
            let Some(oldest) = self
                .dirs
                .iter()
                .min_by_key(|(_, l)| l.used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.remove(&oldest);
        }
        self.tick += 1;
        self.names += names.len();
        self.dirs.insert(
            key,
            Listing {
                version,
                names,
                used: self.tick,
            },
        );
    }
}

/// The name on disk that a folded component names in a listing (folded name -> name):
/// the name itself in another case, or else the name whose generated 8.3 short name it
/// is (`duet_fscc::short_name`, what FileAlternateNameInformation and directory
/// listings report), as Windows opens a file by its short name too.
fn find(names: &HashMap<String, String>, folded: &str) -> Option<String> {
    if let Some(n) = names.get(folded) {
        return Some(n.clone());
    }
    // Generated short names are 8.3 names with a '~' (Office's "~$name.docx" is not).
    if !folded.contains('~') || !duet_fscc::is_8_3(folded) {
        return None;
    }
    names
        .values()
        .find(|n| duet_fscc::short_name(n).is_some_and(|s| fold(&s) == folded))
        .cloned()
}

/// The directory that holds the last component, as `resolve` saw it: a create there
/// hands it to [`note_created`] to keep the cached listing current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirSeen {
    key: FileKey,
    version: Version,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn parent_of(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

fn missing(e: &FsError) -> bool {
    matches!(e, FsError::NotFound | FsError::PathNotFound)
}

/// Finds `name` in directory `dir` ignoring case: the name on disk, if any.
fn lookup(
    cache: &Mutex<NameCache>,
    root: &ShareRoot,
    dir: &str,
    name: &str,
) -> (Option<String>, Option<DirSeen>) {
    let opts = OpenOptions {
        read: true,
        write: false,
        disposition: Disposition::Open,
        kind: Kind::Directory,
        attributes_on_create: 0,
        mode: 0,
    };
    let Ok((handle, _)) = root.open_file(dir, &opts) else {
        return (None, None);
    };
    let Ok(meta) = handle.meta() else {
        return (None, None);
    };
    let key = FileKey {
        dev: meta.dev,
        ino: meta.ino,
        stream: 0,
    };
    let version = Version::of(&meta);
    let seen = Some(DirSeen { key, version });
    let folded = fold(name);
    let cached = cache
        .lock()
        .ok()
        .and_then(|mut c| c.get(&key, version, &folded));
    match cached {
        Some(None) => return (None, seen),
        // A removal within the timestamps' granularity leaves the version as it was:
        // check that a cached name is still there before using it.
        Some(Some(actual)) if root.stat(&join(dir, &actual)).is_ok() => {
            return (Some(actual), seen)
        }
        Some(Some(_)) => {}
        None => {}
    }
    let Ok(listing) = handle.read_dir() else {
        return (None, None);
    };
    let mut names = HashMap::with_capacity(listing.entries.len());
    for e in listing.entries {
        names.entry(fold(&e.name)).or_insert(e.name);
    }
    let found = find(&names, &folded);
    if let Ok(mut c) = cache.lock() {
        c.insert(key, version, names);
    }
    (found, seen)
}

/// Resolves a share path ('/'-separated, from `create::parse_path`): every component
/// that does not exist as spelled but exists in another case becomes the name on disk.
/// The first component found in no case, and all after it, stay as the client spelled
/// them (a create makes them so). The second value describes the directory of the last
/// component when it was searched.
pub fn resolve(
    cache: &Mutex<NameCache>,
    root: &ShareRoot,
    path: &str,
) -> (String, Option<DirSeen>) {
    if path.is_empty() {
        return (String::new(), None);
    }
    match root.stat(path) {
        Err(e) if missing(&e) => resolve_missing(cache, root, path, &e),
        // Exists as spelled (or cannot be told): use it.
        _ => (path.to_string(), None),
    }
}

/// [`resolve`] for a path the caller already failed to find as spelled, with the error
/// that said so: NotFound (only the last component is missing) or PathNotFound (a
/// parent is). Any other error leaves the path as it is.
pub fn resolve_missing(
    cache: &Mutex<NameCache>,
    root: &ShareRoot,
    path: &str,
    err: &FsError,
) -> (String, Option<DirSeen>) {
    match err {
        FsError::NotFound if !path.is_empty() => {
            let (dir, leaf) = parent_of(path);
            let (found, seen) = lookup(cache, root, dir, leaf);
            (join(dir, found.as_deref().unwrap_or(leaf)), seen)
        }
        FsError::PathNotFound if !path.is_empty() => {
            let comps: Vec<&str> = path.split('/').collect();
            let mut out = String::new();
            for (i, comp) in comps.iter().enumerate() {
                let spelled = join(&out, comp);
                match root.stat(&spelled) {
                    Err(e) if missing(&e) => {}
                    _ => {
                        out = spelled;
                        continue;
                    }
                }
                let last = i + 1 == comps.len();
                let (found, seen) = lookup(cache, root, &out, comp);
                match found {
                    Some(actual) => out = join(&out, &actual),
                    None => {
                        for rest in &comps[i..] {
                            out = join(&out, rest);
                        }
                        // `seen` is the last component's directory only if the miss was
                        // at the last component.
                        return (out, if last { seen } else { None });
                    }
                }
                if last {
                    return (out, seen);
                }
            }
            (out, None)
        }
        _ => (path.to_string(), None),
    }
}

/// After `path` was created in the directory `seen` describes: the cached listing of
/// that directory gains the name instead of being listed again on the next miss. A
/// listing that changed in between is dropped.
pub fn note_created(cache: &Mutex<NameCache>, root: &ShareRoot, path: &str, seen: Option<DirSeen>) {
    let Some(seen) = seen else { return };
    let (dir, leaf) = parent_of(path);
    let now = root.stat(dir).ok();
    let Ok(mut c) = cache.lock() else { return };
    let Some(l) = c.dirs.get_mut(&seen.key) else {
        return;
    };
    match now {
        Some(m)
            if FileKey {
                dev: m.dev,
                ino: m.ino,
                stream: 0,
            } == seen.key
                && l.version == seen.version =>
        {
            l.version = Version::of(&m);
            if l.names.insert(fold(leaf), leaf.to_string()).is_none() {
                c.names += 1;
            }
        }
        _ => c.remove(&seen.key),
    }
}

/// Drops the cached listing of directory `dir` (after a rename put a name there).
pub fn forget(cache: &Mutex<NameCache>, root: &ShareRoot, dir: &str) {
    if let Ok(m) = root.stat(dir) {
        if let Ok(mut c) = cache.lock() {
            c.remove(&FileKey {
                dev: m.dev,
                ino: m.ino,
                stream: 0,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share() -> (tempfile::TempDir, ShareRoot) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("Docs/Sub")).unwrap();
        std::fs::write(d.path().join("Docs/Report.TXT"), b"x").unwrap();
        let root = ShareRoot::open(d.path()).unwrap();
        (d, root)
    }

    #[test]
    fn folding() {
        assert_eq!(fold("aBc.txt"), "ABC.TXT");
        assert_eq!(fold("straße"), "STRAßE");
        assert_eq!(fold("Ärger"), fold("äRGER"));
        assert_ne!(fold("a"), fold("b"));
    }

    #[test]
    fn resolves_each_component_ignoring_case() {
        let (_d, root) = share();
        let cache = Mutex::new(NameCache::default());
        // Exact spellings need no search.
        assert_eq!(
            resolve(&cache, &root, "Docs/Report.TXT"),
            ("Docs/Report.TXT".into(), None)
        );
        assert_eq!(
            resolve(&cache, &root, "docs/report.txt").0,
            "Docs/Report.TXT"
        );
        assert_eq!(resolve(&cache, &root, "DOCS/sub").0, "Docs/Sub");
        // A new name keeps the client's spelling, under the parents' names on disk.
        let (p, seen) = resolve(&cache, &root, "docs/New.txt");
        assert_eq!(p, "Docs/New.txt");
        assert!(seen.is_some());
        assert_eq!(resolve(&cache, &root, "nodir/x/y").0, "nodir/x/y");
        assert_eq!(resolve(&cache, &root, "docs/nodir/y").0, "Docs/nodir/y");
        assert_eq!(resolve(&cache, &root, "").0, "");
    }

    #[test]
    fn cached_listing_follows_changes() {
        let (d, root) = share();
        let cache = Mutex::new(NameCache::default());
        assert_eq!(resolve(&cache, &root, "Docs/a.txt").0, "Docs/a.txt");
        assert_eq!(cache.lock().unwrap().dirs.len(), 1);
        // A change behind the server's back moves the directory's times: listed again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(d.path().join("Docs/Added.txt"), b"").unwrap();
        assert_eq!(resolve(&cache, &root, "Docs/added.TXT").0, "Docs/Added.txt");
        // A create through the server updates the cached listing in place.
        let (p, seen) = resolve(&cache, &root, "Docs/Mine.txt");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(d.path().join(&p), b"").unwrap();
        note_created(&cache, &root, &p, seen);
        {
            let c = cache.lock().unwrap();
            let l = c.dirs.values().next().unwrap();
            assert_eq!(
                l.names.get("MINE.TXT").map(String::as_str),
                Some("Mine.txt")
            );
            assert_eq!(l.version, Version::of(&root.stat("Docs").unwrap()));
        }
        assert_eq!(resolve(&cache, &root, "Docs/MINE.txt").0, "Docs/Mine.txt");
        // A cached name that went away (within the times' granularity) is not used.
        std::fs::remove_file(d.path().join("Docs/Mine.txt")).unwrap();
        {
            let mut c = cache.lock().unwrap();
            let v = Version::of(&root.stat("Docs").unwrap());
            c.dirs.values_mut().next().unwrap().version = v;
        }
        assert_eq!(resolve(&cache, &root, "Docs/MINE.txt").0, "Docs/MINE.txt");
        // forget drops the listing.
        forget(&cache, &root, "Docs");
        assert!(cache.lock().unwrap().dirs.is_empty());
    }

    #[test]
    fn short_names_resolve_to_their_long_name() {
        let (d, root) = share();
        std::fs::write(d.path().join("Docs/torture_search.txt"), b"").unwrap();
        let cache = Mutex::new(NameCache::default());
        let short = duet_fscc::short_name("torture_search.txt").unwrap();
        assert!(short.contains('~'));
        let (p, _) = resolve(&cache, &root, &format!("docs/{short}"));
        assert_eq!(p, "Docs/torture_search.txt");
        // From the cached listing too, and in any case.
        let (p, _) = resolve(&cache, &root, &format!("Docs/{}", short.to_lowercase()));
        assert_eq!(p, "Docs/torture_search.txt");
        // A name that is no one's short name stays as it is.
        assert_eq!(resolve(&cache, &root, "Docs/ABC~1.TXT").0, "Docs/ABC~1.TXT");
    }

    #[test]
    fn cache_is_bounded() {
        let mut c = NameCache::default();
        let v = Version {
            write_time: 1,
            change_time: 1,
        };
        for i in 0..(MAX_DIRS as u64 + 10) {
            let mut names = HashMap::new();
            names.insert("A".to_string(), "a".to_string());
            c.insert(
                FileKey {
                    dev: 1,
                    ino: i,
                    stream: 0,
                },
                v,
                names,
            );
        }
        assert_eq!(c.dirs.len(), MAX_DIRS);
        assert_eq!(c.names, MAX_DIRS);
        // The oldest went first.
        assert!(!c.dirs.contains_key(&FileKey {
            dev: 1,
            ino: 0,
            stream: 0
        }));
        // A stale version is a miss and drops the entry.
        assert_eq!(
            c.get(
                &FileKey {
                    dev: 1,
                    ino: 20,
                    stream: 0
                },
                Version {
                    write_time: 2,
                    change_time: 1
                },
                "A"
            ),
            None
        );
        assert_eq!(c.dirs.len(), MAX_DIRS - 1);
        assert_eq!(
            c.get(
                &FileKey {
                    dev: 1,
                    ino: 21,
                    stream: 0
                },
                v,
                "A"
            ),
            Some(Some("a".to_string()))
        );
    }
}
