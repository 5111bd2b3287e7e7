"""Coupling of micro solvers and surrogates (lift, restrict, scheduler, engines, MPI).

Imports :mod:`ledmus.solvers` and :mod:`ledmus.surrogates`, never the reverse.  The
engines arrive with the coupler issue; this package fixes the layout from day one.
"""
