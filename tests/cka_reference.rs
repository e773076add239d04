// cka_reference tests
