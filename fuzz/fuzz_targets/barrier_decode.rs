//! Fuzz target (barrier layer, pure): the ciphertext decode `[term u32][version u8][nonce]
//! [ct+tag]` with a fixed two-term keyring. Arbitrary bytes must be refused, never panic; a real
//! ciphertext must round-trip, and any change to one of its bytes, a truncation, or another
//! path (the AAD) must be refused.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealkeep::server::barrier::{self, KEYRING_PATH, Key, Keyring, MIN_CIPHERTEXT_LEN};

const PATH: &str = "logical/0000/secret";

fn keyring() -> &'static Keyring {
    static KEYRING: OnceLock<Keyring> = OnceLock::new();
    KEYRING.get_or_init(|| {
        let root = Key::from_slice(&[7; 32]).expect("key");
        Keyring::new(root)
            .and_then(|k| k.rotated())
            .expect("keyring")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&op, rest)) = data.split_first() else {
        return;
    };
    let ring = keyring();
    match op % 4 {
        // Arbitrary bytes: nobody can forge the tag, so every input is refused.
        0 => {
            assert!(ring.decrypt(PATH, rest).is_err());
            if let Ok(term) = barrier::ciphertext_term(PATH, rest) {
                assert!(
                    rest.len() >= MIN_CIPHERTEXT_LEN,
                    "term {term} from a short blob"
                );
            }
        }
        1 => {
            let root = Key::from_slice(&[7; 32]).expect("key");
            assert!(Keyring::from_ciphertext(root.clone(), rest).is_err());
            assert!(barrier::open_with_key(&root, KEYRING_PATH, rest).is_err());
        }
        // [position u16][xor mask u8][plaintext...]: round trip, then tamper.
        _ => {
            let [p0, p1, mask, plaintext @ ..] = rest else {
                return;
            };
            let blob = ring.encrypt(PATH, plaintext).expect("encrypt");
            assert_eq!(blob.len(), plaintext.len() + MIN_CIPHERTEXT_LEN);
            let opened = ring.decrypt(PATH, &blob).expect("round trip");
            assert_eq!(opened.as_slice(), plaintext);
            assert!(
                ring.decrypt("logical/0000/other", &blob).is_err(),
                "AAD not bound"
            );
            let pos = usize::from(u16::from_be_bytes([*p0, *p1])) % blob.len();
            assert!(
                ring.decrypt(PATH, &blob[..pos]).is_err(),
                "truncated at {pos}"
            );
            if *mask != 0 {
                let mut bad = blob.clone();
                bad[pos] ^= mask;
                assert!(
                    ring.decrypt(PATH, &bad).is_err(),
                    "byte {pos} not authenticated"
                );
            }
        }
    }
});
