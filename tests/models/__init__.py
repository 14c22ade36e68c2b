"""One test module per model: `sparkml-ops new-model NAME` writes tests/models/test_NAME.py."""
