#!/usr/bin/env python3
"""hvac (the Python Vault client, pinned to 2.4.0 by scripts/test-all.sh) drives a real sealkeep
server through its public API only: init and unseal, KV v2, tokens, ACL policies, a second KV
mount, and a token that a policy limits.

tests/client_hvac.rs starts the server (file storage, Shamir seal, uninitialized) and runs this
file with VAULT_ADDR set; the exit status is the verdict. Steps run in order (each depends on the
state the previous ones left) and stop at the first failure, which is printed with its traceback.
A step that hits a known server bug is listed in KNOWN_BUGS and reported as skipped.
"""

import importlib.metadata
import json
import os
import sys
import time
import traceback
import warnings

import hvac
from hvac import exceptions as exc

ADDR = os.environ["VAULT_ADDR"]
TIMEOUT = 15  # seconds, per HTTP request

# step name -> reason: steps skipped because of a server bug that is reported but not fixed yet.
KNOWN_BUGS = {}

APP_READ_HCL = """# read-only access to the app's secrets
path "secret/data/app/*" {
  capabilities = ["read"]
}
"""

STATE = {}


def client(token=None):
    return hvac.Client(url=ADDR, token=token, timeout=TIMEOUT)


def root():
    return client(STATE["root_token"])


def kv(c=None):
    return (c or root()).secrets.kv.v2


def raises(cls, fn, *args, **kwargs):
    """Calls fn and returns the exception, which must be an instance of cls."""
    try:
        result = fn(*args, **kwargs)
    except cls as e:
        return e
    except Exception as e:  # noqa: BLE001 - the wrong exception is the failure being reported
        raise AssertionError(
            f"expected {cls.__name__}, got {type(e).__name__}: {e}"
        ) from e
    raise AssertionError(f"expected {cls.__name__}, but the call returned {result!r}")


def eq(actual, expected, what):
    assert actual == expected, f"{what}: expected {expected!r}, got {actual!r}"


def read_data(path, mount_point="secret", version=None, c=None):
    r = kv(c).read_secret_version(
        path, version=version, mount_point=mount_point, raise_on_deleted_version=True
    )
    return r["data"]["data"], r["data"]["metadata"]


# --- init and unseal -------------------------------------------------------------------------


def step_init_and_unseal():
    c = client()
    eq(c.sys.is_initialized(), False, "is_initialized before init")
    init = c.sys.initialize(secret_shares=3, secret_threshold=2)
    eq(len(init["keys"]), 3, "number of unseal keys")
    eq(len(init["keys_base64"]), 3, "number of base64 unseal keys")
    assert init["root_token"].startswith("hvs."), init["root_token"]
    STATE["keys"] = init["keys"]
    STATE["root_token"] = init["root_token"]
    eq(c.sys.is_initialized(), True, "is_initialized after init")

    st = c.sys.read_seal_status()
    eq(st["sealed"], True, "sealed after init")
    eq((st["t"], st["n"], st["progress"]), (2, 3, 0), "(t, n, progress)")
    eq(st["type"], "shamir", "seal type")
    eq(c.sys.is_sealed(), True, "is_sealed")
    # While sealed, secrets are unreachable: 503, which hvac raises as VaultDown.
    raises(exc.VaultDown, kv(client(init["root_token"])).read_secret_version, "x",
           raise_on_deleted_version=True)

    one = c.sys.submit_unseal_key(init["keys"][0])
    eq((one["sealed"], one["progress"]), (True, 1), "(sealed, progress) after one key")
    # A reset discards the progress; then two keys (of three) unseal.
    reset = c.sys.submit_unseal_key(reset=True)
    eq(reset["progress"], 0, "progress after reset")
    st = c.sys.submit_unseal_keys(init["keys"][1:])
    eq(st["sealed"], False, "sealed after two keys")
    eq(c.sys.is_sealed(), False, "is_sealed after unseal")
    eq(root().is_authenticated(), True, "root token is_authenticated")
    eq(client("hvs.not-a-token").is_authenticated(), False, "bogus token is_authenticated")


# --- KV v2 on secret/ ------------------------------------------------------------------------


def step_kv_create_read():
    r = kv().create_or_update_secret("app/db", {"user": "u1", "pass": "p1"})
    meta = r["data"]
    eq(meta["version"], 1, "version of the first write")
    eq(meta["deletion_time"], "", "deletion_time of a live version")
    eq(meta["destroyed"], False, "destroyed of a live version")
    assert meta["created_time"].endswith("Z"), meta
    data, meta = read_data("app/db")
    eq(data, {"user": "u1", "pass": "p1"}, "read after create")
    eq(meta["version"], 1, "metadata.version on read")


