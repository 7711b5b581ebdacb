//! Tests of the API listener's serve loop: each request carries the client's address.
//! Real TCP on a 127.0.0.1 ephemeral port; every wait is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::Listener;
use crate::server::config::ListenerConfig;

const BOUND: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_the_client_address() {
    let listener =
        Listener::bind(&ListenerConfig::plain("127.0.0.1:0".parse().expect("addr"))).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().fallback(|req: Request| async move {
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "none".to_owned(), |c| c.0.to_string())
    });
    let (stop, rx) = watch::channel(false);
    let served = tokio::spawn(listener.serve(app, rx, Duration::from_secs(1)));

    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let me = tcp.local_addr().expect("client addr");
    tcp.write_all(b"GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut reply = Vec::new();
    tokio::time::timeout(BOUND, tcp.read_to_end(&mut reply))
        .await
        .expect("bounded")
        .expect("read");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with(&me.to_string()), "{reply} (client {me})");

    stop.send(true).expect("stop");
    tokio::time::timeout(BOUND, served)
        .await
        .expect("stops")
        .expect("task");
}
