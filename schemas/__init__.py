"""Versioned records, one module per topic. JSON on the wire; each record names its
`schema_version`, and a consumer refuses versions it does not know."""

from .alert import Alert, CapRef, EventCode, parse_alert
from .cap import (CapAlert, CapArea, CapInfo, CapResource, CapValue, cap_alert_id, cap_update,
                  choose_info, is_cap, parse_cap, to_alert)
from .errors import (AlertanimError, ArtifactMissing, InvalidAlert, InvalidInput, InvalidMessage,
                     ModelsUnavailable, NotAnimated, SendRefused, StoreRefused, StoreUnavailable)
from .failed import FailureRecord
from .instant import InstantAnimation, LibraryEntry
from .ready import AnimationReady, Quality, Rendition, Report
from .stage import ImageRefs, StageMessage, Value

__all__ = ["Alert", "AlertanimError", "AnimationReady", "ArtifactMissing", "InstantAnimation",
           "LibraryEntry", "CapAlert", "CapArea", "CapInfo",
           "CapRef", "CapResource", "CapValue", "EventCode", "FailureRecord", "ImageRefs",
           "InvalidAlert", "InvalidInput", "InvalidMessage", "ModelsUnavailable", "NotAnimated", "Quality",
           "Rendition", "Report", "SendRefused", "StageMessage", "StoreRefused", "StoreUnavailable",
           "Value", "cap_alert_id", "cap_update", "choose_info", "is_cap", "parse_alert",
           "parse_cap", "to_alert"]
