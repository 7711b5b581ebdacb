//! Jepsen harness (test code): one operation against a node, and what its answer means for
//! the history (ok, fail: certainly did not happen, info: may have happened). Network I/O
//! (HTTP to the nodes). [`perform`] records the invoke and the completion; the workload, the
//! nemeses' probes and the final reads all go through it.

use std::time::Duration;

use serde_json::{Value, json};

use super::history::{Event, History, Kind, Op};

/// What one request's answer means for the history.
#[derive(Debug)]
pub enum Outcome {
    /// Completed. `value`/`version`: a read's result (a lookup: `Some(1)`, version 1 when the
    /// token exists; `None`, 0 when not), or the version a write created; `matched`: a cas's;
    /// `token`: the token a create made.
    Ok {
        value: Option<i64>,
        version: i64,
        matched: Option<bool>,
        token: Option<String>,
    },
    /// Certainly not applied; `redirect` is the node a 307 pointed to.
    Fail {
        error: String,
        redirect: Option<usize>,
    },
    /// May or may not have been applied; `redirect` as for `Fail`.
    Info {
        error: String,
        redirect: Option<usize>,
    },
}

impl Outcome {
    fn ok(value: Option<i64>, version: i64) -> Self {
        Self::Ok {
            value,
            version,
            matched: None,
            token: None,
        }
    }
}

pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(1))
        .build()
        .expect("http client")
}

/// One operation to send.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub node: usize,
    pub f: Op,
    /// The KV key, or the workload's name of a token.
    pub key: &'a str,
    /// The value a write or cas writes.
    pub value: i64,
    /// The version a cas expects.
    pub expect: i64,
    /// The token a lookup looks up.
    pub token: &'a str,
}

impl<'a> Call<'a> {
    pub fn new(node: usize, f: Op, key: &'a str) -> Self {
        Self {
            node,
            f,
            key,
            value: 0,
            expect: 0,
            token: "",
        }
    }

    pub fn read(node: usize, key: &'a str) -> Self {
        Self::new(node, Op::Read, key)
    }

    /// A lookup of `token`, known to the history as `key`.
    pub fn lookup(node: usize, key: &'a str, token: &'a str) -> Self {
        Self {
            token,
            ..Self::new(node, Op::TokenLookup, key)
        }
    }
}

/// Records `call`'s invoke as `process`, runs it, records its completion; returns the outcome.
pub async fn perform(
    history: &History,
    http: &reqwest::Client,
    addrs: &[String],
    token: &str,
    process: u64,
    call: Call<'_>,
) -> Outcome {
    let mut ev = Event::invoke(process, call.f, call.key, call.node);
    match call.f {
        Op::Write | Op::Cas => ev.value = Some(call.value),
        Op::TokenCreate => ev.value = Some(1),
        _ => {}
    }
    if call.f == Op::Cas {
        ev.expect = Some(call.expect);
    }
    history.record(ev.clone());
    ev.value = None;
    ev.expect = None;
    let outcome = execute(http, addrs, token, call).await;
    match &outcome {
        Outcome::Ok {
            value,
            version,
            matched,
            ..
        } => {
            ev.kind = Kind::Ok;
            if matches!(call.f, Op::Read | Op::TokenLookup) {
                ev.value = *value;
            }
            if *matched != Some(false) && call.f != Op::Delete {
                ev.version = Some(*version);
            }
            ev.matched = *matched;
        }
        Outcome::Fail { error, .. } => {
            ev.kind = Kind::Fail;
            ev.error = Some(error.clone());
        }
        Outcome::Info { error, .. } => {
            ev.kind = Kind::Info;
            ev.error = Some(error.clone());
        }
    }
    history.record(ev);
    outcome
}

