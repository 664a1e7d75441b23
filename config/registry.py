"""A small generic registry: type objects keyed by the string stored in the database.

Field types (``workspaces.field_types``), trigger types (``automations.trigger_types``) and action
types (``automations.action_types``) each live in one ``Registry``: adding a type is one class,
registered in one place. It lives in ``config`` (which imports no app) so that every app can use it."""

from __future__ import annotations

from collections.abc import Iterator


class Registry[T]:
    """Instances keyed by their ``name``; ``get`` raises ``KeyError`` naming the known ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, item: T) -> T:
        name = item.name  # type: ignore[attr-defined]
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._items[name] = item
        return item

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"Unknown {self.kind} '{name}'. Known: {', '.join(self._items)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def names(self) -> list[str]:
        return list(self._items)

    def choices(self) -> list[tuple[str, str]]:
        return [(name, getattr(item, "label", name)) for name, item in self._items.items()]
