//! Seal layer: Shamir secret sharing over GF(2^8) (polynomial 0x11b, the field Vault uses), in
//! Vault's share format: the share's y bytes followed by its x coordinate as the last byte.
//! Pure computation, no I/O. The arithmetic is vsss-rs's; this module only adapts the format.

use vsss_rs::Gf256;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShamirError {
    #[error("secret_shares must be between 1 and 255, got {0}")]
    Shares(usize),
    #[error("secret_threshold must be between 1 and secret_shares ({shares}), got {threshold}")]
    Threshold { threshold: usize, shares: usize },
    #[error("secret_threshold must be greater than 1 when secret_shares is greater than 1")]
    ThresholdOne,
    #[error("the secret to split is empty")]
    EmptySecret,
    #[error("need at least {needed} distinct shares, got {got}")]
    NotEnoughShares { needed: usize, got: usize },
    #[error("all shares must have the same length")]
    LengthMismatch,
    #[error("share is too short")]
    TooShort,
    #[error("share has an invalid x coordinate (0)")]
    ZeroX,
    #[error("two different shares have the same x coordinate")]
    DuplicateX,
    #[error("combining the shares failed")]
    Combine,
}

/// Validates parameters the way Vault's `SealConfig.Validate` does.
pub fn validate(shares: usize, threshold: usize) -> Result<(), ShamirError> {
    if !(1..=255).contains(&shares) {
        return Err(ShamirError::Shares(shares));
    }
    if threshold < 1 || threshold > shares {
        return Err(ShamirError::Threshold { threshold, shares });
    }
    if shares > 1 && threshold == 1 {
        return Err(ShamirError::ThresholdOne);
    }
    Ok(())
}

/// Splits `secret` into `shares` parts, any `threshold` of which recover it. With one share the
/// share is the secret itself, as in Vault.
pub fn split(
    secret: &[u8],
    shares: usize,
    threshold: usize,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    validate(shares, threshold)?;
    if secret.is_empty() {
        return Err(ShamirError::EmptySecret);
    }
    if shares == 1 {
        return Ok(vec![Zeroizing::new(secret.to_vec())]);
    }
    let raw = Gf256::split_bytes(threshold, shares, secret, rand::rng())
        .map_err(|_| ShamirError::Combine)?;
    Ok(raw
        .into_iter()
        .map(|mut s| {
            // vsss-rs: [x, y...]  ->  Vault: [y..., x]
            s.rotate_left(1);
            Zeroizing::new(s)
        })
        .collect())
}

