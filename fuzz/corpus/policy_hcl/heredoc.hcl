path "a/b" {
  capabilities = ["deny"]
  comment = <<EOT
multi
line
EOT
}
