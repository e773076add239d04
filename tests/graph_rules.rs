// graph_rules tests
