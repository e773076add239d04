// formats_numpy tests
