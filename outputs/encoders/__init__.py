"""Encoders that serve any output; an encoder made for one output lives beside it."""