/// Recombines Vault-format shares. Identical duplicates are ignored.
pub fn combine(parts: &[Zeroizing<Vec<u8>>]) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    let first = parts
        .first()
        .ok_or(ShamirError::NotEnoughShares { needed: 2, got: 0 })?;
    if first.len() < 2 {
        return Err(ShamirError::TooShort);
    }
    let mut converted: Vec<Vec<u8>> = Vec::with_capacity(parts.len());
    for part in parts {
        if part.len() != first.len() {
            return Err(ShamirError::LengthMismatch);
        }
        let (y, x) = part.split_at(part.len() - 1);
        if x[0] == 0 {
            return Err(ShamirError::ZeroX);
        }
        if let Some(prev) = converted.iter().find(|c| c[0] == x[0]) {
            if prev[1..] == *y {
                continue;
            }
            return Err(ShamirError::DuplicateX);
        }
        let mut c = Vec::with_capacity(part.len());
        c.push(x[0]);
        c.extend_from_slice(y);
        converted.push(c);
    }
    let result = if converted.len() < 2 {
        Err(ShamirError::NotEnoughShares {
            needed: 2,
            got: converted.len(),
        })
    } else {
        Gf256::combine_bytes(&converted)
            .map(Zeroizing::new)
            .map_err(|_| ShamirError::Combine)
    };
    for c in &mut converted {
        zeroize::Zeroize::zeroize(c);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(v: &[u8]) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(v.to_vec())
    }

    #[test]
    fn any_threshold_subset_recovers_the_secret() {
        let secret: Vec<u8> = (0..32).collect();
        let shares = split(&secret, 5, 3).expect("split");
        assert_eq!(shares.len(), 5);
        assert!(shares.iter().all(|s| s.len() == 33));
        for (a, b, c) in [(0, 1, 2), (0, 2, 4), (1, 3, 4), (4, 3, 2)] {
            let parts = [shares[a].clone(), shares[b].clone(), shares[c].clone()];
            assert_eq!(
                combine(&parts).expect("combine").as_slice(),
                secret.as_slice()
            );
        }
    }

    #[test]
    fn fewer_than_threshold_does_not_recover() {
        let secret = [7u8; 32];
        let shares = split(&secret, 5, 3).expect("split");
        let two = combine(&[shares[0].clone(), shares[1].clone()]).expect("combine");
        assert_ne!(two.as_slice(), secret.as_slice());
    }

    #[test]
    fn x_coordinates_are_the_last_byte_and_distinct() {
        let shares = split(&[1u8; 16], 10, 4).expect("split");
        let mut xs: Vec<u8> = shares.iter().map(|s| s[s.len() - 1]).collect();
        assert!(xs.iter().all(|x| *x != 0));
        xs.sort_unstable();
        xs.dedup();
        assert_eq!(xs.len(), 10);
    }

    /// A fixed vector produced by Vault's `shamir.Split` (github.com/hashicorp/vault/shamir,
    /// v1.21.4) for the secret 0x00..0x0f with 3 of 5; see tests/vault_shamir/.
    #[test]
    fn combines_shares_made_by_vault() {
        let vault_shares = [
            "36c58117c2b49e7c1f4115712258d4c066",
            "956325f295799b94007a90c9ca3753721b",
            "1eb766efcd1ba61c5e381808a9c057d01f",
        ];
        let parts: Vec<_> = vault_shares
            .iter()
            .map(|h| z(&hex::decode(h).expect("hex")))
            .collect();
        let secret: Vec<u8> = (0..16).collect();
        assert_eq!(
            combine(&parts).expect("combine").as_slice(),
            secret.as_slice()
        );
    }

    #[test]
    fn single_share_is_the_secret() {
        let shares = split(b"abc", 1, 1).expect("split");
        assert_eq!(shares[0].as_slice(), b"abc");
    }

    #[test]
    fn validation_matches_vault() {
        assert_eq!(validate(0, 0), Err(ShamirError::Shares(0)));
        assert_eq!(validate(256, 3), Err(ShamirError::Shares(256)));
        assert_eq!(
            validate(3, 4),
            Err(ShamirError::Threshold {
                threshold: 4,
                shares: 3
            })
        );
        assert_eq!(validate(3, 1), Err(ShamirError::ThresholdOne));
        assert_eq!(validate(1, 1), Ok(()));
        assert_eq!(validate(255, 255), Ok(()));
    }

    #[test]
    fn malformed_shares_are_errors_not_panics() {
        assert!(combine(&[]).is_err());
        assert_eq!(combine(&[z(&[1]), z(&[2])]), Err(ShamirError::TooShort));
        assert_eq!(
            combine(&[z(&[1, 2, 3]), z(&[1, 2])]),
            Err(ShamirError::LengthMismatch)
        );
        assert_eq!(combine(&[z(&[1, 0]), z(&[2, 1])]), Err(ShamirError::ZeroX));
        assert_eq!(
            combine(&[z(&[1, 5]), z(&[2, 5])]),
            Err(ShamirError::DuplicateX)
        );
        assert_eq!(
            combine(&[z(&[1, 5]), z(&[1, 5])]),
            Err(ShamirError::NotEnoughShares { needed: 2, got: 1 })
        );
    }
}
