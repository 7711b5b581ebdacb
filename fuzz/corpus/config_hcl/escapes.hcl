storage "file" { path = "/a\"b\\c\n\t" }
listener "tcp" { address = "127.0.0.1:0" tls_disable = 0 }
