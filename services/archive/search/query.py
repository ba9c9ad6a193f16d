"""The archive's query language, parsed here (never by Tantivy's parser: a user's typo is a
query, not a syntax error), folded like the index, and turned into one Tantivy query.

- words: every word must match, with or without diacritics (``van ban`` = ``văn bản``);
- ``"exact phrase"``: the words next to each other, in order;
- ``word*``: any word starting so (at least 2 characters before the star);
- ``-word`` or ``-"phrase"``: excluded;
- a number/notation as typed: ``24/KH-UBND`` (also ``24/kh-ubnd``, ``KH-UBND`` as words).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import tantivy

from services.archive.errors import ArchiveQueryInvalidError
from services.archive.search.index import code_key
from shared.text import fold

MAX_QUERY_CHARS = 500
MAX_CLAUSES = 24

_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORD = re.compile(r"[^\W_]+")
_NOTATION = re.compile(r"^\d+[a-z]?/[^\s/]+(?:/[^\s/]+)?$", re.IGNORECASE)


def words_of(text: str) -> list[str]:
    """Folded words, split as Tantivy's default tokenizer splits (letters and digits)."""
    return [w for w in _WORD.findall(fold(text)) if len(w) <= 40]


@dataclass
class ParsedQuery:
    words: list[str] = field(default_factory=list)
    phrases: list[list[str]] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    notations: list[str] = field(default_factory=list)
    excluded: list[list[str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.words or self.phrases or self.prefixes or self.notations)

    def highlight_terms(self) -> list[str]:
        """The folded words a snippet marks (prefixes as prefixes)."""
        terms = list(self.words)
        for phrase in self.phrases:
            terms += phrase
        for notation in self.notations:
            terms += words_of(notation)
        return terms


def parse(q: str) -> ParsedQuery:
    """Split a query into words, phrases, prefixes, notations and exclusions; 400 when it is absurd."""
    if len(q) > MAX_QUERY_CHARS:
        raise ArchiveQueryInvalidError(f"The query is {len(q)} characters long; at most {MAX_QUERY_CHARS}")
    if "\x00" in q:
        raise ArchiveQueryInvalidError("The query must not contain NUL characters")
    parsed = ParsedQuery()
    clauses = 0
    for match in _TOKEN.finditer(q):
        negated, phrase, bare = match.group(1), match.group(2), match.group(3)
        if phrase is not None:
            words = words_of(phrase)
            if not words:
                continue
            if negated:
                parsed.excluded.append(words)
            elif len(words) == 1:
                parsed.words.append(words[0])
            else:
                parsed.phrases.append(words)
            clauses += 1
        else:
            clauses += _bare(bare, parsed)
        if clauses > MAX_CLAUSES:
            raise ArchiveQueryInvalidError(f"The query has more than {MAX_CLAUSES} words, phrases or filters")
    return parsed


def _bare(token: str, parsed: ParsedQuery) -> int:
    negated = token.startswith("-") and len(token) > 1
    body = token[1:] if negated else token
    if not negated and _NOTATION.match(body):
        parsed.notations.append(body)
        return 1
    prefix = body.endswith("*")
    words = words_of(body.rstrip("*"))
    if not words:
        return 0
    if negated:
        parsed.excluded.append(words)
    elif prefix and len(words[-1]) >= 2:
        parsed.words += words[:-1]
        parsed.prefixes.append(words[-1])
    elif len(words) > 1:  # "KH-UBND", "e-mail": written as one, a phrase of its parts
        parsed.phrases.append(words)
    else:
        parsed.words.append(words[0])
    return 1


def _text(schema: tantivy.Schema, words: list[str]) -> tantivy.Query:
    if len(words) == 1:
        return tantivy.Query.term_query(schema, "all", words[0])
    return tantivy.Query.phrase_query(schema, "all", list[str | tuple[int, str]](words))


def text_query(schema: tantivy.Schema, parsed: ParsedQuery) -> tantivy.Query:
    """The query of the words: every one must match (the subject's words count double: they are
    indexed twice, :func:`services.archive.search.index.indexed_text`)."""
    Occur = tantivy.Occur
    clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
    for word in parsed.words:
        clauses.append((Occur.Must, _text(schema, [word])))
    for phrase in parsed.phrases:
        clauses.append((Occur.Must, _text(schema, phrase)))
    for prefix in parsed.prefixes:
        clauses.append((Occur.Must, tantivy.Query.regex_query(schema, "all", re.escape(prefix) + ".*")))
    for notation in parsed.notations:
        exact = tantivy.Query.term_query(schema, "code", code_key(notation))
        words = words_of(notation)
        either = [(Occur.Should, tantivy.Query.boost_query(exact, 5.0))]
        if words:
            either.append((Occur.Should, _text(schema, words)))
        clauses.append((Occur.Must, tantivy.Query.boolean_query(either)))
    for words in parsed.excluded:
        clauses.append((Occur.MustNot, _text(schema, words)))
    if parsed.empty:
        clauses.append((Occur.Must, tantivy.Query.all_query()))
    return tantivy.Query.boolean_query(clauses)
