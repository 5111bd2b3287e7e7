"""MUSCLE3 components: thin adapters (the reuse loop, settings, checkpoints) around the
classes of :mod:`ledmus.coupler`.  Start them through a yMMSL file::

    muscle_manager --start-all configs/led_fhn.ymmsl

``macro`` (macro model + schedule policy, O_I ``state_out``, S ``state_in``), ``lift``
and ``restrict`` (mappers, F_INIT ``in``, O_F ``out``) and ``micro`` (F_INIT ``init``,
O_F ``final``; usable on its own with a foreign macro code).
"""
