storage "file" {
  path = "/x"
  nested = [[[1, 2], [3]], { a = -1.5e3 }]
