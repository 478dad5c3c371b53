"""`specc lsp`, driven over stdio by pygls' language client: initialize, open a spec with a
typo and receive the located diagnostic, hover a component and a parameter, complete a
parameter name, go to a declaration in an imported file, format."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pygls")

COMMON = """let lr = 3e-3
model tiny = gpt2(layers = 1, heads = 2, width = 32, context = 16, vocab = numbers(0..99))
"""
SPEC = """import "common.exp"

experiment e {
  model m = gtp2(layers = 1, vocab = numbers(0..99))
  data task = arithmetic(max = 20, train = 100, test = 20)
  train { optimizer = adamw(lr = lr); batch = 8; steps = 2 }
  metrics = [loss, exact_match(task.test)]
}
"""


def test_the_language_server_over_stdio(tmp_path: Path) -> None:
    from lsprotocol import types as L
    from pygls.lsp.client import LanguageClient

    (tmp_path / "common.exp").write_text(COMMON)
    spec = tmp_path / "e.exp"
    spec.write_text(SPEC)
    uri = spec.resolve().as_uri()

    async def session() -> dict[str, object]:
        client = LanguageClient("test", "1")
        got: dict[str, object] = {}
        arrived = asyncio.Event()

        @client.feature(L.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def diagnostics(params: L.PublishDiagnosticsParams) -> None:
            if params.uri == uri:
                got["diagnostics"] = params.diagnostics
                got["at"] = time.perf_counter()
                arrived.set()

        await client.start_io(sys.executable, "-m", "specc.cli.main", "lsp")
        await client.initialize_async(L.InitializeParams(
            capabilities=L.ClientCapabilities(), root_uri=tmp_path.as_uri()))
        client.initialized(L.InitializedParams())
        # a first document warms the server (the catalogue is read once per process)
        warm = tmp_path / "warm.exp"
        warm.write_text("experiment w { model m = gpt2(vocab = bytes) }\n")
        client.text_document_did_open(L.DidOpenTextDocumentParams(text_document=L.TextDocumentItem(
            uri=warm.resolve().as_uri(), language_id="specc", version=1, text=warm.read_text())))
        await client.text_document_hover_async(L.HoverParams(
            text_document=L.TextDocumentIdentifier(uri=warm.resolve().as_uri()),
            position=L.Position(line=0, character=26)))
        sent = time.perf_counter()
        client.text_document_did_open(L.DidOpenTextDocumentParams(text_document=L.TextDocumentItem(
            uri=uri, language_id="specc", version=1, text=SPEC)))
        await asyncio.wait_for(arrived.wait(), 10)
        got["latency"] = float(got["at"]) - sent  # type: ignore[arg-type]
        doc = L.TextDocumentIdentifier(uri=uri)
        got["hover_component"] = await client.text_document_hover_async(L.HoverParams(
            text_document=doc, position=L.Position(line=4, character=15)))  # arithmetic
        got["hover_param"] = await client.text_document_hover_async(L.HoverParams(
            text_document=doc, position=L.Position(line=4, character=25)))  # max
        got["completion"] = await client.text_document_completion_async(L.CompletionParams(
            text_document=doc, position=L.Position(line=4, character=58)))  # after test = 20,
        got["definition"] = await client.text_document_definition_async(L.DefinitionParams(
            text_document=doc, position=L.Position(line=5, character=35)))  # lr, in common.exp
        got["local"] = await client.text_document_definition_async(L.DefinitionParams(
            text_document=doc, position=L.Position(line=6, character=31)))  # task
        got["format"] = await client.text_document_formatting_async(L.DocumentFormattingParams(
            text_document=doc, options=L.FormattingOptions(tab_size=2, insert_spaces=True)))
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
        return got

    got = asyncio.run(session())
    [d] = got["diagnostics"]  # type: ignore[misc]
    assert d.message.startswith('unknown model "gtp2"') and 'did you mean "gpt2"' in d.message
    assert (d.range.start.line, d.range.start.character) == (3, 12) and d.code == "unknown-name"
    print(f"diagnostics {got['latency'] * 1000:.0f} ms after didOpen")
    assert got["latency"] < 0.2
    assert "**arithmetic** (data)" in got["hover_component"].contents.value  # type: ignore[union-attr]
    assert "`max`" in got["hover_param"].contents.value  # type: ignore[union-attr]
    labels = [i.label for i in got["completion"].items]  # type: ignore[union-attr]
    assert "seed" in labels and "max" not in labels and "train" not in labels
    definition = got["definition"]
    assert definition.uri == (tmp_path / "common.exp").resolve().as_uri()  # type: ignore[union-attr]
    assert definition.range.start.line == 0  # type: ignore[union-attr]
    assert got["local"].range.start.line == 4  # type: ignore[union-attr]
    [edit] = got["format"]  # type: ignore[misc]
    assert "train {" in edit.new_text and edit.new_text != SPEC


def test_the_editor_extension_knows_the_language() -> None:
    """The VS Code folder's TextMate grammar highlights every keyword of the grammar, every
    declaration kind and block; its manifest points at files that exist."""
    import json
    import re

    from specc.catalogue import schema

    root = Path(__file__).resolve().parents[1]
    folder = root / "examples" / "vscode"
    manifest = json.loads((folder / "package.json").read_text())
    assert (folder / manifest["main"]).is_file()
    [grammar_ref] = manifest["contributes"]["grammars"]
    [language] = manifest["contributes"]["languages"]
    assert language["extensions"] == [".exp"] and (folder / language["configuration"]).is_file()
    tm = json.loads((folder / grammar_ref["path"]).read_text())
    text = json.dumps(tm["repository"])
    keywords = set(re.findall(r'"([a-z]+)"', (root / "specc" / "lang" / "grammar.lark")
                              .read_text()))
    missing = sorted(k for k in keywords | set(schema.DECL_KINDS) | {"train", "sweep",
                                                                        "search", "analysis"}
                     if not re.search(rf"[(|]{k}[|)]", text))
    assert not missing, missing
    keyword = re.compile(tm["repository"]["keyword"]["match"])
    assert keyword.search("  checkpoints every 100 steps {")
