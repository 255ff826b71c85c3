//! Workloads driven by duet-bench's pipelined client. Each function connects first
//! (untimed), then times the work itself and returns seconds.
//!
//! Owns: what each workload sends and how it checks the answers.
//! Must never: leave files behind that a later run would trip over (cleanup helpers
//! remove them through the server, untimed), or hide a failed request.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use crate::client::codec::{
    self, access, cmd, disposition, options, status, Body, Create, Req, RELATED_FILE_ID,
};
use crate::client::{Client, Target};
use crate::Error;

fn req<'a>(command: u16, body: Vec<u8>) -> Req<'a> {
    Req {
        command,
        payload: 0,
        related: false,
        body: Body::Raw(body),
    }
}

fn related<'a>(command: u16, body: Vec<u8>) -> Req<'a> {
    Req {
        related: true,
        ..req(command, body)
    }
}

fn close_related<'a>() -> Req<'a> {
    related(cmd::CLOSE, codec::close_body(RELATED_FILE_ID))
}

/// Fails unless every response of an operation succeeded.
fn all_ok(what: &str, i: usize, r: &[codec::Resp<'_>]) -> Result<(), Error> {
    for x in r {
        if x.status() != status::SUCCESS {
            return Err(Error::other(format!(
                "{what} #{i}: command 0x{:02x} failed with 0x{:08x}",
                x.command(),
                x.status()
            )));
        }
    }
    Ok(())
}

/// Bytes that are not all zero (a server or file system could shortcut zeros).
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn file(name: &str, access: u32, disp: u32, opts: u32) -> Create<'_> {
    Create {
        name,
        desired_access: access,
        file_attributes: codec::ATTR_NORMAL,
        share_access: codec::SHARE_ALL,
        disposition: disp,
        options: opts | options::NON_DIRECTORY_FILE,
        ..Default::default()
    }
}

fn dir(name: &str, access: u32, disp: u32, opts: u32) -> Create<'_> {
    Create {
        name,
        desired_access: access,
        file_attributes: codec::ATTR_DIRECTORY,
        share_access: codec::SHARE_ALL,
        disposition: disp,
        options: opts | options::DIRECTORY_FILE,
        ..Default::default()
    }
}

/// Sequential write of `total` bytes to `name` in `io`-byte WRITEs, `depth` in flight.
pub fn seq_write(t: &Target, name: &str, total: u64, io: u32, depth: usize) -> Result<f64, Error> {
    let mut c = Client::connect(t)?;
    let io = io.min(c.max_write);
    let data = pattern(io as usize);
    let n = total.div_ceil(u64::from(io)) as usize;
    let mut written = 0u64;
    let start = Instant::now();
    let fid = c.create(&file(
        name,
        access::GENERIC_WRITE,
        disposition::OVERWRITE_IF,
        0,
    ))?;
    c.pipeline(
        depth,
        n,
        |i, v| {
            let off = i as u64 * u64::from(io);
            let len = (total - off).min(u64::from(io)) as usize;
            v.push(Req {
                command: cmd::WRITE,
                payload: len as u32,
                related: false,
                body: Body::Write {
                    offset: off,
                    file_id: fid,
                    data: &data[..len],
                },
            });
        },
        |i, r| {
            all_ok("write", i, r)?;
            written += u64::from(r[0].write_count()?);
            Ok(())
        },
    )?;
    c.close(fid)?;
    let secs = start.elapsed().as_secs_f64();
    c.logoff()?;
    if written != total {
        return Err(Error::other(format!("wrote {written} bytes of {total}")));
    }
    Ok(secs)
}

/// What a connection to `t` negotiates, e.g. "SMB 3.1.1, AES-GMAC signing, ...".
pub fn probe(t: &Target) -> Result<String, Error> {
    let c = Client::connect(t)?;
    let d = c.describe();
    c.logoff()?;
    Ok(d)
}

