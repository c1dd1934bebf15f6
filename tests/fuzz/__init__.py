"""Fuzz targets, their runner (scripts/fuzz) and the CI run of them."""
