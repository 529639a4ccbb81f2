//! `mock-smsc`: the SMPP 3.4 SMSC simulator (`herald_peers::smsc`) as a
//! process, with a small HTTP/1.1 control port. Prints
//! `listening smpp://127.0.0.1:PORT http://127.0.0.1:CTLPORT` once it serves
//! and appends every submit_sm it answers to `--log` as one JSON line.
//!
//! Control: `POST /mo` `{"from":"+15551230001","to":"+15550100","text":"STOP"}`
//! delivers an MO message (200 `{"ok":true}`, or 503 `{"ok":false,"error":…}`);
//! `GET /stats` → `{"binds":N,"enquire_links":N,"max_unanswered":N,"mo_delivered":N}`;
//! `POST /drop` cuts every SMPP connection.
//!
//! mock-smsc [--listen 127.0.0.1:0] [--control 127.0.0.1:0] [--system-id herald]
//!   [--password secret] [--submit-resp-delay-ms 0] [--receipt-delay-ms 50]
//!   [--enquire-link-interval-ms 0] [--log submits.ndjson]

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use herald_peers::arg;
use herald_peers::smsc::{Smsc, SmscConfig};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    let control = arg(&args, "--control").unwrap_or_else(|| "127.0.0.1:0".into());
    let defaults = SmscConfig::default();
    let ms = |name: &str, default: u64| -> anyhow::Result<u64> {
        Ok(match arg(&args, name) {
            Some(v) => v.parse()?,
            None => default,
        })
    };
    let cfg = SmscConfig {
        system_id: arg(&args, "--system-id").unwrap_or(defaults.system_id),
        password: arg(&args, "--password").unwrap_or(defaults.password),
        submit_resp_delay_ms: ms("--submit-resp-delay-ms", defaults.submit_resp_delay_ms)?,
        receipt_delay_ms: ms("--receipt-delay-ms", defaults.receipt_delay_ms)?,
        enquire_link_interval_ms: ms(
            "--enquire-link-interval-ms",
            defaults.enquire_link_interval_ms,
        )?,
    };
    let smsc = Arc::new(Smsc::start(listen.parse()?, cfg).await?);
    let listener = tokio::net::TcpListener::bind(control.parse::<std::net::SocketAddr>()?).await?;
    let control_addr = listener.local_addr()?;
    let served = smsc.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let smsc = served.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let smsc = smsc.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(&smsc, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    println!("listening smpp://{} http://{}", smsc.addr(), control_addr);
    std::io::stdout().flush()?;
    let log = arg(&args, "--log");
    herald_peers::append_log_forever(log, || smsc.submits()).await
}

#[derive(Deserialize)]
struct MoRequest {
    from: String,
    to: String,
    text: String,
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn handle(smsc: &Smsc, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    match (method, path.as_str()) {
        (Method::GET, "/stats") => json(
            StatusCode::OK,
            serde_json::json!({
                "binds": smsc.binds(),
                "enquire_links": smsc.enquire_links(),
                "max_unanswered": smsc.max_unanswered(),
                "mo_delivered": smsc.delivered_mo().len(),
            }),
        ),
        (Method::POST, "/drop") => {
            smsc.drop_sessions();
            json(StatusCode::OK, serde_json::json!({"ok": true}))
        }
        (Method::POST, "/mo") => {
            let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return bad_request(&e.to_string()),
            };
            let mo: MoRequest = match serde_json::from_slice(&body) {
                Ok(mo) => mo,
                Err(e) => return bad_request(&e.to_string()),
            };
            match smsc.send_mo(&mo.from, &mo.to, &mo.text).await {
                Ok(()) => json(StatusCode::OK, serde_json::json!({"ok": true})),
                Err(e) => json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({"ok": false, "error": e.to_string()}),
                ),
            }
        }
        _ => json(StatusCode::NOT_FOUND, serde_json::json!({"ok": false})),
    }
}

fn bad_request(error: &str) -> Response<Full<Bytes>> {
    json(
        StatusCode::BAD_REQUEST,
        serde_json::json!({"ok": false, "error": error}),
    )
}
