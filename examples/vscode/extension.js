// Starts `specc lsp` (the language server in specc/lsp.py) for .exp files.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("specc").get("command");
  client = new LanguageClient(
    "specc", "specc",
    { command, args },
    { documentSelector: [{ scheme: "file", language: "specc" }] });
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
