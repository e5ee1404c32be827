"""Versioned records, one module per topic. JSON on the wire; each record names its
`schema_version`, and a consumer refuses versions it does not know."""

from .alert import Alert, InvalidAlert, parse_alert
from .failed import FailureRecord
from .ready import AnimationReady
from .stage import StageMessage

__all__ = ["Alert", "AnimationReady", "FailureRecord", "InvalidAlert", "StageMessage",
           "parse_alert"]
