//! `duetd`: the duet NAS daemon.
//!
//! duetd run --board FILE --state DIR [--listen ADDR:PORT]
//! duetd demo [--dir DIR] [--port PORT]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use duetd::config::BoardConfig;
use duetd::smb::Server;

const USAGE: &str = "usage:
  duetd run --board FILE --state DIR [--listen ADDR:PORT]...
      serve the shares and users kept in the state directory (manage them with duetctl)
  duetd demo [--dir DIR] [--port PORT]
      start a demo node on 127.0.0.1 (default port 4445, directory ./duet-demo) with share
      'share' and user 'demo', printing the password
environment: RUST_LOG (default info), e.g. RUST_LOG=duetd=debug";

fn main() {
    // Large I/O buffers (up to 8 MiB per READ/WRITE) must go back to the system when freed:
    // a fixed mmap threshold stops glibc from raising it dynamically and then keeping
    // freed multi-MiB buffers in its arenas (measured: 163 MiB resident after a benchmark).
    // SAFETY: mallopt only changes allocator tuning; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(&args) {
        Ok(()) => 0,
        Err(Exit::Usage(msg)) => {
            eprintln!("duetd: {msg}\n{USAGE}");
            2
        }
        Err(Exit::Fail(msg)) => {
            eprintln!("duetd: {msg}");
            1
        }
    };
    std::process::exit(code);
}

enum Exit {
    Usage(String),
    Fail(String),
}

fn take_value(args: &[String], i: &mut usize, flag: &str) -> Result<String, Exit> {
    *i += 1;
    args.get(*i)
        .cloned()
        .ok_or_else(|| Exit::Usage(format!("{flag} needs a value")))
}

fn run(args: &[String]) -> Result<(), Exit> {
    let Some(cmd) = args.first() else {
        return Err(Exit::Usage("no command".into()));
    };
    let mut board: Option<PathBuf> = None;
    let mut state: Option<PathBuf> = None;
    let mut listen: Vec<SocketAddr> = Vec::new();
    let mut dir = PathBuf::from("duet-demo");
    let mut port: u16 = 4445;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--board" => board = Some(take_value(args, &mut i, "--board")?.into()),
            "--state" => state = Some(take_value(args, &mut i, "--state")?.into()),
            "--listen" => {
                let v = take_value(args, &mut i, "--listen")?;
                listen.push(
                    v.parse()
                        .map_err(|_| Exit::Usage(format!("--listen {v}: expected ADDR:PORT")))?,
                );
            }
            "--dir" => dir = take_value(args, &mut i, "--dir")?.into(),
            "--port" => {
                let v = take_value(args, &mut i, "--port")?;
                port = v
                    .parse()
                    .map_err(|_| Exit::Usage(format!("--port {v}: expected a port number")))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(Exit::Usage(format!("unknown argument {other}"))),
        }
        i += 1;
    }
    match cmd.as_str() {
        "run" => {
            let board = board.ok_or_else(|| Exit::Usage("run needs --board".into()))?;
            let state = state.ok_or_else(|| Exit::Usage("run needs --state".into()))?;
            let mut cfg = BoardConfig::load(&board).map_err(|e| Exit::Fail(e.to_string()))?;
            if !listen.is_empty() {
                cfg.smb.listen = listen;
            }
            start(cfg, state)
        }
        "demo" => {
            let demo = duetd::demo::prepare(&dir).map_err(Exit::Fail)?;
            let mut cfg = BoardConfig::parse(include_str!("../../../board-configs/lab.toml"))
                .map_err(Exit::Fail)?;
            cfg.smb.listen = vec![SocketAddr::from(([127, 0, 0, 1], port))];
            println!("duet demo node");
            println!(
                "  share:    //127.0.0.1/share  ({})",
                demo.share_dir.display()
            );
            match &demo.password {
                Some(pw) => println!("  user:     {}  password: {pw}", demo.user),
                None => println!("  user:     {}  (password printed on the first run; reset with: duetctl --state {} user passwd demo)", demo.user, demo.state_dir.display()),
            }
            println!(
                "  try:      smbclient //127.0.0.1/share -p {port} -U {}",
                demo.user
            );
            start(cfg, demo.state_dir)
        }
        "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(Exit::Usage(format!("unknown command {other}"))),
    }
}

/// The SMB settings a server is built with: the board file, overridden by settings in the
/// state store (`duetctl set KEY VALUE`; in a pair they are mirrored like everything else).
struct SmbSettings {
    server: duetd::smb::ServerConfig,
    durable_on: bool,
    v1_timeout_secs: Option<u32>,
}

