//! Fuzz target (seal layer, pure): Shamir share decoding and combining in Vault's format (y
//! bytes, then x). Arbitrary shares must combine or be refused, never panic; real shares of a
//! split must recover the secret, and a changed y byte must change the result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealkeep::server::seal::shamir;
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let [op, count, len, rest @ ..] = data else {
        return;
    };
    if op % 2 == 0 {
        // Arbitrary shares: `count` shares of `len` bytes (the last may be shorter). Field
        // arithmetic is constant-time and every comparison in it is traced, so sizes are kept
        // small (up to 16 shares of 32 bytes); more shares are the same code with longer loops.
        let len = usize::from(*len % 33).max(1);
        let parts: Vec<_> = rest
            .chunks(len)
            .take(usize::from(*count % 17))
            .map(|c| Zeroizing::new(c.to_vec()))
            .collect();
        let _ = shamir::combine(&parts);
        return;
    }
    // [shares][threshold][tamper index][secret...]: split, combine a threshold subset. Up to
    // 32 shares and a threshold of 16, for the cost of the arithmetic (see above).
    let (shares, threshold) = (usize::from(*count % 33), usize::from(*len % 17));
    let [tamper, secret @ ..] = rest else {
        return;
    };
    let secret = &secret[..secret.len().min(32)];
    let Ok(parts) = shamir::split(secret, shares, threshold) else {
        assert!(
            shamir::validate(shares, threshold).is_err() || secret.is_empty(),
            "split refused valid parameters {shares}/{threshold}"
        );
        return;
    };
    assert_eq!(parts.len(), shares);
    if shares == 1 {
        assert_eq!(parts[0].as_slice(), secret);
        return;
    }
    // The last `threshold` shares, so the subset is not always the first ones.
    let subset = &parts[shares - threshold..];
    let combined = shamir::combine(subset).expect("combine a threshold of shares");
    assert_eq!(combined.as_slice(), secret);
    let mut bad: Vec<_> = subset.to_vec();
    let i = usize::from(*tamper) % secret.len();
    bad[0][i] ^= 0x5a;
    let tampered = shamir::combine(&bad).expect("combine tampered shares");
    assert_ne!(
        tampered.as_slice(),
        secret,
        "a changed share went unnoticed"
    );
});
