"""The ``herald`` command: the composition root, which wires the HTTP side, workers and engine.

One module per sub-command (``herald.serve``, ``herald.worker``...), gathered by
:mod:`herald.cli`; ``herald dev`` and its embedded runner live in :mod:`herald.dev`.
Only this package may import all of ``app``, ``workers`` and ``workflows``;
nothing outside it imports it.
"""
