# hash comment
// slash comment
/* block
   comment */
name = "ignored"
path "secret/data/app/*" {
  capabilities = ["read", "list"]
  comment      = "apps read their own secrets"
}
path "/sys/policies/acl/+" { capabilities = ["create", "update", "patch", "delete", "sudo"] }
path "old/read"  { policy = "read" }
path "old/write" { policy = "write" }
path "old/deny"  { policy = "deny" capabilities = ["read"] }
path "events/*"  { capabilities = ["subscribe", "recover"] subscribe_event_types = ["*"] }
path "empty" { capabilities = [] }
