"""How far a sync is: the estimate (`estimate`, pure bookkeeping fed by the listing through
`deck.core.observers`) and its display (`display`). Imports `deck.core` only.
"""
