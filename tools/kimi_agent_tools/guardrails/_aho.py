"""An Aho-Corasick automaton over normalised characters.

Built once from the word list (time and memory linear in the total length of the words);
matching is one transition per character whatever the number of words, plus one step per
match reported.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

__all__ = ["Automaton"]


class Automaton:
    """Goto/fail automaton; node 0 is the root. `word_at[node]` is the id of the word that
    ends at `node` (or -1), `depth[node]` the length of the prefix the node stands for."""

    def __init__(self, words: Iterable[tuple[str, int]]) -> None:
        self.goto: list[dict[str, int]] = [{}]
        self.depth: list[int] = [0]
        self.word_at: list[int] = [-1]
        for word, word_id in words:
            node = 0
            for char in word:
                nxt = self.goto[node].get(char)
                if nxt is None:
                    nxt = len(self.goto)
                    self.goto[node][char] = nxt
                    self.goto.append({})
                    self.depth.append(self.depth[node] + 1)
                    self.word_at.append(-1)
                node = nxt
            if self.word_at[node] == -1:  # the first word with this normal form wins
                self.word_at[node] = word_id
        self.fail: list[int] = [0] * len(self.goto)
        self.out_link: list[int] = [-1] * len(self.goto)
        """Nearest proper suffix node (via fail links) where a word ends, or -1."""
        self._link()

    def _link(self) -> None:
        queue: deque[int] = deque(self.goto[0].values())
        while queue:
            node = queue.popleft()
            for char, child in self.goto[node].items():
                queue.append(child)
                fallback = self.fail[node]
                while fallback and char not in self.goto[fallback]:
                    fallback = self.fail[fallback]
                target = self.goto[fallback].get(char, 0)
                self.fail[child] = target if target != child else 0
                suffix = self.fail[child]
                has_word = self.word_at[suffix] != -1
                self.out_link[child] = suffix if has_word else self.out_link[suffix]

    def step(self, node: int, char: str) -> int:
        """The node after reading `char` in `node`."""
        while node and char not in self.goto[node]:
            node = self.fail[node]
        return self.goto[node].get(char, 0)

    def words_ending(self, node: int) -> Iterable[int]:
        """The nodes of the words that end at `node` (longest first)."""
        if self.word_at[node] != -1:
            yield node
        link = self.out_link[node]
        while link != -1:
            yield link
            link = self.out_link[link]
