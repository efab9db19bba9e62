//! A local HTTP server that speaks Plaid's `/item/remove` (API 2020-09-14)
//! and records every call, so tests can assert exactly which items a run
//! removed. Items are known by access token; removing one twice answers
//! `ITEM_NOT_FOUND`, as Plaid does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

pub const CLIENT_ID: &str = "test-client-id";
pub const SECRET: &str = "test-secret-0123456789";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub path: String,
    pub access_token: String,
    /// The answer given: 200, 400 or 500.
    pub status: u16,
}

#[derive(Default)]
struct State {
    /// access token -> item id, for items that exist.
    items: BTreeMap<String, String>,
    removed: BTreeSet<String>,
    calls: Vec<Call>,
    /// Answer this many calls with HTTP 500 first.
    fail_next: usize,
}

#[derive(Clone)]
pub struct PlaidServer {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl PlaidServer {
    pub async fn start(items: &[(&str, &str)]) -> PlaidServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            items: items
                .iter()
                .map(|(t, i)| (t.to_string(), i.to_string()))
                .collect(),
            ..State::default()
        }));
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, st).await;
                });
            }
        });
        PlaidServer { url, state }
    }

    pub fn fail_next(&self, n: usize) {
        self.state.lock().unwrap().fail_next = n;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Item ids removed so far.
    pub fn removed_items(&self) -> BTreeSet<String> {
        let s = self.state.lock().unwrap();
        s.removed
            .iter()
            .filter_map(|t| s.items.get(t).cloned())
            .collect()
    }
}

async fn serve(sock: tokio::net::TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await?;
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let token = json["access_token"].as_str().unwrap_or("").to_string();
        let (status, answer) = {
            let mut s = state.lock().unwrap();
            let (status, answer) = if s.fail_next > 0 {
                s.fail_next -= 1;
                (
                    500,
                    serde_json::json!({"error_type": "API_ERROR", "error_code": "INTERNAL_SERVER_ERROR"}),
                )
            } else if path != "/item/remove" {
                (404, serde_json::json!({"error_code": "NOT_FOUND"}))
            } else if json["client_id"] != CLIENT_ID || json["secret"] != SECRET {
                (
                    400,
                    serde_json::json!({"error_type": "INVALID_INPUT", "error_code": "INVALID_API_KEYS"}),
                )
            } else if !s.items.contains_key(&token) || s.removed.contains(&token) {
                (
                    400,
                    serde_json::json!({"error_type": "ITEM_ERROR", "error_code": "ITEM_NOT_FOUND"}),
                )
            } else {
                s.removed.insert(token.clone());
                (200, serde_json::json!({"request_id": "req-1"}))
            };
            s.calls.push(Call {
                path: path.clone(),
                access_token: token,
                status,
            });
            (status, answer)
        };
        let text = answer.to_string();
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            _ => "Internal Server Error",
        };
        w.write_all(
            format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            )
            .as_bytes(),
        )
        .await?;
    }
}
