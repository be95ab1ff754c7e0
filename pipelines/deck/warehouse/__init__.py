"""The destination and this machine's disk: what the destination can do, the SQL models (views,
`models/*.sql`), Delta tables, repairs and counts on the loaded tables, the DuckDB file's lock,
the pipeline's working folder and load packages, and local faults. Imports `deck.core` only.
"""
