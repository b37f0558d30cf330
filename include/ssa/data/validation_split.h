// Which documents of a source are held out for validation: `held_out` documents spread evenly
// over the source's N documents (storage order), document floor((2i + 1) * N / (2 * held_out))
// for i < held_out. Deterministic and independent of the training seed, so runs with different
// seeds validate on the same documents; evenly spread, so a corpus stored in topical order is
// still sampled across all its topics. The rest are the training documents, numbered in storage
// order. Both mappings are O(1) / O(log N) arithmetic, no per-document memory.
#pragma once

#include <cstdint>

namespace ssa::data {

class ValidationSplit {
 public:
  // held_out < documents unless both are 0 (UsageError otherwise).
  ValidationSplit(uint64_t documents, uint64_t held_out);

  uint64_t documents() const { return documents_; }
  uint64_t validation_documents() const { return held_out_; }
  uint64_t training_documents() const { return documents_ - held_out_; }

  // Document of validation document i (< validation_documents()), ascending in i.
  uint64_t validation_document(uint64_t i) const;
  // Document of training document t (< training_documents()), ascending in t.
  uint64_t training_document(uint64_t t) const;
  // How many validation documents are below `document`.
  uint64_t validation_below(uint64_t document) const;

 private:
  uint64_t documents_;
  uint64_t held_out_;
};

}  // namespace ssa::data
