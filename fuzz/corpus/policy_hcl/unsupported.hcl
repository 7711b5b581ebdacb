path "secret/*" {
  capabilities = ["read"]
  allowed_parameters = { "k" = ["v1", "v2"] }
  min_wrapping_ttl = "1s"
}
