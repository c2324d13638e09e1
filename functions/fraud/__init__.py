"""Fraud checks (IRSF): destination groups, the ranges to watch, and the rules over them."""
