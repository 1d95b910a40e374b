"""The errors of the asset layer. All are ValueErrors, so the CLI prints them as one line."""
from __future__ import annotations


class UnknownAssetError(ValueError):
    """A name that is not in the asset registry; the message lists the known names."""

    def __init__(self, name: str, known: list[str], what: str = "asset") -> None:
        self.name, self.known = name, known
        super().__init__(f"unknown {what} {name!r}; known assets: {', '.join(known)}")


class AssetTypeError(TypeError, ValueError):
    """An argument of the wrong type (also a ValueError, so the CLI prints it as one line)."""


class ChecksumError(ValueError):
    """A file whose sha256 is not the pinned one. Nothing is installed or loaded."""

    def __init__(self, asset: str, item: str, expected: str, actual: str) -> None:
        self.asset, self.item, self.expected, self.actual = asset, item, expected, actual
        super().__init__(
            f"checksum mismatch for asset {asset!r} ({item}): expected sha256 {expected}, got {actual}; "
            f"refusing to use it. Re-fetch with: workbench assets fetch {asset} --force"
        )


class CorruptAssetError(ValueError):
    """A ready folder whose files no longer match what the fetch recorded (missing, resized or re-hashed)."""

    def __init__(self, asset: str, problems: list[str]) -> None:
        self.asset, self.problems = asset, problems
        shown = "; ".join(problems[:3]) + (f"; ... ({len(problems)} problems)" if len(problems) > 3 else "")
        super().__init__(
            f"cached asset {asset!r} is damaged: {shown}. Re-fetch with: workbench assets fetch {asset} --force"
        )
