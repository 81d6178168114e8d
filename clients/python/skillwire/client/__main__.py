"""``python -m skillwire.client``: the ``skillwire-client`` command."""

from __future__ import annotations

from ._cli import entry_point

entry_point()
