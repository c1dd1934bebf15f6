"""Ready configurations shipped with hekapy (installed as package data)."""
