//! Core layer: token TTL rules, a port of Vault's `framework.CalculateTTL`. Pure, no I/O.

use super::TokenError;

/// The system default and maximum lease TTLs (Vault's `default_lease_ttl`/`max_lease_ttl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysTtl {
    pub default: u64,
    pub max: u64,
}

/// Vault's defaults: 768h (32 days) for both.
pub const SYSTEM_TTL: SysTtl = SysTtl {
    default: 768 * 3600,
    max: 768 * 3600,
};

/// The inputs of one TTL computation, in seconds (0 = unset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TtlInput {
    /// Requested on renewal.
    pub increment: u64,
    /// Requested at creation, or the last grant on renewal.
    pub ttl: u64,
    pub period: u64,
    /// The issuing auth method's cap.
    pub max_ttl: u64,
    pub explicit_max_ttl: u64,
    /// Unix seconds the token was issued; caps count from here.
    pub start: u64,
}

/// The granted TTL and the warnings Vault would return with it.
pub fn calculate(sys: SysTtl, input: TtlInput, now: u64) -> Result<(u64, Vec<String>), TokenError> {
    let mut warnings = Vec::new();
    let mut max = sys.max;
    if input.max_ttl > 0 && input.max_ttl < max {
        max = input.max_ttl;
    }
    if input.explicit_max_ttl > 0 && input.explicit_max_ttl < max {
        max = input.explicit_max_ttl;
    }
    if max == 0 {
        return Err(TokenError::invalid("max TTL must be greater than zero"));
    }
    let (mut ttl, max_valid_time) = if input.period > 0 {
        let mut period = input.period;
        if period > max {
            warnings.push(format!(
                "period of {} exceeded the effective max_ttl of {}; period value is capped accordingly",
                human(period),
                human(max)
            ));
            period = max;
        }
        let cap = (input.explicit_max_ttl > 0)
            .then(|| input.start.saturating_add(input.explicit_max_ttl));
        (period, cap)
    } else {
        let ttl = match (input.increment, input.ttl) {
            (i, _) if i > 0 => i,
            (_, t) if t > 0 => t,
            _ => sys.default,
        };
        (ttl, Some(input.start.saturating_add(max)))
    };
    if let Some(limit) = max_valid_time {
        if limit <= now {
            return Err(TokenError::invalid("past the max TTL, cannot renew"));
        }
        let max_valid_ttl = limit - now;
        if ttl > max_valid_ttl {
            warnings.push(format!(
                "TTL of {} exceeded the effective max_ttl of {}; TTL value is capped accordingly",
                human(ttl),
                human(max_valid_ttl)
            ));
            ttl = max_valid_ttl;
        }
    }
    Ok((ttl, warnings))
}

/// Seconds as Vault prints them in warnings (`"768h0m0s"`).
fn human(secs: u64) -> String {
    format!("\"{}h{}m{}s\"", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Unix seconds as RFC 3339 (UTC), as Vault's `expire_time` and `issue_time`.
pub fn rfc3339(unix: u64) -> String {
    // Clamped to 9999-12-31T23:59:59Z, the last instant RFC 3339 can write.
    let secs = unix.min(253_402_300_799);
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}
