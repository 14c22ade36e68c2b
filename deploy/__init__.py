"""The Fabric task collection of sparkml-ops (``fab --list`` from the repository root)."""

from invoke import Collection

from deploy import tasks

ns = Collection.from_module(tasks)
