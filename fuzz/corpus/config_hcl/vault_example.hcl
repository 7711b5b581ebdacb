storage "file" { path = "/var/lib/sealkeep/data" }
listener "tcp" { address = "127.0.0.1:8200"  tls_disable = 1 }
api_addr = "http://127.0.0.1:8200"
seal "awskms" {
  region     = "us-east-1"
  kms_key_id = "alias/my-vault-unseal-key"
  endpoint   = "http://127.0.0.1:5000"   # optional
  max_backoff = "30s"
}
