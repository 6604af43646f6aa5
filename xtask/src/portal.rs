//! `cargo xtask portal`: RAT's web portal, built from the archive beside
//! the checkout (`../shared/clients/rat-cdc096f.tar.gz`) under
//! `target/rat-clients/`, served against a running `cargo xtask dev` behind
//! a same-origin reverse proxy: `/api/v1/…` goes to `rat-api`, everything
//! else to the portal's standalone Next.js server. One origin gives the run
//! page its live log stream (it opens `/api/v1/runs/{id}/logs` on the
//! portal's own origin). See `docs/portal.md`.
//!
//! The proxy is a small one written here (tokio only, no system package):
//! it reads each request's head, picks the upstream by path, asks it to
//! close the connection after answering (so one connection carries one
//! request), and copies bytes both ways unbuffered — event streams flow as
//! they are written, and upgraded connections (websockets) pass through.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Arguments of `cargo xtask portal`.
#[derive(Debug, Args)]
pub(crate) struct PortalArgs {
    /// Where the proxy listens: open the portal at `http://<this address>`.
    #[arg(long, default_value = "localhost:8000")]
    listen: String,
    /// Address of `rat-api` (`cargo xtask dev`'s `--api-addr`).
    #[arg(long, default_value = "127.0.0.1:8080")]
    api_addr: String,
    /// Address the portal's own server listens on (behind the proxy).
    #[arg(long, default_value = "127.0.0.1:3000")]
    portal_addr: String,
    /// Build the portal again even when a build for this origin exists.
    #[arg(long)]
    rebuild: bool,
}

/// The CSS `next/font/google` would download for the portal's one Google
/// font, answered locally so the build needs no access to Google.
const FONT_MOCK: &str = r#"module.exports = {
  "https://fonts.googleapis.com/css2?family=JetBrains+Mono:wght@100..800&display=swap":
    "@font-face { font-family: 'JetBrains Mono'; font-style: normal; font-weight: 100 800; src: local('JetBrains Mono'), local('DejaVu Sans Mono'); }\n",
};
"#;

/// Largest request head the proxy reads.
const MAX_HEAD: usize = 64 * 1024;

pub(crate) async fn run(args: PortalArgs) -> anyhow::Result<()> {
    let origin = format!("http://{}", args.listen);
    // Bind first: a taken port fails before a minute of building.
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("the proxy cannot listen on {} (--listen)", args.listen))?;
    check_api(&args.api_addr).await?;

    println!("installing RAT's SDK and portal under target/rat-clients/ (once; npm ci)...");
    let portal = tokio::task::spawn_blocking(rat_testkit::clients::ensure_portal_installed)
        .await?
        .map_err(|e| anyhow!("{e}"))?;
    let portal = std::fs::canonicalize(&portal).unwrap_or(portal);
    let server = build(&portal, &origin, args.rebuild).await?;

    let (portal_host, portal_port) = args
        .portal_addr
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("--portal-addr {} is not host:port", args.portal_addr))?;
    let log_path = portal.join("portal-server.log");
    let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut next = tokio::process::Command::new("node")
        .arg(&server)
        .current_dir(server.parent().expect("server.js is in a folder"))
        .env("PORT", portal_port)
        .env("HOSTNAME", portal_host)
        .env("API_URL", format!("http://{}", args.api_addr))
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .context("starting the portal's server (node)")?;
    wait_listening(&args.portal_addr, &log_path).await?;

    println!();
    println!("RAT's portal is up, against rat-api on {}:", args.api_addr);
    println!();
    println!("  Portal       {origin}");
    println!(
        "               (/api/v1/ → rat-api {}, the rest → the portal on {})",
        args.api_addr, args.portal_addr
    );
    println!("  Server log   {}", log_path.display());
    println!();
    println!("Press Ctrl-C to stop.");

    let proxy = serve(listener, args.api_addr.clone(), args.portal_addr.clone());
    tokio::select! {
        signal = tokio::signal::ctrl_c() => signal.context("waiting for Ctrl-C")?,
        status = next.wait() => bail!("the portal's server exited ({}); see {}", status?, log_path.display()),
        result = proxy => result.context("the proxy stopped")?,
    }
    println!("stopping...");
    if let Some(pid) = next.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), next.wait()).await;
    Ok(())
}

/// Accepts connections on `listener` and proxies each (see [`proxy_one`]).
async fn serve(listener: TcpListener, api: String, portal: String) -> std::io::Result<()> {
    loop {
        let (client, _) = listener.accept().await?;
        let (api, portal) = (api.clone(), portal.clone());
        tokio::spawn(async move {
            if let Err(e) = proxy_one(client, &api, &portal).await {
                eprintln!("proxy: {e:#}");
            }
        });
    }
}

