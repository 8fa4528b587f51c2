"""Importers of other systems' conversations, one module per source, in one registry.

``threadline import FORMAT SOURCE`` runs ``base.run`` with the importer ``FORMATS`` names;
``store/tenant_dump.py`` is the lossless JSONL of a Threadline tenant (``import jsonl``).
"""

from __future__ import annotations

from collections.abc import Callable

from threadline.importers.base import Importer
from threadline.importers.calls import CallsImporter
from threadline.importers.langchain_sql import LangChainImporter
from threadline.importers.langgraph import LangGraphImporter
from threadline.importers.leadbot import LeadBotImporter
from threadline.importers.openai_jsonl import OpenAIImporter

#: Importer factories by format name (a table name for the table-based ones).
FORMATS: dict[str, Callable[..., Importer]] = {
    "openai": OpenAIImporter,
    "langchain": LangChainImporter,
    "langgraph": LangGraphImporter,
    "leadbot": LeadBotImporter,
    "calls": CallsImporter,
}

__all__ = ["FORMATS", "Importer"]
