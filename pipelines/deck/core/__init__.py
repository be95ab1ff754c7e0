"""What every layer shares: settings, errors, the scrubber, windows of time, Deck's clock, the
state a listing keeps, the check of each record, the options, the tables' names, the sync's
counters and the observer the listing reports its progress to. Imports nothing else of `deck`.
"""
