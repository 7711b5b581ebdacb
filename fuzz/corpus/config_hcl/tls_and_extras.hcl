storage "inmem" {}
listener "tcp" {
  address       = "0.0.0.0:8300"
  tls_cert_file = "/tls/tls.crt"
  tls_key_file  = "/tls/tls.key"
  max_request_size = 1048576
}
cluster_name  = "prod"
cluster_addr  = "https://10.0.0.1:8201"
log_level     = "debug"
log_format    = "json"
disable_mlock = true
ui            = "true"
cache_size    = 1000
disable_cache = false
