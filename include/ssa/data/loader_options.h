// What the data loader needs, independent of the run configuration (the trainer maps its config
// onto this struct).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "ssa/data/row_packing.h"
#include "ssa/data/shard_format.h"

namespace ssa::data {

struct LoaderOptions {
  // Data sources: shard folders (or single token files), all in `format`.
  std::vector<std::filesystem::path> paths;
  // Share of rows per source, one per path (normalised); empty = equal shares.
  std::vector<double> weights;
  ShardFormat format = ShardFormat::datatrove;
  // Bytes per token the files must have; 0 = whatever they say (datatrove metadata, llm.c
  // header, raw_u16/raw_u32 name).
  uint32_t token_width = 0;

  Packing packing = Packing::paper;
  uint64_t seq_len = 8192;
  // Shuffles each source's training documents, differently in every epoch.
  uint64_t seed = 0;
  bool shuffle = true;

  // Held-out validation documents of EACH source: a fraction of its documents (rounded, at least
  // one when the fraction is positive) or a count. At most one of the two may be set.
  double validation_fraction = 0;
  uint64_t validation_documents = 0;

  // Micro-batches the Prefetcher keeps ready.
  std::size_t prefetch_depth = 4;

  // End-of-document token: pieces and padding (required).
  std::optional<uint32_t> eos_id;
  // llm.c and raw streams have no document index: documents are cut at this token (default
  // eos_id). An EOS ends a document; any other separator (llm.c's Llama-3 files put BOS 128000
  // before every document) starts one.
  std::optional<uint32_t> document_separator_id;
  // When set, every token read is checked to be below it (FormatError naming shard and offset).
  std::optional<uint64_t> vocab_size;
};

}  // namespace ssa::data
