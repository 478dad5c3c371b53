"""Vocabularies: numbers as single tokens, bytes, and Hugging Face tokenizers from local files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from specc.api import BuildContext, IntRange, component
from specc.diagnostics import SpeccError

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
SYMBOLS = ("+", "-", "*", "/", "=", ",", "(", ")", "x", "y", "lcm", "seq")


class Vocab(Protocol):
    """Turns task text into token ids and back."""

    size: int
    pad: int
    bos: int
    eos: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class NumbersVocab:
    """Numbers lo..hi as single tokens, 12 symbols and 4 specials (16 + the range).

    Words are split on spaces; a number outside the range is spelled digit by digit (digits are
    always in the range), so every integer has an encoding.

    Example:
        >>> v = NumbersVocab(0, 199)
        >>> v.decode(v.encode("12 + 7 = 19"))
        '12 + 7 = 19'
    """

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi
        self.words = [*SPECIALS, *SYMBOLS]
        self.offset = len(self.words)
        self.size = self.offset + hi - lo + 1
        self.index = {w: i for i, w in enumerate(self.words)}
        self.pad, self.bos, self.eos, self.unk = 0, 1, 2, 3

    def _number(self, n: int) -> list[int]:
        if self.lo <= n <= self.hi:
            return [self.offset + n - self.lo]
        digits = [int(c) for c in str(abs(n))]
        if not all(self.lo <= d <= self.hi for d in digits):
            return [self.unk]
        return ([self.index["-"]] if n < 0 else []) + [self.offset + d - self.lo for d in digits]

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for word in text.replace(",", " , ").replace("(", " ( ").replace(")", " ) ").split():
            if word in self.index:
                out.append(self.index[word])
            elif word.lstrip("-").isdigit():
                out.extend(self._number(int(word)))
            else:
                out.append(self.unk)
        return out

    def decode(self, ids: list[int]) -> str:
        words = []
        for i in ids:
            words.append(self.words[i] if i < self.offset else str(i - self.offset + self.lo))
        return " ".join(words)

    def hf_tokenizer(self) -> Any:
        """The same vocabulary as a ``transformers`` fast tokenizer (HF ``tokenizers``' word
        level model, split on spaces and around ``, ( )``): what a saved model carries, so
        ``AutoTokenizer.from_pretrained`` loads it. Equal ids for every text whose numbers are
        in the range; a number outside it is one ``<unk>`` there (specc spells its digits)."""
        from tokenizers import Regex, Tokenizer, models, pre_tokenizers

        words = [*self.words, *(str(n) for n in range(self.lo, self.hi + 1))]
        tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
        # a minus before a number is its own token when the range has no negative numbers
        split = Regex("[,()]|-(?=[0-9])") if self.lo >= 0 else Regex("[,()]")
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(split, behavior="isolated"), pre_tokenizers.WhitespaceSplit()])
        return _fast(tok)


class BytesVocab:
    """UTF-8 bytes as tokens 0..255 and 4 specials after them."""

    def __init__(self) -> None:
        self.size = 260
        self.pad, self.bos, self.eos, self.unk = 256, 257, 258, 259

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def hf_tokenizer(self) -> Any:
        """The same vocabulary as a ``transformers`` fast tokenizer: a BPE model with no merges
        and byte fallback, so every byte b is the token ``<0xBB>`` with id b, as here."""
        from tokenizers import Tokenizer, decoders, models

        vocab = {f"<0x{b:02X}>": b for b in range(256)}
        vocab.update({w: 256 + i for i, w in enumerate(SPECIALS)})
        tok = Tokenizer(models.BPE(vocab, [], unk_token="<unk>", byte_fallback=True))
        tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
        return _fast(tok)


def _fast(tok: Any) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>",
                                   eos_token="<eos>", unk_token="<unk>")


class HFTokenizerVocab:
    """A Hugging Face tokenizer read from a local directory (never from the hub)."""

    def __init__(self, path: str, hub: bool = False) -> None:
        from specc.components.models import offline

        offline()  # Note [Offline]
        from transformers import AutoTokenizer

        if not hub and not Path(path).is_dir():
            msg = f'tokenizer directory "{path}" does not exist'
            raise SpeccError(msg)
        try:
            self.tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            where = "in the local Hugging Face cache" if hub else f"in {path}"
            msg = (f'no tokenizer for "{path}" {where}; specc never downloads at run time: '
                   f"download it beforehand (hf download {path}) or give vocab = tokenizer(path)")
            raise SpeccError(msg) from exc
        self.size = len(self.tok)
        eos = self.tok.eos_token_id
        self.eos = eos if eos is not None else 0
        self.bos = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.eos
        self.pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.eos

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return str(self.tok.decode(ids))

    def hf_tokenizer(self) -> Any:
        return self.tok


@component("vocab")
def numbers(*, values: IntRange = "0..999", ctx: BuildContext) -> Any:
    """Numbers as single tokens plus operators and specials.

    Args:
        values: the numbers that get a token
    """
    lo, hi = values["range"] if isinstance(values, dict) else values
    return NumbersVocab(int(lo), int(hi))


@component("vocab", name="bytes")
def bytes_vocab(*, ctx: BuildContext) -> Any:
    """The 256 byte values plus specials."""
    return BytesVocab()


@component("vocab")
def tokenizer(*, path: str, ctx: BuildContext) -> Any:
    """A Hugging Face tokenizer from a local directory.

    Args:
        path: directory holding tokenizer.json or the like
    """
    local = Path(path)
    local = local if local.is_absolute() else ctx.base / local
    if local.is_dir() or path.startswith((".", "/")) or path.count("/") > 1:
        return HFTokenizerVocab(str(local))
    return HFTokenizerVocab(path, hub=True)  # a hub id, from the local cache only


def build_vocab(cfg: dict[str, Any], base_dir: Path | None) -> Vocab:
    """The vocabulary a resolved ``vocab`` configuration names (its builder, called)."""
    from specc.components import build, builtin

    if cfg.get("component") == "hub_tokenizer":  # written by runs before tokenizer(path) took ids
        cfg = {"component": "tokenizer", "path": cfg["id"]}
    if builtin(str(cfg.get("component"))) is None:
        msg = f"unknown vocabulary {cfg.get('component')!r}"
        raise SpeccError(msg)
    return build(cfg, BuildContext(base=base_dir or Path(".")))  # type: ignore[no-any-return]
