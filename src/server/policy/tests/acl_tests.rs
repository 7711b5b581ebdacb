//! Matching and priority tests, table-driven from Vault's documented rules and `acl.go` comments.

use super::super::{Acl, Capability};
use super::{acl, hcl};

/// (pattern, capabilities) pairs.
type Rules = &'static [(&'static str, &'static [&'static str])];
/// (rules, request path, capabilities reported for it)
type Case = (Rules, &'static str, &'static [&'static str]);

const PRIORITY: &[Case] = &[
    // An exact pattern wins over any glob.
    (
        &[("secret/foo", &["read"]), ("secret/*", &["update"])],
        "secret/foo",
        &["read"],
    ),
    (
        &[("secret/foo", &["read"]), ("secret/*", &["update"])],
        "secret/foo2",
        &["update"],
    ),
    // A glob matches by prefix, also within a segment, but not the bare parent.
    (&[("secret/app*", &["read"])], "secret/app1/db", &["read"]),
    (&[("secret/app/*", &["read"])], "secret/app", &["deny"]),
    // Only the longest matching prefix takes part.
    (
        &[("secret/*", &["read"]), ("secret/a/*", &["list"])],
        "secret/a/b",
        &["list"],
    ),
    (
        &[("secret/*", &["read"]), ("secret/a/*", &["list"])],
        "secret/b",
        &["read"],
    ),
    // Vault docs: of "secret/*" and "secret/+/*", the first wildcard is in the same place, both
    // end in *, and the latter has more + segments: "secret/*" wins.
    (
        &[("secret/*", &["read"]), ("secret/+/*", &["update"])],
        "secret/a/b",
        &["read"],
    ),
    // The first wildcard later wins: foo/a* over foo/+.
    (
        &[("foo/a*", &["read"]), ("foo/+", &["update"])],
        "foo/ab",
        &["read"],
    ),
    // ... and foo/bar/+/baz over foo/+/bar/baz.
    (
        &[("foo/+/bar/baz", &["read"]), ("foo/bar/+/baz", &["update"])],
        "foo/bar/bar/baz",
        &["update"],
    ),
    // No trailing * beats a trailing *: foo/+/bar over foo/+/ba*, foo/+ over foo/*.
    (
        &[("foo/+/ba*", &["read"]), ("foo/+/bar", &["update"])],
        "foo/x/bar",
        &["update"],
    ),
    (
        &[("foo/*", &["read"]), ("foo/+", &["update"])],
        "foo/x",
        &["update"],
    ),
    // Fewer + segments win.
    (
        &[("foo/+/x/+", &["read"]), ("foo/+/x/y", &["update"])],
        "foo/a/x/y",
        &["update"],
    ),
    // The longer pattern wins: foo/+/bar/ba* over foo/+/bar/b*.
    (
        &[("foo/+/bar/b*", &["read"]), ("foo/+/bar/ba*", &["update"])],
        "foo/a/bar/baz",
        &["update"],
    ),
    // + is exactly one segment; with a trailing * the rest is a prefix.
    (
        &[("secret/+/config", &["read"])],
        "secret/app/config",
        &["read"],
    ),
    (
        &[("secret/+/config", &["read"])],
        "secret/a/b/config",
        &["deny"],
    ),
    (
        &[("secret/+/config", &["read"])],
        "secret/config",
        &["deny"],
    ),
    (
        &[("secret/+/app*", &["read"])],
        "secret/x/app1/deep",
        &["read"],
    ),
    (&[("+/data/+", &["read"])], "kv/data/x", &["read"]),
    (&[("+", &["read"])], "kv", &["read"]),
    (&[("+", &["read"])], "kv/x", &["deny"]),
    // "*" alone matches everything.
    (&[("*", &["read"])], "anything/at/all", &["read"]),
    // A leading slash on either side is ignored.
    (&[("/secret/x", &["read"])], "/secret/x", &["read"]),
    // A deny only wins for its own pattern: a more specific grant still applies.
    (
        &[("secret/*", &["deny"]), ("secret/public/*", &["read"])],
        "secret/public/x",
        &["read"],
    ),
    (
        &[("secret/*", &["read"]), ("secret/private/*", &["deny"])],
        "secret/private/x",
        &["deny"],
    ),
    // Reported names are sorted.
    (
        &[("a", &["update", "read", "create", "sudo", "patch"])],
        "a",
        &["create", "patch", "read", "sudo", "update"],
    ),
    // Nothing matches: deny.
    (&[("secret/x", &["read"])], "other", &["deny"]),
];

#[test]
fn vault_priority_rules() {
    for (rules, path, expected) in PRIORITY {
        let acl = acl(&[&hcl(rules)]);
        assert_eq!(&acl.capabilities(path), expected, "{rules:?} on {path}");
    }
}

#[test]
fn allows_checks_the_capability_of_the_winning_rule() {
    let acl = acl(&[&hcl(&[
        ("secret/data/app/*", &["read", "create"]),
        ("secret/data/app/locked", &["deny"]),
        ("sys/seal", &["update", "sudo"]),
    ])]);
    assert!(acl.allows("secret/data/app/db", Capability::Read));
    assert!(acl.allows("secret/data/app/db", Capability::Create));
    assert!(!acl.allows("secret/data/app/db", Capability::Update));
    assert!(!acl.allows("secret/data/app/locked", Capability::Read));
    assert!(!acl.allows("secret/data/other", Capability::Read));
    assert!(acl.allows("sys/seal", Capability::Sudo));
    assert!(!acl.allows("sys/seal", Capability::Deny));
    assert!(!acl.is_root());
}

#[test]
fn same_pattern_merges_across_and_within_policies() {
    let a = hcl(&[("secret/x", &["read"]), ("secret/x", &["list"])]);
    let b = hcl(&[("secret/x", &["update"]), ("secret/+/y", &["read"])]);
    let c = hcl(&[("secret/+/y", &["patch"]), ("secret/z/*", &["create"])]);
    let acl = acl(&[&a, &b, &c]);
    assert_eq!(acl.capabilities("secret/x"), vec!["list", "read", "update"]);
    assert_eq!(acl.capabilities("secret/q/y"), vec!["patch", "read"]);
    assert_eq!(acl.capabilities("secret/z/1"), vec!["create"]);
}

#[test]
fn deny_in_any_policy_wins_for_that_pattern() {
    let grant = hcl(&[
        ("secret/x", &["read", "update"]),
        ("secret/g/*", &["read"]),
        ("secret/+/w", &["read"]),
    ]);
    let deny = hcl(&[
        ("secret/x", &["deny"]),
        ("secret/g/*", &["deny"]),
        ("secret/+/w", &["deny"]),
    ]);
    for order in [[&grant, &deny], [&deny, &grant]] {
        let acl = acl(&[order[0], order[1]]);
        for path in ["secret/x", "secret/g/1", "secret/q/w"] {
            assert_eq!(acl.capabilities(path), vec!["deny"], "{path}");
            assert!(!acl.allows(path, Capability::Read), "{path}");
        }
    }
}

#[test]
fn list_checks_the_directory_and_the_bare_path() {
    let cases: &[(Rules, &str, bool)] = &[
        (
            &[("secret/metadata/app/*", &["list"])],
            "secret/metadata/app",
            true,
        ),
        (
            &[("secret/metadata/app/", &["list"])],
            "secret/metadata/app",
            true,
        ),
        (
            &[("secret/metadata/app", &["list"])],
            "secret/metadata/app",
            true,
        ),
        (
            &[("secret/metadata/+", &["list"])],
            "secret/metadata/app",
            true,
        ),
        (
            &[("sys/policies/acl", &["list"])],
            "sys/policies/acl/",
            true,
        ),
        (
            &[("secret/metadata/app/*", &["read"])],
            "secret/metadata/app",
            false,
        ),
        // A more specific deny beats a broader list grant reached through either form.
        (
            &[
                ("secret/metadata/*", &["list"]),
                ("secret/metadata/app/*", &["deny"]),
            ],
            "secret/metadata/app",
            false,
        ),
        (
            &[
                ("secret/metadata/+", &["list"]),
                ("secret/metadata/app/*", &["deny"]),
            ],
            "secret/metadata/app",
            false,
        ),
        // A more specific list grant beats a broader deny.
        (
            &[("secret/*", &["deny"]), ("secret/metadata/+", &["list"])],
            "secret/metadata/app",
            true,
        ),
    ];
    for (rules, path, allowed) in cases {
        let acl = acl(&[&hcl(rules)]);
        assert_eq!(
            acl.allows(path, Capability::List),
            *allowed,
            "{rules:?} LIST {path}"
        );
    }
    // Without a trailing slash on the request, a non-list check does not see "app/".
    let acl = acl(&[&hcl(&[("secret/metadata/app/", &["read"])])]);
    assert!(!acl.allows("secret/metadata/app", Capability::Read));
}

#[test]
fn root_grants_everything_and_templates_never_match() {
    let root = Acl::root();
    assert!(root.is_root());
    for cap in Capability::ALL
        .into_iter()
        .filter(|c| *c != Capability::Deny)
    {
        assert!(root.allows("sys/seal", cap), "{cap:?}");
    }
    assert_eq!(root.capabilities("anything"), vec!["root"]);

    let acl = acl(&[
        r#"path "identity/entity/id/{{identity.entity.id}}" { capabilities = ["read"] }
           path "identity/*" { capabilities = ["list"] }"#,
    ]);
    assert_eq!(
        acl.capabilities("identity/entity/id/{{identity.entity.id}}"),
        vec!["list"]
    );
}

#[test]
fn empty_acl_denies() {
    let acl = Acl::new(&[]);
    assert!(!acl.allows("secret/x", Capability::Read));
    assert_eq!(acl.capabilities("secret/x"), vec!["deny"]);
}
