// common tests