/// Sequential read of `total` bytes of `name` in `io`-byte READs, `depth` in flight.
pub fn seq_read(t: &Target, name: &str, total: u64, io: u32, depth: usize) -> Result<f64, Error> {
    let mut c = Client::connect(t)?;
    let io = io.min(c.max_read);
    let n = total.div_ceil(u64::from(io)) as usize;
    let mut got = 0u64;
    let start = Instant::now();
    let fid = c.create(&file(name, access::GENERIC_READ, disposition::OPEN, 0))?;
    c.pipeline(
        depth,
        n,
        |i, v| {
            let off = i as u64 * u64::from(io);
            let len = (total - off).min(u64::from(io)) as u32;
            v.push(Req {
                command: cmd::READ,
                payload: len,
                related: false,
                body: Body::Raw(codec::read_body(fid, off, len)),
            });
        },
        |i, r| {
            all_ok("read", i, r)?;
            got += r[0].read_data()?.len() as u64;
            Ok(())
        },
    )?;
    c.close(fid)?;
    let secs = start.elapsed().as_secs_f64();
    c.logoff()?;
    if got != total {
        return Err(Error::other(format!("read {got} bytes of {total}")));
    }
    Ok(secs)
}

pub fn small_name(dir: &str, i: usize) -> String {
    format!("{dir}\\f{i:05}")
}

/// MKDIR of one directory (untimed setup).
pub fn mkdir(c: &mut Client, name: &str) -> Result<(), Error> {
    let fid = c.create(&dir(
        name,
        access::FILE_READ_ATTRIBUTES | access::SYNCHRONIZE,
        disposition::OPEN_IF,
        0,
    ))?;
    c.close(fid)
}

/// Which small-file operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmallOp {
    /// CREATE (new) + WRITE 4 KiB + CLOSE.
    Create,
    /// CREATE (read attributes) + QUERY_INFO FileAllInformation + CLOSE.
    Stat,
    /// CREATE (DELETE, delete-on-close) + CLOSE.
    Delete,
    /// CREATE directory + CLOSE.
    Mkdir,
    /// CREATE directory (DELETE, delete-on-close) + CLOSE.
    Rmdir,
    /// CREATE with DH2Q and an RWH lease (v2) + WRITE 4 KiB + CLOSE.
    Durable,
}

/// Appends the related compound of `op` on `name`.
fn small_op<'a>(op: SmallOp, name: &str, data: &'a [u8], v: &mut Vec<Req<'a>>) {
    let write = |v: &mut Vec<Req<'a>>| {
        v.push(Req {
            command: cmd::WRITE,
            payload: data.len() as u32,
            related: true,
            body: Body::Write {
                offset: 0,
                file_id: RELATED_FILE_ID,
                data,
            },
        })
    };
    match op {
        SmallOp::Create => {
            v.push(req(
                cmd::CREATE,
                codec::create_body(&file(name, access::GENERIC_WRITE, disposition::CREATE, 0)),
            ));
            write(v);
        }
        SmallOp::Durable => {
            let mut c = file(
                name,
                access::GENERIC_WRITE | access::GENERIC_READ,
                disposition::CREATE,
                0,
            );
            c.oplock_level = 0xff; // SMB2_OPLOCK_LEVEL_LEASE
            let guid: [u8; 16] = crate::client::conn::random_bytes();
            c.contexts = codec::create_contexts(&[
                (b"DH2Q", codec::dh2q_data(0, guid)),
                (b"RqLs", codec::lease_v2_data(guid, 0x7)),
            ]);
            v.push(req(cmd::CREATE, codec::create_body(&c)));
            write(v);
        }
        SmallOp::Stat => {
            v.push(req(
                cmd::CREATE,
                codec::create_body(&Create {
                    options: 0,
                    ..file(
                        name,
                        access::FILE_READ_ATTRIBUTES | access::SYNCHRONIZE,
                        disposition::OPEN,
                        0,
                    )
                }),
            ));
            v.push(related(
                cmd::QUERY_INFO,
                codec::query_info_body(
                    RELATED_FILE_ID,
                    codec::INFO_FILE,
                    codec::FILE_ALL_INFORMATION,
                    4096,
                ),
            ));
        }
        SmallOp::Delete => v.push(req(
            cmd::CREATE,
            codec::create_body(&file(
                name,
                access::DELETE,
                disposition::OPEN,
                options::DELETE_ON_CLOSE,
            )),
        )),
        SmallOp::Mkdir => v.push(req(
            cmd::CREATE,
            codec::create_body(&dir(
                name,
                access::FILE_READ_ATTRIBUTES | access::SYNCHRONIZE,
                disposition::CREATE,
                0,
            )),
        )),
        SmallOp::Rmdir => v.push(req(
            cmd::CREATE,
            codec::create_body(&dir(
                name,
                access::DELETE,
                disposition::OPEN,
                options::DELETE_ON_CLOSE,
            )),
        )),
    }
    v.push(close_related());
}

