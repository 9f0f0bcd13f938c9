"""The processor database: Piccolo tables, migrations and seeds."""