/// Fails, saying to start `cargo xtask dev`, unless `GET /health` on
/// `addr` answers 200.
async fn check_api(addr: &str) -> anyhow::Result<()> {
    let answered = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream.write_all(b"GET /health HTTP/1.0\r\n\r\n").await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        Some(head.ends_with(b" 200"))
    };
    match tokio::time::timeout(Duration::from_secs(5), answered).await {
        Ok(Some(true)) => Ok(()),
        _ => bail!(
            "rat-api does not answer GET /health on {addr}: start the platform first (`cargo xtask dev`, in another \
             terminal), or name its address with --api-addr"
        ),
    }
}

/// Builds the portal's standalone server for the browser origin `origin`
/// (`NEXT_PUBLIC_API_URL` is baked in at build time), unless a build for
/// that origin is there; returns the path of its `server.js`.
async fn build(portal: &Path, origin: &str, rebuild: bool) -> anyhow::Result<PathBuf> {
    let standalone = portal.join(".next/standalone/portal");
    let server = standalone.join("server.js");
    let marker = portal.join(".next/rat-built-for");
    let built_for = std::fs::read_to_string(&marker).unwrap_or_default();
    if !rebuild && built_for == origin && server.is_file() {
        println!("the portal is built for {origin} (--rebuild builds it again)");
        return Ok(server);
    }
    let _ = std::fs::remove_file(&marker);
    let font_mock = portal.join("../rat-font-mock.cjs");
    std::fs::write(&font_mock, FONT_MOCK).with_context(|| format!("writing {}", font_mock.display()))?;
    println!("building the portal for {origin} (next build, a minute or two)...");
    let status = tokio::process::Command::new("node")
        .arg("node_modules/next/dist/bin/next")
        .arg("build")
        .current_dir(portal)
        .env("NEXT_PUBLIC_API_URL", origin)
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .env("NEXT_FONT_GOOGLE_MOCKED_RESPONSES", &font_mock)
        .stdin(Stdio::null())
        .status()
        .await
        .context("running next build (node)")?;
    if !status.success() {
        bail!("next build failed ({status}) in {}", portal.display());
    }
    if !server.is_file() {
        bail!("next build left no {}", server.display());
    }
    // The standalone server serves these from beside itself.
    copy_dir(&portal.join(".next/static"), &standalone.join(".next/static"))?;
    copy_dir(&portal.join("public"), &standalone.join("public"))?;
    std::fs::write(&marker, origin).with_context(|| format!("writing {}", marker.display()))?;
    Ok(server)
}

/// Copies the tree `from` into `to` (replacing what is there).
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to).with_context(|| format!("removing {}", to.display()))?;
    }
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {} to {}", entry.path().display(), target.display()))?;
        }
    }
    Ok(())
}

/// Waits until `addr` accepts connections (at most 60 s).
async fn wait_listening(addr: &str, log: &Path) -> anyhow::Result<()> {
    for _ in 0..600 {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "the portal's server did not listen on {addr} within 60 s; see {}",
        log.display()
    )
}

/// Serves one client connection: one request, sent to the upstream its path
/// names, with the answer copied back as it comes.
async fn proxy_one(mut client: TcpStream, api: &str, portal: &str) -> anyhow::Result<()> {
    let mut buffer = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > MAX_HEAD {
            client
                .write_all(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
                )
                .await?;
            return Ok(());
        }
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let body_start = buffer[head_end..].to_vec();
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let upstream = if target == "/api/v1" || target.starts_with("/api/v1/") || target.starts_with("/api/v1?") {
        api
    } else {
        portal
    };
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let request_line = lines.next().unwrap_or_default();
    let headers: Vec<&str> = lines.collect();
    let upgrade = headers.iter().any(|h| h.to_ascii_lowercase().starts_with("upgrade:"));
    let mut rewritten = format!("{request_line}\r\n");
    for header in &headers {
        let name = header.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
        // One request per connection: the upstream closes after answering,
        // which ends the copy. An upgrade keeps its own Connection header.
        if !upgrade && (name == "connection" || name == "keep-alive") {
            continue;
        }
        rewritten.push_str(header);
        rewritten.push_str("\r\n");
    }
    if !upgrade {
        rewritten.push_str("Connection: close\r\n");
    }
    rewritten.push_str("\r\n");

    let mut server = match TcpStream::connect(upstream).await {
        Ok(server) => server,
        Err(e) => {
            let message = format!("{upstream} is not answering: {e}\n");
            let answer = format!(
                "HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{message}",
                message.len()
            );
            client.write_all(answer.as_bytes()).await?;
            return Ok(());
        }
    };
    server.set_nodelay(true)?;
    client.set_nodelay(true)?;
    server.write_all(rewritten.as_bytes()).await?;
    server.write_all(&body_start).await?;
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let upload = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let download = async {
        let copied = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
        copied
    };
    // The answer ends the exchange: the upstream closes after it.
    tokio::select! {
        copied = download => { copied?; }
        () = async { upload.await; std::future::pending::<()>().await } => {}
    }
    Ok(())
}
