"""Identifiers in SQL text: one quoting rule for every engine we write SQL for."""


def quote_identifier(name: str) -> str:
    """`name` as a double-quoted identifier (DuckDB, SQLite and PostgreSQL alike), any
    embedded quote doubled, so a column or table name can never end the identifier."""
    return '"' + name.replace('"', '""') + '"'
