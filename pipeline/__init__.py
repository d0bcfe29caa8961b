"""Spark-plus-GPU pipeline: MediaWiki dumps -> pages -> Arrow token shards -> GPT training."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("spark-gpu-pipeline")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
