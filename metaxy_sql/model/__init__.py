"""Stage 1, the model: feature definitions (pydantic), the validated graph with its
field-level dependencies and versions, the hashing oracle, the names of every column and
table, user filters, and the project configuration. No SQL engine is touched here."""