/// Sends `call` to `addrs[call.node]` and judges the answer.
pub async fn execute(
    http: &reqwest::Client,
    addrs: &[String],
    token: &str,
    call: Call<'_>,
) -> Outcome {
    let Call {
        node,
        f,
        key,
        value,
        expect,
        token: looked_up,
    } = call;
    let url = format!("{}/v1/secret/data/{key}", addrs[node]);
    let req = match f {
        Op::Read => http.get(&url),
        Op::Write => http.put(&url).json(&json!({"data": {"v": value}})),
        Op::Cas => http
            .put(&url)
            .json(&json!({"options": {"cas": expect}, "data": {"v": value}})),
        Op::Delete => http.delete(&url),
        Op::TokenCreate => http
            .post(format!("{}/v1/auth/token/create", addrs[node]))
            .json(&json!({"display_name": key})),
        Op::TokenLookup => http
            .post(format!("{}/v1/auth/token/lookup", addrs[node]))
            .json(&json!({"token": looked_up})),
    };
    let reads = !f.writes();
    let resp = match req.header("X-Vault-Token", token).send().await {
        Ok(r) => r,
        // Never reached the node: certainly not applied.
        Err(e) if e.is_connect() => {
            return Outcome::Fail {
                error: format!("connect: {e}"),
                redirect: None,
            };
        }
        Err(e) if reads => {
            return Outcome::Fail {
                error: format!("read: {e}"),
                redirect: None,
            };
        }
        Err(e) => {
            return Outcome::Info {
                error: format!("no answer: {e}"),
                redirect: None,
            };
        }
    };
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned);
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let redirect = location
        .as_deref()
        .and_then(|l| addrs.iter().position(|a| l.starts_with(a.as_str())));
    match (f, status) {
        // A standby redirects only what it never handed to the leader: a write whose forward
        // broke after it left answers 502/504 instead (src/server/http/standby.rs). So a 307
        // is a certain failure for every operation. (Counting it indeterminate left deletes,
        // which no value can settle, open to the end of a soak: porcupine's search then ran
        // out of time on those keys.)
        (_, 307) => Outcome::Fail {
            error: format!("307 to {location:?}"),
            redirect,
        },
        (Op::Read, 200) => Outcome::ok(
            body["data"]["data"]["v"].as_i64(),
            body["data"]["metadata"]["version"].as_i64().unwrap_or(-1),
        ),
        // The latest version is deleted: Vault's 404 with its metadata.
        (Op::Read, 404) if body["data"]["metadata"]["version"].is_i64() => Outcome::ok(
            None,
            body["data"]["metadata"]["version"].as_i64().unwrap_or(-1),
        ),
        // Never written.
        (Op::Read, 404) if body["errors"].as_array().is_some_and(Vec::is_empty) => {
            Outcome::ok(None, 0)
        }
        (Op::Write | Op::Cas, 200) => Outcome::Ok {
            value: None,
            version: body["data"]["version"].as_i64().unwrap_or(-1),
            matched: (f == Op::Cas).then_some(true),
            token: None,
        },
        (Op::Cas, 400)
            if body
                .to_string()
                .contains("check-and-set parameter did not match") =>
        {
            Outcome::Ok {
                value: None,
                version: 0,
                matched: Some(false),
                token: None,
            }
        }
        (Op::Delete, 204) => Outcome::ok(None, 0),
        (Op::TokenCreate, 200) if body["auth"]["client_token"].is_string() => Outcome::Ok {
            value: None,
            version: 1,
            matched: None,
            token: body["auth"]["client_token"].as_str().map(str::to_owned),
        },
        (Op::TokenLookup, 200) if body["data"]["id"] == looked_up => Outcome::ok(Some(1), 1),
        (Op::TokenLookup, 403) if body.to_string().contains("bad token") => Outcome::ok(None, 0),
        // Reads have no effect: any other answer is a failure. A write refused before it
        // reached raft answers 4xx; a 5xx may come after the entry was proposed.
        (_, _) if reads => Outcome::Fail {
            error: format!("{status}: {body}"),
            redirect: None,
        },
        (_, 400..=499) => Outcome::Fail {
            error: format!("{status}: {body}"),
            redirect: None,
        },
        _ => Outcome::Info {
            error: format!("{status}: {body}"),
            redirect: None,
        },
    }
}
