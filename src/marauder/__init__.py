"""Marauder."""
