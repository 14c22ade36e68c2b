"""Lets ``fab`` find the ``deploy/`` task collection from the repository root.

Fabric looks for a collection named ``fabfile``; a project ``fabric.yaml`` cannot rename it
because Invoke reads project config only *after* loading the collection (from its directory).
"""

from deploy import ns  # noqa: F401