def step_kv_cas():
    r = kv().create_or_update_secret("app/db", {"user": "u1", "pass": "p2"}, cas=1)
    eq(r["data"]["version"], 2, "version after a cas=1 update")
    e = raises(exc.InvalidRequest, kv().create_or_update_secret, "app/db", {"pass": "x"}, cas=1)
    assert any("check-and-set" in m for m in e.errors), e.errors
    # cas=0: create only.
    raises(exc.InvalidRequest, kv().create_or_update_secret, "app/db", {"pass": "x"}, cas=0)
    r = kv().create_or_update_secret("app/new", {"k": "v"}, cas=0)
    eq(r["data"]["version"], 1, "cas=0 creates a new key")
    data, meta = read_data("app/db")
    eq((data["pass"], meta["version"]), ("p2", 2), "the refused writes changed nothing")


def step_kv_patch():
    r = kv().patch("app/db", {"pass": "p3", "extra": "x"})
    eq(r["data"]["version"], 3, "version after patch")
    data, _ = read_data("app/db")
    eq(data, {"user": "u1", "pass": "p3", "extra": "x"}, "merged data after patch")
    raises(exc.InvalidPath, kv().patch, "app/absent", {"a": "b"})


def step_kv_read_version():
    data, meta = read_data("app/db", version=1)
    eq((data, meta["version"]), ({"user": "u1", "pass": "p1"}, 1), "version 1")
    raises(exc.InvalidPath, read_data, "app/db", version=9)


def step_kv_soft_delete_and_undelete():
    kv().delete_latest_version_of_secret("app/db")
    raises(exc.InvalidPath, read_data, "app/db")
    # Without raise_on_deleted_version, hvac returns the 404's body: the deleted version's metadata.
    r = kv().read_secret_version("app/db", raise_on_deleted_version=False)
    eq(r["data"]["data"], None, "data of a deleted version")
    eq(r["data"]["metadata"]["version"], 3, "deleted version")
    assert r["data"]["metadata"]["deletion_time"] != "", r
    kv().undelete_secret_versions("app/db", [3])
    data, meta = read_data("app/db")
    eq((data["pass"], meta["deletion_time"]), ("p3", ""), "version 3 after undelete")
    # Delete a version that is not the latest.
    kv().delete_secret_versions("app/db", [2])
    raises(exc.InvalidPath, read_data, "app/db", version=2)
    data, _ = read_data("app/db")
    eq(data["pass"], "p3", "latest still readable")


def step_kv_destroy():
    kv().destroy_secret_versions("app/db", [1])
    raises(exc.InvalidPath, read_data, "app/db", version=1)
    # hvac re-raises even without raise_on_deleted_version (a destroyed version has no
    # deletion_time); the 404's body still says it was destroyed.
    e = raises(exc.InvalidPath, kv().read_secret_version, "app/db", version=1,
               raise_on_deleted_version=False)
    eq(e.json["data"]["metadata"]["destroyed"], True, "destroyed flag in the 404 body")
    # A destroyed version cannot be undeleted.
    kv().undelete_secret_versions("app/db", [1])
    raises(exc.InvalidPath, read_data, "app/db", version=1)


def step_kv_list():
    kv().create_or_update_secret("app/sub/one", {"a": "1"})
    keys = kv().list_secrets("app")["data"]["keys"]
    eq(sorted(keys), ["db", "new", "sub/"], "keys under app/")
    eq(kv().list_secrets("")["data"]["keys"], ["app/"], "keys at the mount root")
    eq(kv().list_secrets("app/sub/")["data"]["keys"], ["one"], "keys under app/sub/")
    raises(exc.InvalidPath, kv().list_secrets, "nothing-here")


