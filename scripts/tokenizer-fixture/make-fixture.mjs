// Writes the tokenizer parity fixture under tests/fixtures/tokenizer/:
//   text.txt               all samples joined by "\n" (> 20 KB; the C++ round-trip test reads it)
//   llama3_parity.jsonl    {"name", "text", "ids"} per sample, plus the whole text.txt as one sample,
//                          ids from @lenml/tokenizers with the Llama-3 tokenizer
//   tiny_gpt2.json         a small GPT-2 style tokenizer.json (byte alphabet + a few merges)
//   tiny_gpt2_parity.jsonl the same for the tiny tokenizer
// Deterministic: run again, get the same files. Usage: run-node.sh make-fixture.mjs
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { encode, loadLlama3, loadTokenizer } from "./reference.mjs";
import { handWritten } from "./samples.mjs";

const out = join(dirname(fileURLToPath(import.meta.url)), "../../tests/fixtures/tokenizer");
mkdirSync(out, { recursive: true });

// mulberry32: a tiny seeded generator, so the generated samples never change.
function generator(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Pieces whose juxtaposition stresses the pre-tokenizer: letters of several scripts, combining
// marks, digits, JavaScript whitespace and look-alikes that are not whitespace (U+0085, U+180E,
// U+200B), contractions, punctuation, added-token strings and their fragments, emoji sequences.
const pieces = [
  "a", "b", "Z", "the", " the", "The", "ing", "é", "ß", "ǅ", "中", "文", "語", "ا", "ل", "ह", "ि", "्",
  "ก", "ั", "한", "ω", "Я", "1", "23", "456", "٣", "４", "²", "½", " ", "  ", "   ", "\t", "\n", "\n\n",
  "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u0085", "\ufeff", "\u180e", "\u200b", "\u200d", "'",
  "'s", "'S", "'ll", "'LL", "'Ve", "'d", "'t", "'re", "’", ".", ",", "!", "?", "...", "-", "_", "(",
  ")", "{", "}", "\"", "#", "$", "%", "&", "*", "/", "\\", "<", ">", "|", "<|", "|>", "<|eot_id|>",
  "<|begin_of_text|>", "<|end_of_text|>", "😀", "👍🏽", "👨‍👩‍👧", "🇯🇵", "❤️", "\u0301", "\u0000",
  "\u007f", "\ufffd", "𝔘", "𠜎",
];

function fuzzSamples(count, seed) {
  const random = generator(seed);
  const samples = [];
  for (let k = 0; k < count; ++k) {
    const length = 5 + Math.floor(random() * 40);
    let text = "";
    for (let i = 0; i < length; ++i) text += pieces[Math.floor(random() * pieces.length)];
    samples.push([`fuzz-${String(k).padStart(3, "0")}`, text]);
  }
  return samples;
}

function whitespaceSamples(seed) {
  const random = generator(seed);
  const samples = [
    ["ws-run-1000-spaces", " ".repeat(1000) + "x"],
    ["ws-run-300-newlines", "start" + "\n".repeat(300) + "end"],
    ["ws-run-trailing", "the end" + " ".repeat(257)],
    ["ws-run-tabs", "\t".repeat(64) + "tabbed" + "\t".repeat(17) + "\n"],
  ];
  for (let k = 1; k <= 8; ++k) samples.push([`ws-run-${k}-spaces-newline`, `word${" ".repeat(k)}\nnext${" ".repeat(k)}word`]);
  const blanks = [" ", "\t", "\n", "\r\n", "\u00a0", "\u3000"];
  for (let k = 0; k < 6; ++k) {
    let text = "";
    const length = 50 + Math.floor(random() * 400);
    for (let i = 0; i < length; ++i) text += blanks[Math.floor(random() * blanks.length)];
    samples.push([`ws-run-mix-${k}`, `a${text}b${text.slice(0, 40)}`]);
  }
  return samples;
}

function numberSamples() {
  const samples = [];
  let digits = "";
  for (let length = 1; length <= 40; ++length) digits += `${"9876543210".repeat(4).slice(0, length)} `;
  samples.push(["numbers-lengths", digits]);
  samples.push(["numbers-grouped", Array.from({ length: 30 }, (_, k) => (k * 7919 * 104729).toLocaleString("en-US")).join(" ")]);
  samples.push(["numbers-glued", Array.from({ length: 30 }, (_, k) => `x${k * 37}y${k * k}z`).join("")]);
  return samples;
}

const samples = [...handWritten, ...whitespaceSamples(7), ...numberSamples(), ...fuzzSamples(160, 2024)];
const text = samples.map(([, t]) => t).join("\n");
writeFileSync(join(out, "text.txt"), text);

const llama3 = loadLlama3();
const lines = [...samples, ["text.txt", text]].map(([name, t]) => JSON.stringify({ name, text: t, ids: encode(llama3, t) }));
writeFileSync(join(out, "llama3_parity.jsonl"), lines.join("\n") + "\n");

// --- The tiny GPT-2 style tokenizer ----------------------------------------------------------
// GPT-2's byte alphabet (ids 0..255 in its order), then the hand-chosen merges below, then
// "abc", reachable only as a whole word (for ignore_merges), and <|endoftext|>.
function byteAlphabet() {
  const printable = [];
  for (let b = 0x21; b <= 0x7e; ++b) printable.push(b);
  for (let b = 0xa1; b <= 0xac; ++b) printable.push(b);
  for (let b = 0xae; b <= 0xff; ++b) printable.push(b);
  const map = new Map(printable.map((b) => [b, String.fromCodePoint(b)]));
  let next = 256;
  for (let b = 0; b < 256; ++b) if (!map.has(b)) map.set(b, String.fromCodePoint(next++));
  return [...printable, ...[...Array(256).keys()].filter((b) => !printable.includes(b))].map((b) => map.get(b));
}
const tinyMerges = [
  "Ġ t", "h e", "Ġt he", "i n", "Ġ a", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d",
  "Ġwor ld", "Ġ Ġ", "' s", "1 2",
];
const tinyVocab = {};
byteAlphabet().forEach((symbol, id) => { tinyVocab[symbol] = id; });
for (const merge of tinyMerges) tinyVocab[merge.replace(" ", "")] = Object.keys(tinyVocab).length;
tinyVocab["abc"] = Object.keys(tinyVocab).length;
const endOfText = Object.keys(tinyVocab).length;
tinyVocab["<|endoftext|>"] = endOfText;
const tiny = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: [{ id: endOfText, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
  normalizer: null,
  pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
  decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab: tinyVocab, merges: tinyMerges },
};
const tinyPath = join(out, "tiny_gpt2.json");
writeFileSync(tinyPath, JSON.stringify(tiny, null, 1) + "\n");
const tinyTokenizer = loadTokenizer(tinyPath, { tokenizer_class: "GPT2Tokenizer" });
const tinyTexts = [
  "hello world", "Hello world", "the cat's in the hat", " the the  the", "hello<|endoftext|>world",
  "12 123 1234", "  hello\n\nworld  ", "it's IT'S", "abc abcd", "naïve 中文 😀", "tab\there", "",
];
writeFileSync(join(out, "tiny_gpt2_parity.jsonl"),
  tinyTexts.map((t, k) => JSON.stringify({ name: `tiny-${k}`, text: t, ids: encode(tinyTokenizer, t) })).join("\n") + "\n");

console.log(`wrote ${samples.length} samples, ${Buffer.byteLength(text)} bytes of text, to ${out}`);
