// corruption tests
