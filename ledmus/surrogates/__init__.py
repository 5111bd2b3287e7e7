"""Learned surrogates (autoencoders, propagators, training): the LED half of ledmus.

Depends on torch and on nothing in :mod:`ledmus.coupler`.  The models arrive with the
LED surrogates issue; this package exists so the import direction is fixed from day one.
"""