def step_kv_metadata():
    m = kv().read_secret_metadata("app/db")["data"]
    eq(m["current_version"], 3, "current_version")
    eq(m["oldest_version"], 0, "oldest_version (Vault keeps 0 until versions are pruned)")
    eq(sorted(m["versions"]), ["1", "2", "3"], "versions")
    eq(m["versions"]["1"]["destroyed"], True, "version 1 destroyed")
    assert m["versions"]["2"]["deletion_time"] != "", m["versions"]["2"]
    eq(m["versions"]["3"]["deletion_time"], "", "version 3 live")
    eq((m["max_versions"], m["cas_required"]), (0, False), "defaults")
    assert m["created_time"] and m["updated_time"], m

    kv().update_metadata("app/db", max_versions=2, custom_metadata={"owner": "team-a"})
    m = kv().read_secret_metadata("app/db")["data"]
    eq(m["max_versions"], 2, "max_versions after update_metadata")
    eq(m["custom_metadata"], {"owner": "team-a"}, "custom_metadata")
    # A new version beyond max_versions prunes the oldest ones.
    kv().create_or_update_secret("app/db", {"user": "u1", "pass": "p4"})
    m = kv().read_secret_metadata("app/db")["data"]
    eq(m["current_version"], 4, "current_version after a 4th write")
    eq(sorted(m["versions"]), ["3", "4"], "versions kept with max_versions=2")
    eq(m["oldest_version"], 3, "oldest_version after pruning")
    raises(exc.InvalidPath, read_data, "app/db", version=2)

    # cas_required in metadata: a write without cas is refused.
    kv().update_metadata("app/new", cas_required=True)
    raises(exc.InvalidRequest, kv().create_or_update_secret, "app/new", {"k": "v2"})
    r = kv().create_or_update_secret("app/new", {"k": "v2"}, cas=1)
    eq(r["data"]["version"], 2, "write with cas under cas_required")


def step_kv_delete_metadata():
    kv().delete_metadata_and_all_versions("app/new")
    raises(exc.InvalidPath, kv().read_secret_metadata, "app/new")
    raises(exc.InvalidPath, read_data, "app/new")
    raises(exc.InvalidPath, read_data, "app/new", version=1)
    eq(sorted(kv().list_secrets("app")["data"]["keys"]), ["db", "sub/"], "keys after delete")
    # The key can be written again and starts over at version 1.
    r = kv().create_or_update_secret("app/new", {"k": "again"})
    eq(r["data"]["version"], 1, "version after re-creating a deleted key")


# --- policies --------------------------------------------------------------------------------


def step_policies():
    c = root()
    c.sys.create_or_update_acl_policy("app-read", APP_READ_HCL)
    p = c.sys.read_acl_policy("app-read")["data"]
    eq((p["name"], p["policy"]), ("app-read", APP_READ_HCL), "policy as written")
    # hvac sends a dict as pretty-printed JSON, which Vault's HCL parser accepts.
    c.sys.create_or_update_acl_policy(
        "team-write",
        {"path": {"team/data/*": {"capabilities": ["create", "read", "update"]}}},
    )
    text = c.sys.read_acl_policy("team-write")["data"]["policy"]
    eq(json.loads(text)["path"]["team/data/*"]["capabilities"], ["create", "read", "update"],
       "JSON policy text")
    keys = c.sys.list_acl_policies()["data"]["keys"]
    for name in ("app-read", "default", "root", "team-write"):
        assert name in keys, (name, keys)
    e = raises(exc.InvalidRequest, c.sys.create_or_update_acl_policy, "bad",
               'path "secret/*" { capabilities = ["fly"] }')
    assert e.errors, e
    raises(exc.InvalidPath, c.sys.read_acl_policy, "bad")
    c.sys.delete_acl_policy("team-write")
    assert "team-write" not in c.sys.list_acl_policies()["data"]["keys"]


# --- tokens ----------------------------------------------------------------------------------


def step_tokens():
    c = root()
    r = c.auth.token.create(policies=["app-read"], ttl="1h", meta={"purpose": "hvac-test"})
    auth = r["auth"]
    token = auth["client_token"]
    assert token.startswith("hvs."), token
    eq(sorted(auth["policies"]), ["app-read", "default"], "policies of the new token")
    eq(sorted(auth["token_policies"]), ["app-read", "default"], "token_policies")
    eq((auth["lease_duration"], auth["renewable"]), (3600, True), "(lease_duration, renewable)")
    eq(auth["metadata"], {"purpose": "hvac-test"}, "metadata")
    accessor = auth["accessor"]
    assert accessor and accessor != token, auth

    d = c.auth.token.lookup(token)["data"]
    eq(d["id"], token, "lookup id")
    eq(d["accessor"], accessor, "lookup accessor")
    eq(sorted(d["policies"]), ["app-read", "default"], "lookup policies")
    # hvac sends display_name="token"; Vault prefixes "token-" to any display name it is given.
    eq((d["creation_ttl"], d["display_name"], d["orphan"]), (3600, "token-token", False),
       "(creation_ttl, display_name, orphan)")
    assert 3500 <= d["ttl"] <= 3600, d["ttl"]
    eq(d["meta"], {"purpose": "hvac-test"}, "lookup meta")
    eq(c.auth.token.lookup_accessor(accessor)["data"]["accessor"], accessor, "lookup_accessor")

    mine = client(token)
    d = mine.auth.token.lookup_self()["data"]
    eq((d["id"], d["accessor"]), (token, accessor), "lookup_self")

    r = c.auth.token.renew(token, increment="30m")
    eq(r["auth"]["client_token"], token, "renew returns the same token")
    eq(r["auth"]["lease_duration"], 1800, "lease_duration after renew with increment 30m")
    d = c.auth.token.lookup(token)["data"]
    assert 1700 <= d["ttl"] <= 1800, d["ttl"]
    r = mine.auth.token.renew_self(increment="45m")
    eq(r["auth"]["lease_duration"], 2700, "lease_duration after renew_self")

    c.auth.token.revoke(token)
    eq(mine.is_authenticated(), False, "revoked token is_authenticated")
    raises(exc.Forbidden, mine.auth.token.lookup_self)
    # Vault answers a lookup of an unknown token with 403 "bad token".
    e = raises(exc.Forbidden, c.auth.token.lookup, token)
    assert any("bad token" in m for m in e.errors), e.errors
    # Revoking an unknown token is not an error in Vault.
    c.auth.token.revoke(token)


