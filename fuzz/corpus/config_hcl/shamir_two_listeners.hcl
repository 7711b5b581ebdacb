// two listeners, shamir seal
storage "file" {
  path = "/data"
}
listener "tcp" { address = "[::1]:8200" tls_disable = "true" }
listener "tcp" { address = "127.0.0.1:8210", tls_disable = true }
seal "shamir" {}
/* block comment */
