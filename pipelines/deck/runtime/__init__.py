"""Running the source to completion: `sync()` (`runner`), one dlt trace per sync, and the command
line (`cli`, with its `summary`, `failures` and `signals`). The top layer: it may import every
other one.
"""
