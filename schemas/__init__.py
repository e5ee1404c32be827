"""Versioned records, one module per topic. JSON on the wire; each record names its
`schema_version`, and a consumer refuses versions it does not know."""

from .alert import Alert, EventCode, parse_alert
from .errors import (AlertanimError, InvalidAlert, InvalidInput, InvalidMessage,
                     ModelsUnavailable, SendRefused, StoreRefused, StoreUnavailable)
from .failed import FailureRecord
from .ready import AnimationReady, Quality, Rendition
from .stage import ImageRefs, StageMessage, Value

__all__ = ["Alert", "AlertanimError", "AnimationReady", "EventCode", "FailureRecord",
           "ImageRefs", "InvalidAlert", "InvalidInput", "InvalidMessage", "ModelsUnavailable",
           "Quality", "Rendition", "SendRefused", "StageMessage", "StoreRefused",
           "StoreUnavailable", "Value", "parse_alert"]