def step_token_orphan_and_children():
    c = root()
    # Vault's default policy does not allow auth/token/create; this one does.
    c.sys.create_or_update_acl_policy(
        "token-maker", 'path "auth/token/create" { capabilities = ["update"] }'
    )
    parent = c.auth.token.create(policies=["token-maker"], ttl="1h")["auth"]["client_token"]
    # Children of a token are revoked with it.
    child = client(parent).auth.token.create(ttl="10m")["auth"]["client_token"]
    orphan = c.auth.token.create_orphan(policies=["default"], ttl="1h")["auth"]["client_token"]
    eq(c.auth.token.lookup(orphan)["data"]["orphan"], True, "create_orphan makes an orphan")
    d = c.auth.token.lookup(child)["data"]
    eq((d["orphan"], sorted(d["policies"])), (False, ["default", "token-maker"]),
       "a child inherits its parent's policies")
    c.auth.token.revoke(parent)
    eq(client(child).is_authenticated(), False, "child revoked with its parent")
    eq(client(orphan).is_authenticated(), True, "orphan survives")
    client(orphan).auth.token.revoke_self()
    eq(client(orphan).is_authenticated(), False, "revoke_self")


# --- a token limited by a policy -------------------------------------------------------------


def step_restricted_token():
    c = root()
    kv().create_or_update_secret("other/x", {"no": "access"})
    token = c.auth.token.create(policies=["app-read"], ttl="10m")["auth"]["client_token"]
    limited = client(token)
    data, _ = read_data("app/db", c=limited)
    eq(data["pass"], "p4", "allowed read under secret/data/app/")
    data, _ = read_data("app/sub/one", c=limited)
    eq(data, {"a": "1"}, "allowed read deeper under secret/data/app/")
    # Each refused call gets a client (so a connection) of its own: the server closes the
    # keep-alive connection after refusing a request before reading its body, and the next
    # request on it fails (a_refusal_before_the_body_keeps_the_connection_usable in
    # tests/client_hvac.rs, ignored until the server is fixed).
    refused = [
        ("read outside app/", lambda lc: read_data("other/x", c=lc)),
        ("read of a missing key outside", lambda lc: read_data("nope", c=lc)),
        ("write an existing app key",
         lambda lc: kv(lc).create_or_update_secret("app/db", {"pass": "hacked"})),
        ("create an app key", lambda lc: kv(lc).create_or_update_secret("app/x", {"a": "b"})),
        ("patch", lambda lc: kv(lc).patch("app/db", {"pass": "hacked"})),
        ("soft delete", lambda lc: kv(lc).delete_latest_version_of_secret("app/db")),
        ("destroy", lambda lc: kv(lc).destroy_secret_versions("app/db", [4])),
        ("list", lambda lc: kv(lc).list_secrets("app")),
        ("metadata", lambda lc: kv(lc).read_secret_metadata("app/db")),
        ("delete metadata", lambda lc: kv(lc).delete_metadata_and_all_versions("app/db")),
        ("policy write", lambda lc: lc.sys.create_or_update_acl_policy("x", APP_READ_HCL)),
        ("policy read", lambda lc: lc.sys.read_acl_policy("app-read")),
        ("mount", lambda lc: lc.sys.enable_secrets_engine("kv", path="evil",
                                                          options={"version": "2"})),
        ("token with root policy", lambda lc: lc.auth.token.create(policies=["root"])),
    ]
    for what, call in refused:
        e = raises(exc.Forbidden, call, client(token))
        assert any("permission denied" in m for m in e.errors), (what, e.errors)
    data, meta = read_data("app/db")
    eq((data["pass"], meta["version"]), ("p4", 4), "nothing changed by the refused calls")
    c.auth.token.revoke(token)


