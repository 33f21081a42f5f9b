"""Offline stores: every computed row of every feature view, for training sets and analysis."""
