path "secret/data/{{identity.entity.id}}/*" {
  capabilities = ["create", "update", "read", "delete", "list"]
}
path "auth/token/lookup-self" { capabilities = ["read"] }
