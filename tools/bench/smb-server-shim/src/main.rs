//! smb-server-shim: the `smb-server` crate (0.8) serving one directory for one user, so
//! duet-bench can measure it beside duetd and smbd.
//!
//! Usage: smb-server-shim --listen 127.0.0.1:PORT --root DIR --user NAME --password PASS
//!        [--share NAME]
//! Signing is required (as duetd's and a Windows 11 client's default). Runs until SIGTERM
//! or Ctrl-C.

use smb_server::{Access, LocalFsBackend, Share, SmbServer};
use std::net::SocketAddr;

fn usage() -> ! {
    eprintln!(
        "usage: smb-server-shim --listen ADDR:PORT --root DIR --user NAME --password PASS [--share NAME]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen: Option<SocketAddr> = None;
    let mut root = None;
    let mut user = None;
    let mut password = None;
    let mut share = String::from("share");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--listen" => listen = Some(val().parse()?),
            "--root" => root = Some(val()),
            "--user" => user = Some(val()),
            "--password" => password = Some(val()),
            "--share" => share = val(),
            _ => usage(),
        }
    }
    let (Some(listen), Some(root), Some(user), Some(password)) = (listen, root, user, password)
    else {
        usage()
    };
    let server = SmbServer::builder()
        .listen(listen)
        .user(user.clone(), password)
        .require_signing(true)
        .max_connections(4096)
        .share(Share::new(share, LocalFsBackend::new(&root)?).user(user, Access::ReadWrite))
        .build()?;
    let addr = server.bind().await?;
    eprintln!("smb-server-shim listening on {addr}, root {root}");
    let stop = server.shutdown_handle();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        stop.shutdown();
    });
    server.serve().await?;
    Ok(())
}
