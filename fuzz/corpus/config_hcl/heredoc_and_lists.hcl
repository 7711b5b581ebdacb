storage "inmem" {}
listener "tcp" { address = "127.0.0.1:8200" tls_disable = 1 }
api_addr = <<EOF
http://127.0.0.1:8200
EOF
telemetry { tags = ["a", "b", 1, true, { k = "v" }] }
