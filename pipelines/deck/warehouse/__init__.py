"""The destination and this machine's disk: what the destination can do, the SQL models, Delta
tables, the DuckDB file's lock, the pipeline's working folder, and local faults. Imports
`deck.core` only.
"""
