"""The worker's active rules per entity, kept between batches and checked against the rows' versions at
every use.

Matching a batch of events needs the active rules of their entities (each with its entity attached). The
statement that takes the events returns with each one its entity's ``rules_signature``
(``sql._rules_signature``): the row versions of the entity and of its active rules. While that is the
signature the cached rules were loaded under, they are the rows the database holds and the rules query is
skipped; an edit, a rule turned on or off, a new or deleted rule, or a change to the entity gives another
signature, and the entity's rules are loaded again. Events without a signature (the ORM form of the take,
other databases) always load, as before."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from . import sql
from .models import AutomationEvent, AutomationRule
from .trigger_types import trigger_names_for, trigger_types

ENTITIES_KEPT = 1000


class RuleCache:
    def __init__(self, size: int = ENTITIES_KEPT) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[str, list[AutomationRule]]] = OrderedDict()
        self.loads = 0  # rules queries made (the tests read it)

    def rules_by_entity(self, events: Sequence[AutomationEvent]) -> dict[str, list[AutomationRule]]:
        """The active rules of the events' entities, by entity id (as text). Without a signature on every
        event: the rules of the events' trigger types, loaded now and not kept."""
        signatures = {str(e.entity_id): getattr(e, "rules_signature", None) for e in events}
        if None in signatures.values():
            names = sorted({name for e in events for name in trigger_names_for(e.event_type)})
            self.loads += 1
            return _group(sql.load_active_rules(list(signatures), names))
        found: dict[str, list[AutomationRule]] = {}
        for entity_id, signature in signatures.items():
            entry = self._entries.get(entity_id)
            if entry is not None and entry[0] == signature:
                self._entries.move_to_end(entity_id)
                found[entity_id] = entry[1]
        missing = [entity_id for entity_id in signatures if entity_id not in found]
        if missing:
            # Every active rule of the entity (the signature covers them all): the next events of any type
            # find them here. Loaded after the take, so never older than the signature; a newer row only
            # means a reload next time.
            self.loads += 1
            loaded = _group(sql.load_active_rules(missing, [t.name for t in trigger_types]))
            for entity_id in missing:
                found[entity_id] = loaded.get(entity_id, [])
                self._entries[entity_id] = (signatures[entity_id], found[entity_id])
                self._entries.move_to_end(entity_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return found

    def clear(self) -> None:
        self._entries.clear()


def _group(rules: list[AutomationRule]) -> dict[str, list[AutomationRule]]:
    grouped: dict[str, list[AutomationRule]] = {}
    for rule in rules:
        grouped.setdefault(str(rule.entity_id), []).append(rule)
    return grouped


cache = RuleCache()
