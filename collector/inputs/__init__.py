"""Inputs that produce records or messages."""
