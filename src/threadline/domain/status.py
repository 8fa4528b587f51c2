"""The conversation status state machine.

::

    active ──inbound──▶ needs_reply ──outbound──▶ waiting ──inbound──▶ needs_reply
       │                    │                        │
       └────────────┬───────┴────────────┬───────────┘
                    ▼                    ▼
                escalated ─────────▶ archived ──any message──▶ needs_reply / waiting

Messages move a conversation automatically (``after_message``); people move it explicitly
(``check_transition``). An escalated conversation stays escalated while messages flow, until
a person resolves it. Archived conversations reopen when the contact writes again.
"""

from __future__ import annotations

from threadline.domain.enums import ConversationStatus as S
from threadline.domain.enums import Direction, Role
from threadline.domain.errors import InvalidTransition

ALLOWED: dict[S, frozenset[S]] = {
    S.ACTIVE: frozenset({S.NEEDS_REPLY, S.WAITING, S.ESCALATED, S.ARCHIVED}),
    S.NEEDS_REPLY: frozenset({S.ACTIVE, S.WAITING, S.ESCALATED, S.ARCHIVED}),
    S.WAITING: frozenset({S.ACTIVE, S.NEEDS_REPLY, S.ESCALATED, S.ARCHIVED}),
    S.ESCALATED: frozenset({S.ACTIVE, S.NEEDS_REPLY, S.WAITING, S.ARCHIVED}),
    S.ARCHIVED: frozenset({S.ACTIVE}),
}


def check_transition(current: S, target: S) -> None:
    """Raise ``InvalidTransition`` unless a person may move ``current`` to ``target``.

    Setting the status it already has is a no-op and always allowed.
    """
    if current != target and target not in ALLOWED[current]:
        raise InvalidTransition(
            f"a conversation cannot go from {current.value!r} to {target.value!r}",
            current=current.value,
            target=target.value,
            allowed=sorted(s.value for s in ALLOWED[current]),
        )


def after_message(current: S, direction: Direction, role: Role) -> S:
    """The status a conversation takes when a message is stored.

    Only the dialogue moves it: a user or assistant message. System notes and tool results
    leave the status as it is, and so does escalation, which waits for a person.
    """
    if current == S.ESCALATED or role not in (Role.USER, Role.ASSISTANT):
        return current
    return S.NEEDS_REPLY if direction == Direction.INBOUND else S.WAITING
