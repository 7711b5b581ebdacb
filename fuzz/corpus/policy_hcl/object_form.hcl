path = { "secret/+/config" = { capabilities = ["read"] } "kv/*" = { policy = "sudo" } }
