// formats_pytorch tests
