"""The method, one module per stage (see `pipeline.graph` for their order)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("alertanim")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
