"""Before sending again a message whose last attempt may have reached the provider: ask.

An attempt is uncertain when the worker died mid-send (``kill -9``, a lost database) or the
request timed out after it was written. Sending again blindly could deliver the message
twice, so each provider gets the strongest check it allows:

- ``twilio``: looked up. The Messages API takes no idempotency key but lists what it
  created: ``GET .../Messages.json?To=&From=``, the same body, created since the message
  was queued, and not already another delivery's.
- ``postmark``: looked up. Every send carries our id as Metadata, and outbound search
  filters on it: ``GET /messages/outbound?metadata_threadline_message_id=<id>``.
- ``zapier``: sent again. The send is local: the reply waits in the outbox, which hands it
  out once.
- ``meta``: unknown. The Graph API has neither an idempotency key nor a lookup (a status
  webhook carrying our id in ``biz_opaque_callback_data`` still settles it).
- ``sendgrid``: unknown. No lookup without the paid Email Activity add-on.
- ``smtp``: unknown. SMTP has no lookup.
- any other provider: unknown.

Unknown ends the delivery ``failed`` with error code ``outcome_unknown``: a message missing
is visible and can be sent again by hand; a message sent twice cannot be taken back.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from threadline.channels import email_postmark, http, twilio_sms
from threadline.channels.base import InboxConfig, Outbound


class Outcome(enum.Enum):
    #: The provider has the message: record it as sent, do not send.
    FOUND = "found"
    #: The provider does not have it: sending is safe.
    ABSENT = "absent"
    #: No way to tell: do not send.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    external_message_id: str | None = None
    how: str = ""


#: Which of some provider message ids already belong to other deliveries.
Known = Callable[[list[str]], Collection[str]]

#: Looks a message up: (outbound, inbox, client, queued_at, known) -> answer. Raises
#: ``ProviderError`` when the provider cannot be asked now (the check is tried again later).
Check = Callable[[Outbound, InboxConfig, httpx.Client, datetime, Known], Answer]

#: Clock skew allowed between us and the provider when comparing creation times.
SKEW = timedelta(minutes=5)


def _twilio(
    outbound: Outbound,
    inbox: InboxConfig,
    client: httpx.Client,
    queued_at: datetime,
    known: Known,
) -> Answer:
    sid, token = inbox.credential("account_sid"), inbox.credential("auth_token")
    if not sid or not token:
        return Answer(Outcome.UNKNOWN, how="twilio: no credentials to look the message up")
    params = {"To": outbound.to_address, "PageSize": "50"}
    if not inbox.config.get("messaging_service_sid"):
        params["From"] = inbox.address
    url = f"{inbox.api_base(twilio_sms.API_BASE)}/2010-04-01/Accounts/{sid}/Messages.json"
    response = http.call(
        client, "twilio", "GET", url, _twilio_error, params=params, auth=(sid, token)
    )
    candidates: list[str] = []
    for item in http.json_body(response).get("messages") or []:
        if not isinstance(item, dict) or not item.get("sid"):
            continue
        if (item.get("body") or "") != outbound.content:
            continue
        created = _rfc2822(item.get("date_created"))
        if created is not None and created < queued_at - SKEW:
            continue
        candidates.append(str(item["sid"]))
    taken = known(candidates) if candidates else ()
    for sid_ in candidates:
        if sid_ not in taken:
            return Answer(Outcome.FOUND, sid_, "twilio: found by To, From and Body")
    return Answer(Outcome.ABSENT, how="twilio: no such message since it was queued")


def _postmark(
    outbound: Outbound,
    inbox: InboxConfig,
    client: httpx.Client,
    queued_at: datetime,
    known: Known,
) -> Answer:
    token = inbox.credential("server_token")
    if token is None:
        return Answer(Outcome.UNKNOWN, how="postmark: no server_token to look the message up")
    params = {
        "count": "1",
        "offset": "0",
        "recipient": outbound.to_address,
        "metadata_threadline_message_id": outbound.idempotency_key,
    }
    response = http.call(
        client,
        "postmark",
        "GET",
        f"{inbox.api_base(email_postmark.API_BASE)}/messages/outbound",
        _postmark_error,
        params=params,
        headers={"Accept": "application/json", "X-Postmark-Server-Token": token},
    )
    for item in http.json_body(response).get("Messages") or []:
        if isinstance(item, dict) and item.get("MessageID"):
            return Answer(Outcome.FOUND, str(item["MessageID"]), "postmark: found by Metadata")
    return Answer(Outcome.ABSENT, how="postmark: no message with our id")


def _resend(
    outbound: Outbound,
    inbox: InboxConfig,
    client: httpx.Client,
    queued_at: datetime,
    known: Known,
) -> Answer:
    return Answer(Outcome.ABSENT, how="the send is local and repeatable")


CHECKS: dict[str, Check] = {"twilio": _twilio, "postmark": _postmark, "zapier": _resend}

WHY_UNKNOWN: dict[str, str] = {
    "meta": "the WhatsApp Cloud API has no idempotency key and no way to look a message up",
    "sendgrid": "SendGrid has no lookup without the Email Activity add-on",
    "smtp": "SMTP has no way to look a message up",
}


def check(
    provider: str,
    outbound: Outbound,
    inbox: InboxConfig,
    client: httpx.Client,
    queued_at: datetime,
    known: Known = lambda ids: (),
) -> Answer:
    """What the provider knows of ``outbound``; raises ``ProviderError`` when it cannot be
    asked now."""
    found = CHECKS.get(provider)
    if found is None:
        why = WHY_UNKNOWN.get(provider, f"{provider} offers no way to look a message up")
        return Answer(Outcome.UNKNOWN, how=why)
    return found(outbound, inbox, client, queued_at, known)


def _rfc2822(value: Any) -> datetime | None:
    try:
        return parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError):
        return None


def _twilio_error(response: httpx.Response) -> tuple[str | None, str | None]:
    body = http.json_body(response)
    code = body.get("code")
    return (str(code) if code is not None else None, body.get("message"))


def _postmark_error(response: httpx.Response) -> tuple[str | None, str | None]:
    body = http.json_body(response)
    code = body.get("ErrorCode")
    return (str(code) if code is not None else None, body.get("Message"))
