"""Deck's v2 API over HTTP: the client, its retrying session, deadlines, the rate limit,
pagination and URL checks. Imports `deck.core` only.
"""
