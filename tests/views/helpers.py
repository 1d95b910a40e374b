"""Helpers for the view tests: deliver comm messages to a widget exactly as its front-end would."""
from __future__ import annotations

import re

URL = re.compile(r"https?://", re.IGNORECASE)


def frontend_update(widget, **state) -> None:
    """Deliver a state update exactly as the front-end's `model.save_changes()` does (comm message)."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state, "buffer_paths": []}}, "buffers": []})


def frontend_custom(widget, content) -> None:
    """Deliver a custom message exactly as the front-end's `model.send(content)` does."""
    widget._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})
