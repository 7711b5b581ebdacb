//! Barrier throughput: encrypt+decrypt of 1 KiB values through the keyring (header, random
//! nonce, path AAD, zeroized output) against raw AES-256-GCM of the same size in the same run.
//! Prints figures; asserts nothing. `cargo bench --bench barrier [-- --quick]`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sealkeep::server::barrier::{Key, Keyring};

const VALUE: usize = 1024;

fn run(label: &str, budget: Duration, mut op: impl FnMut()) -> f64 {
    // Warm-up.
    for _ in 0..1000 {
        op();
    }
    let mut n = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..1000 {
            op();
        }
        n += 1000;
    }
    let secs = start.elapsed().as_secs_f64();
    let mbps = (n as f64 * VALUE as f64) / secs / 1_000_000.0;
    println!(
        "{label:<44} {n:>9} ops  {mbps:>9.1} MB/s  {:>7.0} ns/op",
        secs * 1e9 / n as f64
    );
    mbps
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = if quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };
    let value = vec![0x5au8; VALUE];

    let ring = Keyring::new(Key::generate().expect("key")).expect("keyring");
    let barrier = run("barrier encrypt+decrypt (1 KiB, path AAD)", budget, || {
        let ct = ring
            .encrypt("logical/kv/secret/meta/app/db", black_box(&value))
            .expect("enc");
        let pt = ring
            .decrypt("logical/kv/secret/meta/app/db", &ct)
            .expect("dec");
        black_box(pt);
    });

    let raw_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).expect("key"));
    let raw = run("raw AES-256-GCM seal+open (1 KiB)", budget, || {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("rand");
        let mut buf = black_box(&value).clone();
        raw_key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .expect("seal");
        let pt = raw_key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .expect("open");
        black_box(pt);
    });
    // The same raw work, but with the barrier's memory discipline: separate ciphertext and
    // plaintext buffers, and the plaintext zeroized when dropped. Shows where the gap goes.
    let raw_zeroized = run("raw AES-256-GCM, separate zeroized buffers", budget, || {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("rand");
        let mut ct = black_box(&value).clone();
        raw_key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut ct)
            .expect("seal");
        let mut pt = zeroize::Zeroizing::new(ct.clone());
        let n = raw_key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut pt)
            .expect("open")
            .len();
        black_box(n);
    });
    println!(
        "barrier / raw = {:.1}% (target: at least 80%)",
        barrier / raw * 100.0
    );
    println!(
        "barrier / raw with separate zeroized buffers = {:.1}%",
        barrier / raw_zeroized * 100.0
    );
}
