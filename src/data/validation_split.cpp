#include "ssa/data/validation_split.h"

#include <fmt/format.h>

#include <algorithm>

#include "ssa/util/error.h"

namespace ssa::data {

using u128 = unsigned __int128;

ValidationSplit::ValidationSplit(uint64_t documents, uint64_t held_out) : documents_(documents), held_out_(held_out) {
  if (held_out > 0 && held_out >= documents) {
    throw UsageError(fmt::format("cannot hold out {} validation documents of {} (some must remain for training)",
                                 held_out, documents));
  }
}

uint64_t ValidationSplit::validation_document(uint64_t i) const {
  return static_cast<uint64_t>((u128(2 * u128(i) + 1) * documents_) / (u128(2) * held_out_));
}

uint64_t ValidationSplit::validation_below(uint64_t document) const {
  // floor(x_i) < d  <=>  x_i < d  <=>  (2i + 1) N < 2 V d  <=>  i <= (2 V d - N - 1) / (2 N).
  const u128 twice_vd = u128(2) * held_out_ * document;
  if (held_out_ == 0 || twice_vd <= documents_) return 0;
  const u128 count = (twice_vd - documents_ - 1) / (u128(2) * documents_) + 1;
  return count > held_out_ ? held_out_ : static_cast<uint64_t>(count);
}

uint64_t ValidationSplit::training_document(uint64_t t) const {
  if (held_out_ == 0) return t;
  // The smallest d whose prefix [0, d] holds t + 1 training documents; it is a training document.
  // Held-out documents are evenly spaced, so d is within a few of t * N / (N - V): search that
  // window first (the packing pass calls this once per document), the whole range only if the
  // window does not bracket it.
  const auto holds = [&](uint64_t d) { return d + 1 - validation_below(d + 1) >= t + 1; };
  const uint64_t estimate = static_cast<uint64_t>((u128(t) * documents_) / (documents_ - held_out_));
  uint64_t low = estimate > t + 2 ? estimate - 2 : t;
  uint64_t high = std::min(documents_ - 1, estimate + 2);
  if (!(holds(high) && (low == t || !holds(low - 1)))) {
    low = t;
    high = documents_ - 1;
  }
  while (low < high) {
    const uint64_t middle = low + (high - low) / 2;
    if (middle + 1 - validation_below(middle + 1) >= t + 1) {
      high = middle;
    } else {
      low = middle + 1;
    }
  }
  return low;
}

}  // namespace ssa::data
