"""The training engine: optax recipes, device mesh, orbax checkpoints, logging, the loop.

``from seqjax.training.loop import train`` runs an experiment config end to end.
"""
