from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    """Frozen, strict about types, and tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes):
        return cls.model_validate_json(data)
