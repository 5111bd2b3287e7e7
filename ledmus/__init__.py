"""ledmus: learned effective dynamics (LED) coupled concurrently to micro solvers.

Subpackages: :mod:`ledmus.solvers` (micro solvers, pure numerics),
:mod:`ledmus.surrogates` (torch models) and :mod:`ledmus.coupler` (MUSCLE3 / embedded
engines).  Imports run one way: coupler -> surrogates, solvers.
"""

__version__ = "0.2.0"
