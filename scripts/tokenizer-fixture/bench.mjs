// Throughput of the reference tokenizer (@lenml/tokenizers, Llama-3) on a text file, measured
// like `ssa data bench-tokenizer`: the file is cut into ~1 MB pieces at newlines and every piece
// is encoded in order, after the first 100 KB were encoded once so that V8 has compiled the hot
// code (the C++ side needs no warm-up). Prints one JSON line.
// Usage: run-node.sh bench.mjs FILE
import { readFileSync } from "node:fs";

import { encode, loadLlama3 } from "./reference.mjs";

const bytes = readFileSync(process.argv[2]);
const pieces = [];
for (let start = 0; start < bytes.length;) {
  let end = Math.min(bytes.length, start + (1 << 20));
  if (end < bytes.length) {
    const newline = bytes.indexOf(10, end);
    end = newline < 0 ? bytes.length : newline + 1;
  }
  pieces.push(bytes.subarray(start, end).toString("utf8"));
  start = end;
}
const tokenizer = loadLlama3();
encode(tokenizer, bytes.subarray(0, 100000).toString("utf8"));

const cpuStart = process.cpuUsage();
const wallStart = performance.now();
let tokens = 0;
for (const piece of pieces) tokens += encode(tokenizer, piece).length;
const seconds = (performance.now() - wallStart) / 1000;
const cpu = process.cpuUsage(cpuStart);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
console.log(JSON.stringify({
  implementation: "@lenml/tokenizers", threads: 1, bytes: bytes.length, tokens,
  seconds: +seconds.toFixed(3), cpu_seconds: +cpuSeconds.toFixed(3),
  mb_per_s: +(bytes.length / seconds / 1e6).toFixed(2), mb_per_cpu_s: +(bytes.length / cpuSeconds / 1e6).toFixed(2),
}));
