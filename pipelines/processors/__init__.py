"""The deployables: one module per processor, each with ``Settings`` and ``run(settings)``.

``fleet run <name>`` runs the module ``pipelines.processors.<name>``.
"""
