"""Coupling of micro solvers and macro models: the schedule policy, the coordinator,
lifting/restriction mappers, typed messages, the embedded and MUSCLE3 engines, MPI.

Imports :mod:`ledmus.solvers`, :mod:`ledmus.systems` and :mod:`ledmus.surrogates`
(only the :class:`~ledmus.surrogates.macro.MacroModel` protocol), never the reverse.
"""
