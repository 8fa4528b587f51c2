"""What a person types into a search box, made safe for both full-text engines.

The syntax is the one web search engines taught everyone, and PostgreSQL's
``websearch_to_tsquery`` reads: words (all must match), ``"a phrase"``, ``OR`` between two
alternatives, ``-word`` to exclude. Anything else is text: FTS5's own operators (``NEAR``,
``*``, ``^``, column filters, parentheses) are never passed through, so no input is a syntax
error. Terms are runs of letters and digits, as both engines' tokenizers split them.

``Parsed.fts5`` is the FTS5 expression (every term quoted), ``Parsed.websearch`` the same
query for ``websearch_to_tsquery``; ``highlight`` marks the terms in a snippet.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

_ITEM = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_TERM = re.compile(r"[^\W_]+")
#: Terms beyond these are ignored: a query is a handful of words, not a document.
MAX_TERMS = 32


@dataclass
class Parsed:
    #: Groups that must all match; each group is alternatives (OR) of phrases (term lists).
    groups: list[list[list[str]]] = field(default_factory=list)
    excluded: list[list[str]] = field(default_factory=list)

    @property
    def terms(self) -> list[str]:
        """Every term that must or may match (for highlighting), lowercased."""
        return [t for group in self.groups for phrase in group for t in phrase]

    @property
    def empty(self) -> bool:
        return not self.groups

    @property
    def fts5(self) -> str:
        def phrase(terms: list[str]) -> str:
            return '"' + " ".join(terms) + '"'  # terms hold no quotes: letters and digits

        expr = " AND ".join(
            "(" + " OR ".join(phrase(p) for p in group) + ")" for group in self.groups
        )
        for terms in self.excluded:
            expr += f" NOT {phrase(terms)}"
        return expr

    @property
    def websearch(self) -> str:
        parts = [" or ".join(f'"{" ".join(p)}"' for p in group) for group in self.groups]
        parts += [f'-"{" ".join(p)}"' for p in self.excluded]
        return " ".join(parts)

    @property
    def any_term(self) -> Parsed:
        """The same terms, any of which may match (recall without embeddings)."""
        phrases = [[t] for t in dict.fromkeys(self.terms)]
        return Parsed(groups=[phrases] if phrases else [])


def parse(text: str) -> Parsed:
    parsed = Parsed()
    count = 0
    join_next = False
    for match in _ITEM.finditer(text):
        negated, quoted, bare = match.group(1), match.group(2), match.group(3)
        if bare == "OR":
            join_next = bool(parsed.groups)
            continue
        if bare is not None and bare.startswith("-") and len(bare) > 1:
            negated, bare = "-", bare[1:]
        terms = [t.lower() for t in _TERM.findall(quoted if quoted is not None else bare or "")]
        terms = terms[: max(0, MAX_TERMS - count)]
        if not terms:
            join_next = False
            continue
        count += len(terms)
        if negated:
            parsed.excluded.append(terms)
        elif join_next:
            parsed.groups[-1].append(terms)
        else:
            parsed.groups.append([terms])
        join_next = False
    return parsed


#: Characters of context shown before the first match, and the snippet's length.
BEFORE = 60
LENGTH = 240


def highlight(content: str | None, terms: list[str]) -> str:
    """A snippet of ``content`` around the first matched term, HTML-escaped, with every
    matched term in ``<mark>``; the start of the content when no term matches."""
    if not content:
        return ""
    words = sorted(set(terms), key=len, reverse=True)
    pattern = (
        re.compile(r"(?<![^\W_])(?:" + "|".join(map(re.escape, words)) + r")(?![^\W_])", re.I)
        if words
        else None
    )
    first = pattern.search(content) if pattern else None
    start = 0
    if first is not None and first.start() > BEFORE:
        start = content.rfind(" ", 0, first.start() - BEFORE) + 1 or first.start() - BEFORE
    end = min(len(content), start + LENGTH)
    if end < len(content):
        cut = content.rfind(" ", start + LENGTH // 2, end)
        end = cut if cut > 0 else end
    window = content[start:end]
    out = ["…"] if start > 0 else []
    pos = 0
    for match in pattern.finditer(window) if pattern else ():
        out.append(html.escape(window[pos : match.start()]))
        out.append(f"<mark>{html.escape(match.group())}</mark>")
        pos = match.end()
    out.append(html.escape(window[pos:]))
    if end < len(content):
        out.append("…")
    return "".join(out)
