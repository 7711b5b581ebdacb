path "a*b" { capabilities = ["read"] }
path "x" "y" { capabilities = ["fly"] }
