"""What every layer shares, pure or nearly so (no HTTP, no pipeline): the API's constants
(`settings`), the errors a user sees and the scrubber that keeps the key out of them, windows of
`created_at` time and Deck's clock, the state a listing keeps, what a record must be to load, the
options and filters, the tables' names, the sync's counters and the observer the listing reports
its progress to. Imports nothing else of `deck`.
"""