/// Runs `op` on `dir\f00000` .. `dir\f{n-1}` over one connection, `depth` in flight.
/// With `make_dir`, `dir` is created first (untimed).
pub fn small_ops(
    t: &Target,
    op: SmallOp,
    dir_name: &str,
    n: usize,
    depth: usize,
    make_dir: bool,
) -> Result<f64, Error> {
    let mut c = Client::connect(t)?;
    if make_dir {
        mkdir(&mut c, dir_name)?;
    }
    let secs = small_ops_on(&mut c, op, dir_name, 0..n, depth)?;
    c.logoff()?;
    Ok(secs)
}

fn small_ops_on(
    c: &mut Client,
    op: SmallOp,
    dir_name: &str,
    range: std::ops::Range<usize>,
    depth: usize,
) -> Result<f64, Error> {
    Ok(small_ops_counted(c, op, dir_name, range, depth)?.0)
}

/// What the server granted to the creates of a run: (lease, durable handle) counts.
pub type Grants = (usize, usize);

fn small_ops_counted(
    c: &mut Client,
    op: SmallOp,
    dir_name: &str,
    range: std::ops::Range<usize>,
    depth: usize,
) -> Result<(f64, Grants), Error> {
    let data = pattern(4096);
    let first = range.start;
    let (mut leases, mut durables) = (0, 0);
    let start = Instant::now();
    c.pipeline(
        depth,
        range.len(),
        |i, v| small_op(op, &small_name(dir_name, first + i), &data, v),
        |i, r| {
            all_ok(&format!("{op:?}"), first + i, r)?;
            if op == SmallOp::Durable {
                let (level, names) = r[0].create_grants()?;
                leases += usize::from(level == 0xff && names.iter().any(|n| n == b"RqLs"));
                durables += usize::from(names.iter().any(|n| n == b"DH2Q"));
            }
            Ok(())
        },
    )?;
    Ok((start.elapsed().as_secs_f64(), (leases, durables)))
}

/// The durable-open workload: `n` x (CREATE with DH2Q and an RWH lease, WRITE 4 KiB,
/// CLOSE) in `dir_name` (made first, untimed). Returns seconds and what was granted.
pub fn durable_ops(
    t: &Target,
    dir_name: &str,
    n: usize,
    depth: usize,
) -> Result<(f64, Grants), Error> {
    let mut c = Client::connect(t)?;
    mkdir(&mut c, dir_name)?;
    let r = small_ops_counted(&mut c, SmallOp::Durable, dir_name, 0..n, depth)?;
    c.logoff()?;
    Ok(r)
}

/// Lists `dir` (FileIdBothDirectoryInformation, 64 KiB answers) and returns
/// (seconds, entries seen including `.` and `..`).
pub fn list_dir(t: &Target, dir_name: &str) -> Result<(f64, usize), Error> {
    let mut c = Client::connect(t)?;
    let start = Instant::now();
    let n = list_on(&mut c, dir_name, &mut |_, _| {})?;
    let secs = start.elapsed().as_secs_f64();
    c.logoff()?;
    Ok((secs, n))
}

fn list_on(
    c: &mut Client,
    dir_name: &str,
    each: &mut dyn FnMut(&str, u32),
) -> Result<usize, Error> {
    let fid = c.create(&dir(
        dir_name,
        access::FILE_LIST_DIRECTORY | access::FILE_READ_ATTRIBUTES | access::SYNCHRONIZE,
        disposition::OPEN,
        0,
    ))?;
    let mut n = 0;
    let mut first = true;
    loop {
        let (st, msg) = c.call_status(
            cmd::QUERY_DIRECTORY,
            codec::query_directory_body(fid, "*", first, 65536),
        )?;
        first = false;
        if st == status::NO_MORE_FILES {
            break;
        }
        if st != status::SUCCESS {
            return Err(Error::status(cmd::QUERY_DIRECTORY, st));
        }
        for (name, attrs) in codec::dir_entry_names(codec::Resp::new(&msg)?.output_buffer()?)? {
            each(&name, attrs);
            n += 1;
        }
    }
    c.close(fid)?;
    Ok(n)
}

/// Removes everything under `dir_name` through the server, then the directory itself.
/// Untimed cleanup; a missing directory is not an error.
pub fn remove_tree(t: &Target, dir_name: &str) -> Result<(), Error> {
    let mut c = Client::connect(t)?;
    remove_tree_on(&mut c, dir_name)?;
    c.logoff()
}

