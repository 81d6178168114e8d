"""The skills this process knows, from App objects, ``module:attr`` paths and entry points."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.metadata import entry_points

from skillwire.protocol import AppSkills, AppsList, NotFound

from ._app import App, SkillSpec

__all__ = ["Registry", "load_app"]


def load_app(path: str) -> App:
    """Import ``package.module:attr`` and return the App it names."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"app path {path!r} must look like 'package.module:attr'")
    app = getattr(importlib.import_module(module_name), attr)
    if not isinstance(app, App):
        raise TypeError(f"{path} is {type(app).__name__}, not a skillwire App")
    return app


class Registry:
    def __init__(self, apps: Iterable[App], *, max_requests: int) -> None:
        self._apps: dict[str, App] = {}
        self._max_requests = max_requests
        for app in apps:
            if app.name in self._apps and self._apps[app.name] is not app:
                raise ValueError(f"two apps are named {app.name!r}")
            self._apps[app.name] = app

    @classmethod
    def from_sources(
        cls, apps: Iterable[App | str], *, max_requests: int, entry_point_group: str | None
    ) -> Registry:
        loaded = [load_app(a) if isinstance(a, str) else a for a in apps]
        if entry_point_group:
            loaded.extend(ep.load() for ep in entry_points(group=entry_point_group))
        return cls(loaded, max_requests=max_requests)

    def get(self, app: str, skill: str) -> SkillSpec:
        found = self._apps.get(app)
        spec = found.skills.get(skill) if found is not None else None
        if spec is None:
            raise NotFound(f"no skill {app}/{skill}", details={"app": app, "skill": skill})
        return spec

    def has(self, app: str, skill: str) -> bool:
        found = self._apps.get(app)
        return found is not None and skill in found.skills

    @property
    def default_max_requests(self) -> int:
        return self._max_requests

    def max_requests(self, spec: SkillSpec) -> int:
        return spec.max_requests or self._max_requests

    def describe(self) -> AppsList:
        return AppsList(
            items=[
                AppSkills(
                    app=app.name,
                    skills=[s.describe(self._max_requests) for s in app.skills.values()],
                )
                for app in self._apps.values()
            ]
        )

    def specs(self) -> list[SkillSpec]:
        return [s for app in self._apps.values() for s in app.skills.values()]
