"""How far a sync is: the estimate (`estimate`, pure bookkeeping over a `density` map, fed by the
listing through `deck.core.observers`), what it shows at one moment (`snapshot`) and the display
(`display`: live on a terminal, log lines elsewhere). Imports `deck.core` only.
"""
