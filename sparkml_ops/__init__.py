"""sparkml-ops: batch ML on Hadoop/Spark with a filesystem model registry."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("sparkml-ops")
except _metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"