fn flag(store: &duet_state::Store, key: &str) -> Result<Option<bool>, String> {
    match store.setting(key) {
        Ok(Some(v)) => match v.as_str() {
            "true" | "yes" | "1" => Ok(Some(true)),
            "false" | "no" | "0" => Ok(Some(false)),
            other => Err(format!("setting {key} = {other:?}: expected true or false")),
        },
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn smb_settings(cfg: &BoardConfig, store: &duet_state::Store) -> Result<SmbSettings, String> {
    let mut server = cfg.server_config();
    if let Some(v) = flag(store, "smb.signing_required")? {
        server.signing_required = v;
    }
    if let Some(v) = flag(store, "smb.torture_fsctls")? {
        server.torture_fsctls = v;
    }
    let v1_timeout_secs = match store.setting("smb.durable_v1_timeout_secs") {
        Ok(Some(v)) => Some(
            v.parse::<u32>()
                .ok()
                .filter(|s| *s <= 24 * 3600)
                .ok_or_else(|| {
                    format!(
                        "setting smb.durable_v1_timeout_secs = {v:?}: expected seconds, at most 86400"
                    )
                })?,
        ),
        Ok(None) => None,
        Err(e) => return Err(e.to_string()),
    };
    let durable_on = flag(store, "smb.durable_handles")?.unwrap_or(true);
    Ok(SmbSettings {
        server,
        durable_on,
        v1_timeout_secs,
    })
}

fn build_server(s: SmbSettings, store: Arc<duet_state::Store>) -> Arc<Server> {
    tracing::info!(
        signing_required = s.server.signing_required,
        torture_fsctls = s.server.torture_fsctls,
        durable_handles = s.durable_on,
        "SMB settings"
    );
    let server = Server::new(s.server, store);
    server.durable.set_enabled(s.durable_on);
    if let Some(secs) = s.v1_timeout_secs {
        server.durable.set_v1_timeout_ms(secs * 1000);
    }
    server
}

/// Opens the state store; while another process holds it (duetctl working offline, or a
/// daemon still exiting) it tries again for a few seconds before giving up.
fn open_store(state: &std::path::Path) -> Result<duet_state::Store, Exit> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match duet_state::Store::open(state) {
            Ok(s) => return Ok(s),
            Err(duet_state::StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => return Err(Exit::Fail(e.to_string())),
        }
    }
}

fn start(cfg: BoardConfig, state: PathBuf) -> Result<(), Exit> {
    let store = Arc::new(open_store(&state)?);
    let sock = state.join("duetd.sock");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Exit::Fail(format!("tokio runtime: {e}")))?;
    // Checked now, so a bad setting is a startup error and not a failed takeover later.
    let first = smb_settings(&cfg, &store).map_err(Exit::Fail)?;
    let mut pair: Option<Arc<duetd::cluster::Handle>> = None;
    let service = match &cfg.cluster {
        None => {
            duet_state::admin::serve(store.clone(), &sock)
                .map_err(|e| Exit::Fail(format!("admin socket {}: {e}", sock.display())))?;
            let server = build_server(first, store.clone());
            // Durable handles recorded by the last run: restored (disconnected, for the rest
            // of their timeout) before any client can connect, or expired.
            let restored = duetd::smb::durable::restore(&server)
                .map_err(|e| Exit::Fail(format!("restoring durable handles: {e}")))?;
            tracing::info!(
                restored = restored.restored,
                expired = restored.expired,
                dropped = restored.dropped,
                "durable handles"
            );
            duetd::service::Service::standalone(server)
        }
        Some(cluster) => {
            let service = duetd::service::Service::idle();
            let factory: duetd::cluster::ServerFactory = {
                let (cfg, store) = (cfg.clone(), store.clone());
                Box::new(move || {
                    let s = smb_settings(&cfg, &store).unwrap_or_else(|e| {
                        tracing::error!(error = %e, "SMB settings; using the board file's");
                        SmbSettings {
                            server: cfg.server_config(),
                            durable_on: true,
                            v1_timeout_secs: None,
                        }
                    });
                    build_server(s, store.clone())
                })
            };
            let settings = duetd::cluster::Settings {
                state_dir: state.clone(),
                cluster: cluster.clone(),
                data_nic: cfg.network.data_nic.clone().unwrap_or_default(),
                heartbeat_nic: cfg.network.heartbeat_nic.clone().unwrap_or_default(),
            };
            let handle = Arc::new(
                duetd::cluster::start(settings, store.clone(), service.clone(), factory)
                    .map_err(Exit::Fail)?,
            );
            pair = Some(handle.clone());
            let hook: duet_state::admin::ClusterHook = Arc::new(move |c| handle.command(c));
            duet_state::admin::serve_with_cluster(store.clone(), &sock, Some(hook))
                .map_err(|e| Exit::Fail(format!("admin socket {}: {e}", sock.display())))?;
            service
        }
    };
    let max_conns = cfg.limits.max_connections;
    rt.block_on(async move {
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(duetd::server::timers(service.clone())));
        for addr in &cfg.smb.listen {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Exit::Fail(format!("cannot listen on {addr}: {e}")))?;
            tasks.push(tokio::spawn(duetd::server::serve(
                service.clone(),
                l,
                max_conns,
            )));
        }
        tracing::info!(board = %cfg.board.name, state = %state.display(), "duetd started");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| Exit::Fail(format!("signal handler: {e}")))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("duetd stopping");
        if let Some(p) = pair {
            tokio::task::spawn_blocking(move || p.stop()).await.ok();
        }
        Ok(())
    })
}