fn remove_tree_on(c: &mut Client, dir_name: &str) -> Result<(), Error> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    match list_on(c, dir_name, &mut |name, attrs| {
        if name == "." || name == ".." {
        } else if attrs & codec::ATTR_DIRECTORY != 0 {
            dirs.push(name.to_string());
        } else {
            files.push(name.to_string());
        }
    }) {
        Ok(_) => {}
        Err(Error::Status { .. }) => return Ok(()),
        Err(e) => return Err(e),
    }
    for d in &dirs {
        remove_tree_on(c, &format!("{dir_name}\\{d}"))?;
    }
    let data = [];
    c.pipeline(
        32,
        files.len(),
        |i, v| {
            small_op(
                SmallOp::Delete,
                &format!("{dir_name}\\{}", files[i]),
                &data,
                v,
            )
        },
        |i, r| all_ok("cleanup delete", i, r),
    )?;
    let mut v = Vec::new();
    small_op(SmallOp::Rmdir, dir_name, &data, &mut v);
    c.pipeline(
        1,
        1,
        |_, out| out.append(&mut v),
        |i, r| all_ok("cleanup rmdir", i, r),
    )
}

/// Deletes one file through the server (untimed cleanup); missing is fine.
pub fn remove_file(t: &Target, name: &str) -> Result<(), Error> {
    let mut c = Client::connect(t)?;
    let mut v = Vec::new();
    small_op(SmallOp::Delete, name, &[], &mut v);
    let _ = c.pipeline(1, 1, |_, out| out.append(&mut v), |_, _| Ok(()));
    c.logoff()
}

/// `clients` connections at once, each doing create + stat + delete of its own
/// `per_client` files one operation at a time. Returns (seconds, operations).
pub fn many_clients(
    t: &Target,
    base: &str,
    clients: usize,
    per_client: usize,
) -> Result<(f64, usize), Error> {
    {
        let mut c = Client::connect(t)?;
        mkdir(&mut c, base)?;
        c.logoff()?;
    }
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut handles = Vec::new();
    for k in 0..clients {
        let t = t.clone();
        let barrier = barrier.clone();
        let dir_name = format!("{base}\\c{k:03}");
        handles.push(std::thread::spawn(move || -> Result<(), Error> {
            let setup = Client::connect(&t).and_then(|mut c| mkdir(&mut c, &dir_name).map(|_| c));
            barrier.wait();
            let mut c = setup?;
            for op in [SmallOp::Create, SmallOp::Stat, SmallOp::Delete] {
                small_ops_on(&mut c, op, &dir_name, 0..per_client, 1)?;
            }
            c.logoff()
        }));
    }
    // Every client has connected and made its directory: start together.
    barrier.wait();
    let start = Instant::now();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(Error::other("client thread panicked"));
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    match first_err {
        Some(e) => Err(e),
        None => Ok((secs, clients * per_client * 3)),
    }
}

/// Opens `n` files on one connection and keeps them open while `measure` runs; then
/// closes and deletes them.
pub fn hold_handles<T>(
    t: &Target,
    dir_name: &str,
    n: usize,
    measure: impl FnOnce() -> T,
) -> Result<T, Error> {
    let mut c = Client::connect(t)?;
    mkdir(&mut c, dir_name)?;
    let mut ids = vec![[0u8; 16]; n];
    c.pipeline(
        32,
        n,
        |i, v| {
            v.push(req(
                cmd::CREATE,
                codec::create_body(&file(
                    &small_name(dir_name, i),
                    access::GENERIC_READ | access::GENERIC_WRITE,
                    disposition::OPEN_IF,
                    0,
                )),
            ))
        },
        |i, r| {
            all_ok("hold open", i, r)?;
            ids[i] = r[0].create_file_id()?;
            Ok(())
        },
    )?;
    let m = measure();
    c.pipeline(
        32,
        n,
        |i, v| v.push(req(cmd::CLOSE, codec::close_body(ids[i]))),
        |i, r| all_ok("close", i, r),
    )?;
    remove_tree_on(&mut c, dir_name)?;
    c.logoff()?;
    Ok(m)
}

/// Keeps `n` logged-on connections (each with a tree connect) while `measure` runs.
pub fn hold_connections<T>(t: &Target, n: usize, measure: impl FnOnce() -> T) -> Result<T, Error> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Client::connect(t)?);
    }
    let m = measure();
    for c in conns {
        let _ = c.logoff();
    }
    Ok(m)
}
