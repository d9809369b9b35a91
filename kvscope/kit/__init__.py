"""The shared kit every command package builds on: ``figures`` (Matplotlib helpers)."""
