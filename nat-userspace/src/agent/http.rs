//! The metrics endpoint's HTTP/1 server, on hyper: GET /metrics answers
//! with the rendered metrics, GET / with a pointer to it, other paths with
//! 404 and other methods with 405. One request per connection, bounded in
//! size, time and number, so a slow or hostile client can neither stall
//! the agent nor grow its memory; the render itself is not the client's
//! time (one at a time, however long the tables take to read).
use std::{
    convert::Infallible,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode, body::Incoming, header, server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};

/// Largest request head accepted (hyper's smallest buffer; a longer head
/// gets 431 Request Header Fields Too Large).
const MAX_HEAD: usize = 8 * 1024;
/// Time a client gets to send its request and read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a connection checks whether its client is late reading.
const WRITE_CHECK: Duration = Duration::from_millis(250);
/// Connections served at once; more are closed as they come.
const MAX_CLIENTS: usize = 32;
const METRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders the body of GET /metrics.
pub type Render = Arc<dyn Fn() -> anyhow::Result<String> + Send + Sync>;

/// Serves `render` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, render: Render) {
    serve_within(listener, render, CLIENT_TIMEOUT).await
}

/// [`serve`], giving each client `client_timeout` to send its request and
/// to read its answer.
async fn serve_within(listener: TcpListener, render: Render, client_timeout: Duration) {
    // One render at a time: each reads every table into memory.
    let one = Arc::new(Semaphore::new(1));
    let clients = Arc::new(Semaphore::new(MAX_CLIENTS));
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
        let Ok(slot) = Arc::clone(&clients).try_acquire_owned() else {
            tracing::debug!("metrics: {MAX_CLIENTS} clients already; closing {peer}");
            continue;
        };
        let (render, one) = (Arc::clone(&render), Arc::clone(&one));
        tokio::spawn(async move {
            let _slot = slot;
            // The client's time runs while it sends its request (hyper's
            // header timeout) and from the moment its answer is ready; the
            // render in between is ours, and takes seconds on a loaded
            // machine with large tables.
            let answered = Arc::new(OnceLock::new());
            let service = {
                let answered = Arc::clone(&answered);
                service_fn(move |req| {
                    answer(
                        req,
                        Arc::clone(&render),
                        Arc::clone(&one),
                        Arc::clone(&answered),
                    )
                })
            };
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(client_timeout)
                .max_buf_size(MAX_HEAD)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            loop {
                tokio::select! {
                    done = &mut conn => {
                        if let Err(e) = done {
                            tracing::debug!("metrics: client {peer}: {e}");
                        }
                        break;
                    }
                    _ = tokio::time::sleep(WRITE_CHECK) => {
                        if answered.get().is_some_and(|t: &Instant| t.elapsed() > client_timeout) {
                            tracing::debug!("metrics: client {peer} did not read its answer in time");
                            break;
                        }
                    }
                }
            }
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    render: Render,
    one: Arc<Semaphore>,
    answered: Arc<OnceLock<Instant>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body): (_, _, Bytes) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => match render_off_thread(render, one).await {
            Ok(body) => (StatusCode::OK, METRICS_TYPE, body.into()),
            Err(e) => {
                tracing::warn!("metrics: {e:#}");
                let msg = format!("reading xnat's maps failed: {e:#}\n");
                (StatusCode::INTERNAL_SERVER_ERROR, "text/plain", msg.into())
            }
        },
        (&Method::GET, "/") => (
            StatusCode::OK,
            "text/plain",
            Bytes::from_static(b"xnat metrics: /metrics\n"),
        ),
        (&Method::GET, _) => (
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found\n"),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            Bytes::from_static(b"only GET\n"),
        ),
    };
    let _ = answered.set(Instant::now());
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
    }
    Ok(response)
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Sends `request` as is and returns the status code and the body.
    async fn ask(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let code = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
        (code, body.unwrap_or_default())
    }

    #[tokio::test]
    async fn answers_get_metrics_and_refuses_the_rest() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let render: Render = Arc::new(|| Ok("xnat_up 1\n# EOF\n".to_string()));
        let server = tokio::spawn(serve(listener, render));

        let (code, body) = ask(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!((code, body.as_str()), (200, "xnat_up 1\n# EOF\n"));
        // HTTP/1.0 and a query string, as some scrapers send.
        let (code, _) = ask(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").await;
        assert_eq!(code, 200);
        assert_eq!(ask(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.0, 200);
        assert_eq!(
            ask(addr, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await.0,
            404
        );
        assert_eq!(
            ask(
                addr,
                b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
            )
            .await
            .0,
            405
        );
        // A head past the limit is refused, not buffered.
        let mut big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 2 * MAX_HEAD));
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(ask(addr, &big).await.0, 431);
        server.abort();
    }

    #[tokio::test]
    async fn a_render_longer_than_the_client_timeout_is_still_answered() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client_timeout = Duration::from_millis(200);
        let render: Render = Arc::new(move || {
            std::thread::sleep(5 * client_timeout);
            Ok("slow 1\n".to_string())
        });
        let server = tokio::spawn(serve_within(listener, render, client_timeout));
        let (code, body) = ask(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!((code, body.as_str()), (200, "slow 1\n"));
        server.abort();
    }

    #[tokio::test]
    async fn a_failed_render_is_a_500_naming_the_cause() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let render: Render = Arc::new(|| Err(anyhow::anyhow!("NAPT_OUT: gone")));
        let server = tokio::spawn(serve(listener, render));
        let (code, body) = ask(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(code, 500);
        assert!(body.contains("NAPT_OUT: gone"), "{body}");
        server.abort();
    }
}
