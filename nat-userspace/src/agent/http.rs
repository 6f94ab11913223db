//! A deliberately tiny HTTP/1.x responder for the metrics endpoint: GET
//! /metrics answers with the rendered metrics, anything else with 404 or
//! 405. One request per connection, bounded in size and time, so a slow or
//! hostile client can neither stall the agent nor grow its memory.
use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

/// Largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client gets to send its request and read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders the body of GET /metrics.
pub type Render = Arc<dyn Fn() -> anyhow::Result<String> + Send + Sync>;

/// Serves `render` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, render: Render) {
    // One render at a time: each reads every table into memory.
    let one = Arc::new(Semaphore::new(1));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("metrics: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (render, one) = (Arc::clone(&render), Arc::clone(&one));
        tokio::spawn(async move {
            if let Err(e) = tokio::time::timeout(CLIENT_TIMEOUT, handle(stream, render, one)).await
            {
                tracing::debug!("metrics: client {peer} timed out: {e}");
            }
        });
    }
}

/// Renders on a blocking thread: reading the tables takes a good part of a
/// second at a million bindings, which the agent's own thread (expiry,
/// events, signals) must not wait for. The permit goes with the render, so
/// a client that gives up does not let a second one start meanwhile.
async fn render_off_thread(render: Render, one: Arc<Semaphore>) -> anyhow::Result<String> {
    let permit = one.acquire_owned().await?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        render()
    })
    .await?
}

async fn handle(mut stream: TcpStream, render: Render, one: Arc<Semaphore>) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"",
            )
            .await;
        }
    }
    let line = String::from_utf8_lossy(head.split(|b| *b == b'\n').next().unwrap_or_default())
        .trim()
        .to_string();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => match render_off_thread(render, one).await {
            Ok(body) => respond(&mut stream, "200 OK", CONTENT_TYPE, body.as_bytes()).await,
            Err(e) => {
                tracing::warn!("metrics: {e:#}");
                let msg = format!("reading xnat's maps failed: {e:#}\n");
                respond(
                    &mut stream,
                    "500 Internal Server Error",
                    "text/plain",
                    msg.as_bytes(),
                )
                .await
            }
        },
        ("GET", "/") => {
            respond(
                &mut stream,
                "200 OK",
                "text/plain",
                b"xnat metrics: /metrics\n",
            )
            .await
        }
        ("GET", _) => respond(&mut stream, "404 Not Found", "text/plain", b"not found\n").await,
        _ => {
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                b"only GET\n",
            )
            .await
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}
