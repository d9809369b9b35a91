"""Figures: each module turns an analysis result into a matplotlib ``Figure``; no computing here."""
