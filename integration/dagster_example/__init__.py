"""The seed pipeline as Dagster assets: ``dagster dev -m integration.dagster_example.definitions``.

Toy computes only (no network, no model weights); see ``assets.py``.
"""