# --- a second KV v2 mount --------------------------------------------------------------------


def step_second_mount():
    c = root()
    c.sys.enable_secrets_engine("kv", path="team", options={"version": "2"},
                                description="team secrets")
    mounts = c.sys.list_mounted_secrets_engines()["data"]
    team = mounts["team/"]
    eq((team["type"], team["options"], team["description"]),
       ("kv", {"version": "2"}, "team secrets"), "team/ mount")
    eq(mounts["secret/"]["type"], "kv", "secret/ mount")
    raises(exc.InvalidRequest, c.sys.enable_secrets_engine, "kv", path="team",
           options={"version": "2"})

    r = kv().create_or_update_secret("app/db", {"team": "yes"}, mount_point="team")
    eq(r["data"]["version"], 1, "first version on team/")
    data, _ = read_data("app/db", mount_point="team")
    eq(data, {"team": "yes"}, "read on team/")
    data, _ = read_data("app/db")
    eq(data["pass"], "p4", "secret/ is a separate store")
    eq(kv().list_secrets("app", mount_point="team")["data"]["keys"], ["db"], "list on team/")

    # The engine's own configuration (Vault's `<mount>/config`): max_versions for the mount.
    kv().configure(max_versions=3, mount_point="team")
    conf = kv().read_configuration(mount_point="team")["data"]
    eq((conf["max_versions"], conf["cas_required"]), (3, False), "team/ config")
    eq(kv().read_configuration()["data"]["max_versions"], 0, "secret/ config unchanged")
    for i in range(4):
        kv().create_or_update_secret("pruned", {"i": i}, mount_point="team")
    m = kv().read_secret_metadata("pruned", mount_point="team")["data"]
    eq(sorted(m["versions"]), ["2", "3", "4"], "versions kept with the mount's max_versions=3")

    # The app-read policy names secret/ only.
    token = c.auth.token.create(policies=["app-read"], ttl="10m")["auth"]["client_token"]
    raises(exc.Forbidden, read_data, "app/db", mount_point="team", c=client(token))

    # Unmounting removes the data: a new mount at the same path starts empty.
    c.sys.disable_secrets_engine("team")
    assert "team/" not in c.sys.list_mounted_secrets_engines()["data"]
    c.sys.enable_secrets_engine("kv", path="team", options={"version": "2"})
    raises(exc.InvalidPath, read_data, "app/db", mount_point="team")


def step_seal_and_unseal_again():
    c = root()
    c.sys.seal()
    eq(c.sys.is_sealed(), True, "is_sealed after seal")
    raises(exc.VaultDown, read_data, "app/db")
    st = c.sys.submit_unseal_keys(STATE["keys"][:2])
    eq(st["sealed"], False, "sealed after unsealing again")
    data, meta = read_data("app/db")
    eq((data["pass"], meta["version"]), ("p4", 4), "data after seal and unseal")
    eq(root().is_authenticated(), True, "root token after seal and unseal")


STEPS = [
    step_init_and_unseal,
    step_kv_create_read,
    step_kv_cas,
    step_kv_patch,
    step_kv_read_version,
    step_kv_soft_delete_and_undelete,
    step_kv_destroy,
    step_kv_list,
    step_kv_metadata,
    step_kv_delete_metadata,
    step_policies,
    step_tokens,
    step_token_orphan_and_children,
    step_restricted_token,
    step_second_mount,
    step_seal_and_unseal_again,
]


def main():
    # Our calls pass raise_on_deleted_version; hvac's own patch() does not, and warns about it.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"hvac\.")
    print(f"hvac {importlib.metadata.version('hvac')} against {ADDR}", flush=True)
    passed = skipped = 0
    for step in STEPS:
        name = step.__name__.removeprefix("step_")
        if name in KNOWN_BUGS:
            skipped += 1
            print(f"SKIP {name}: {KNOWN_BUGS[name]}", flush=True)
            continue
        start = time.monotonic()
        try:
            step()
        except Exception:  # noqa: BLE001 - report the failing step and stop
            print(f"FAIL {name}", flush=True)
            traceback.print_exc(file=sys.stdout)
            print(f"hvac: {passed} passed, 1 failed, {skipped} skipped", flush=True)
            return 1
        passed += 1
        print(f"ok   {name} ({time.monotonic() - start:.2f}s)", flush=True)
    print(f"hvac: {passed} passed, 0 failed, {skipped} skipped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
