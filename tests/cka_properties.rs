// cka_properties tests
