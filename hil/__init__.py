"""Hardware-in-the-loop suite: black-box tests over MQTT against a rig (see docs/hil.md).

A package so that pytest puts the repository root on ``sys.path`` and
``from tests.uiclient import ...`` and ``from hil.rig import ...`` resolve.
"""
