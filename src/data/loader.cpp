#include "ssa/data/loader.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <optional>

#include "ssa/data/index_permutation.h"
#include "ssa/data/mixture_schedule.h"
#include "ssa/data/stable_hash.h"
#include "ssa/data/validation_split.h"
#include "ssa/util/error.h"

namespace ssa::data {

namespace {

class Source;

// Epoch `epoch` of a source: its training documents, shuffled by (seed, source, epoch).
class TrainingEpoch final : public DocumentSequence {
 public:
  TrainingEpoch(const Source& source, uint64_t epoch);
  uint64_t size() const override;
  uint64_t length(uint64_t position) const override;
  void copy(uint64_t position, uint64_t offset, uint64_t count, int32_t* out) const override;

 private:
  uint64_t document(uint64_t position) const;
  const Source& source_;
  std::optional<IndexPermutation> order_;
};

// A source's validation documents in storage order.
class ValidationDocuments final : public DocumentSequence {
 public:
  explicit ValidationDocuments(const Source& source) : source_(source) {}
  uint64_t size() const override;
  uint64_t length(uint64_t position) const override;
  void copy(uint64_t position, uint64_t offset, uint64_t count, int32_t* out) const override;

 private:
  const Source& source_;
};

struct Epoch {
  uint64_t first_row;  // among the source's rows
  std::unique_ptr<TrainingEpoch> documents;
  RowPlan plan;
  uint64_t end_row() const { return first_row + plan.rows(); }
};

uint64_t held_out_documents(const LoaderOptions& options, uint64_t documents) {
  if (options.validation_documents > 0) return options.validation_documents;
  if (options.validation_fraction <= 0) return 0;
  const auto count = static_cast<uint64_t>(std::llround(options.validation_fraction * static_cast<double>(documents)));
  return std::max<uint64_t>(count, 1);
}

DocumentSeparator separator_for(const LoaderOptions& options) {
  const uint32_t token = options.document_separator_id.value_or(*options.eos_id);
  return DocumentSeparator{token, token == *options.eos_id};
}

class Source {
 public:
  Source(const LoaderOptions& options, std::size_t index, const RowPacker& packer)
      : index_(index),
        options_(options),
        packer_(packer),
        set_(ShardSet::open(options.paths[index],
                            ShardSetOptions{options.format, options.token_width, separator_for(options)})),
        split_(set_.document_count(), held_out_documents(options, set_.document_count())),
        token_limit_(options.vocab_size.value_or(uint64_t{1} << 31)),
        validation_(*this),
        validation_plan_(RowPlan::build(packer, validation_)) {
    // Every epoch packs the same documents, so one without rows means all are: without this check
    // epoch_of_row would plan epochs for ever.
    if (epoch(0)->plan.rows() == 0) {
      throw UsageError(fmt::format("data source {} has no training rows: {} tokens in {} training documents ({} packing, "
                                   "seq_len {})",
                                   set_.path().string(), set_.token_count(), split_.training_documents(),
                                   to_string(packer.packing()), packer.seq_len()));
    }
  }

  const ShardSet& set() const { return set_; }
  const ValidationSplit& split() const { return split_; }
  std::size_t index() const { return index_; }
  const LoaderOptions& options() const { return options_; }
  const ValidationDocuments& validation() const { return validation_; }
  const RowPlan& validation_plan() const { return validation_plan_; }

  // The epoch holding the source's row `row`, planning epochs up to it.
  std::shared_ptr<const Epoch> epoch_of_row(uint64_t row) const {
    std::lock_guard lock(mutex_);
    while (epochs_.empty() || epochs_.back()->end_row() <= row) plan_next_epoch();
    const auto after = std::upper_bound(epochs_.begin(), epochs_.end(), row,
                                        [](uint64_t r, const auto& epoch) { return r < epoch->first_row; });
    return *(after - 1);
  }

  std::shared_ptr<const Epoch> epoch(uint64_t number) const {
    std::lock_guard lock(mutex_);
    while (epochs_.size() <= number) plan_next_epoch();
    return epochs_[number];
  }

  void copy(uint64_t document, uint64_t offset, uint64_t count, int32_t* out) const {
    const auto located = set_.document(document);
    auto* ids = reinterpret_cast<uint32_t*>(out);  // same size; signed/unsigned may alias
    located.shard->copy_tokens(located.begin + offset, count, ids);
    for (uint64_t k = 0; k < count; ++k) {
      if (ids[k] >= token_limit_) {
        throw FormatError(fmt::format("{}: token {} at offset {} is not below the {} {}", located.shard->path().string(),
                                      ids[k], located.begin + offset + k,
                                      options_.vocab_size ? "vocabulary size" : "int32 limit", token_limit_));
      }
    }
  }

 private:
  void plan_next_epoch() const {
    auto epoch = std::make_shared<Epoch>();
    epoch->first_row = epochs_.empty() ? 0 : epochs_.back()->end_row();
    epoch->documents = std::make_unique<TrainingEpoch>(*this, epochs_.size());
    epoch->plan = RowPlan::build(packer_, *epoch->documents);
    epochs_.push_back(std::move(epoch));
  }

  std::size_t index_;
  const LoaderOptions& options_;
  const RowPacker& packer_;
  ShardSet set_;
  ValidationSplit split_;
  uint64_t token_limit_;
  ValidationDocuments validation_;
  RowPlan validation_plan_;
  mutable std::mutex mutex_;
  mutable std::vector<std::shared_ptr<const Epoch>> epochs_;
};

TrainingEpoch::TrainingEpoch(const Source& source, uint64_t epoch) : source_(source) {
  if (source.options().shuffle) {
    const uint64_t key = combine_keys(combine_keys(source.options().seed, source.index()), epoch);
    order_.emplace(source.split().training_documents(), key);
  }
}
uint64_t TrainingEpoch::size() const { return source_.split().training_documents(); }
uint64_t TrainingEpoch::document(uint64_t position) const {
  return source_.split().training_document(order_ ? (*order_)(position) : position);
}
uint64_t TrainingEpoch::length(uint64_t position) const { return source_.set().document_length(document(position)); }
void TrainingEpoch::copy(uint64_t position, uint64_t offset, uint64_t count, int32_t* out) const {
  source_.copy(document(position), offset, count, out);
}

uint64_t ValidationDocuments::size() const { return source_.split().validation_documents(); }
uint64_t ValidationDocuments::length(uint64_t position) const {
  return source_.set().document_length(source_.split().validation_document(position));
}
void ValidationDocuments::copy(uint64_t position, uint64_t offset, uint64_t count, int32_t* out) const {
  source_.copy(source_.split().validation_document(position), offset, count, out);
}

LoaderOptions checked(LoaderOptions options) {
  if (options.paths.empty()) throw UsageError("the data loader needs at least one data path");
  if (!options.eos_id) throw UsageError("the data loader needs the EOS token id");
  if (options.weights.empty()) options.weights.assign(options.paths.size(), 1.0);
  if (options.weights.size() != options.paths.size()) {
    throw UsageError(fmt::format("{} data weights for {} data paths", options.weights.size(), options.paths.size()));
  }
  if (options.token_width != 0 && options.token_width != 2 && options.token_width != 4) {
    throw UsageError(fmt::format("token width {} (expected 0, 2 or 4 bytes)", options.token_width));
  }
  if (!(options.validation_fraction >= 0 && options.validation_fraction < 1)) {
    throw UsageError(fmt::format("validation fraction {} is not in [0, 1)", options.validation_fraction));
  }
  if (options.validation_fraction > 0 && options.validation_documents > 0) {
    throw UsageError("set either a validation fraction or a validation document count, not both");
  }
  if (options.vocab_size && *options.eos_id >= *options.vocab_size) {
    throw UsageError(fmt::format("EOS id {} is not below the vocabulary size {}", *options.eos_id, *options.vocab_size));
  }
  return options;
}

Row padding_row(uint64_t seq_len, int32_t eos_id) {
  Row row;
  row.tokens.assign(seq_len + 1, eos_id);
  row.position_ids.resize(seq_len);
  for (uint64_t k = 0; k < seq_len; ++k) row.position_ids[k] = static_cast<int32_t>(k);
  row.loss_mask.assign(seq_len, 0);
  row.cu_seqlens = {0, static_cast<int32_t>(seq_len)};
  return row;
}

}  // namespace

struct Loader::Impl {
  explicit Impl(LoaderOptions loader_options)
      : options(checked(std::move(loader_options))),
        packer(options.packing, options.seq_len, static_cast<int32_t>(*options.eos_id)),
        mixture(options.weights) {
    Fnv1a64 hash;
    for (std::size_t k = 0; k < options.paths.size(); ++k) {
      sources.push_back(std::make_unique<Source>(options, k, packer));
      hash.add_field(sources.back()->set().fingerprint());
    }
    fingerprint = fmt::format("{:016x}", hash.value());
    plan_validation_order();
  }

  // Validation rows of all sources, interleaved by the weights' deficit rule among the sources
  // that still have rows.
  void plan_validation_order() {
    std::vector<uint64_t> taken(sources.size(), 0);
    uint64_t total = 0;
    for (const auto& source : sources) total += source->validation_plan().rows();
    for (uint64_t n = 0; n < total; ++n) {
      std::optional<std::size_t> best;
      double best_deficit = 0;
      for (std::size_t k = 0; k < sources.size(); ++k) {
        if (taken[k] == sources[k]->validation_plan().rows()) continue;
        const double deficit = mixture.weights()[k] * static_cast<double>(n + 1) - static_cast<double>(taken[k]);
        if (!best || deficit > best_deficit) {
          best = k;
          best_deficit = deficit;
        }
      }
      validation_order.push_back(SourceRow{*best, taken[*best]++});
    }
  }

  // Builds rows listed in `located` (a source's consecutive rows reuse the packing cursor).
  template <typename CursorOf>
  MicroBatch assemble(uint64_t first_row, const std::vector<SourceRow>& located, CursorOf&& cursor_of) const {
    MicroBatch batch;
    batch.first_row = first_row;
    batch.seq_len = options.seq_len;
    const std::size_t cells = located.size() * options.seq_len;
    batch.input_ids.reserve(cells);
    batch.target_ids.reserve(cells);
    batch.position_ids.reserve(cells);
    batch.loss_mask.reserve(cells);
    Row row;
    for (const SourceRow& where : located) {
      cursor_of(where, row);
      append_row(batch, row);
    }
    return batch;
  }

  MicroBatch training_rows(uint64_t first_row, uint64_t count) const {
    struct Run {
      std::shared_ptr<const Epoch> epoch;
      uint64_t next_row = 0;
      PackCursor cursor;
    };
    std::vector<Run> runs(sources.size());
    return assemble(first_row, mixture.locate(first_row, count), [&](const SourceRow& where, Row& row) {
      Run& run = runs[where.source];
      if (!run.epoch || run.next_row != where.row || where.row >= run.epoch->end_row()) {
        run.epoch = sources[where.source]->epoch_of_row(where.row);
        run.cursor = run.epoch->plan.cursor(packer, *run.epoch->documents, where.row - run.epoch->first_row);
      }
      packer.build_row(*run.epoch->documents, run.cursor, row);
      run.next_row = where.row + 1;
    });
  }

  MicroBatch validation_rows(uint64_t first_row, uint64_t count) const {
    std::vector<SourceRow> located;
    std::vector<std::optional<uint64_t>> next_row(sources.size());
    std::vector<PackCursor> cursors(sources.size());
    for (uint64_t n = first_row; n < first_row + count; ++n) {
      // Past the end: source index sources.size() marks a padding row.
      located.push_back(n < validation_order.size() ? validation_order[n] : SourceRow{sources.size(), 0});
    }
    const Row padding = padding_row(options.seq_len, static_cast<int32_t>(*options.eos_id));
    return assemble(first_row, located, [&](const SourceRow& where, Row& row) {
      if (where.source == sources.size()) {
        row = padding;
        return;
      }
      const Source& source = *sources[where.source];
      if (next_row[where.source] != where.row) {
        cursors[where.source] = source.validation_plan().cursor(packer, source.validation(), where.row);
      }
      packer.build_row(source.validation(), cursors[where.source], row);
      next_row[where.source] = where.row + 1;
    });
  }

  LoaderOptions options;
  RowPacker packer;
  MixtureSchedule mixture;
  std::vector<std::unique_ptr<Source>> sources;
  std::vector<SourceRow> validation_order;
  std::string fingerprint;
};

Loader::Loader(LoaderOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Loader::~Loader() = default;

const LoaderOptions& Loader::options() const { return impl_->options; }
uint64_t Loader::seq_len() const { return impl_->options.seq_len; }
std::size_t Loader::source_count() const { return impl_->sources.size(); }
const ShardSet& Loader::source(std::size_t k) const { return impl_->sources.at(k)->set(); }
uint64_t Loader::validation_documents(std::size_t k) const {
  return impl_->sources.at(k)->split().validation_documents();
}
uint64_t Loader::epoch_rows(std::size_t k, uint64_t epoch) const {
  return impl_->sources.at(k)->epoch(epoch)->plan.rows();
}

Row Loader::row(uint64_t global_row) const {
  const SourceRow where = impl_->mixture.locate(global_row);
  const auto epoch = impl_->sources[where.source]->epoch_of_row(where.row);
  PackCursor cursor = epoch->plan.cursor(impl_->packer, *epoch->documents, where.row - epoch->first_row);
  Row row;
  impl_->packer.build_row(*epoch->documents, cursor, row);
  return row;
}

MicroBatch Loader::rows(uint64_t first_row, uint64_t count) const { return impl_->training_rows(first_row, count); }

MicroBatch Loader::micro_batch(const BatchLayout& layout, uint64_t step_first_row, uint64_t micro) const {
  layout.check();
  if (micro >= layout.accumulation_steps()) {
    throw UsageError(fmt::format("micro-batch {} of a step with {} accumulation steps", micro, layout.accumulation_steps()));
  }
  return rows(layout.micro_batch_first_row(step_first_row, micro), layout.micro_batch_rows);
}

uint64_t Loader::validation_rows() const { return impl_->validation_order.size(); }

Row Loader::validation_row(uint64_t index) const {
  if (index >= impl_->validation_order.size()) return padding_row(seq_len(), static_cast<int32_t>(*impl_->options.eos_id));
  const SourceRow where = impl_->validation_order[index];
  const Source& source = *impl_->sources[where.source];
  PackCursor cursor = source.validation_plan().cursor(impl_->packer, source.validation(), where.row);
  Row row;
  impl_->packer.build_row(source.validation(), cursor, row);
  return row;
}

MicroBatch Loader::validation_rows(uint64_t first_row, uint64_t count) const {
  return impl_->validation_rows(first_row, count);
}

const std::string& Loader::fingerprint() const { return impl_->fingerprint; }

LoaderState Loader::state(uint64_t rows_consumed) const {
  const LoaderOptions& options = impl_->options;
  LoaderState state;
  state.rows_consumed = rows_consumed;
  state.fingerprint = impl_->fingerprint;
  state.seed = options.seed;
  state.shuffle = options.shuffle;
  state.packing = std::string(to_string(options.packing));
  state.seq_len = options.seq_len;
  state.eos_id = *options.eos_id;
  state.weights = impl_->mixture.weights();
  for (const auto& source : impl_->sources) {
    const ShardSet& set = source->set();
    state.sources.push_back(SourceState{set.path().string(), set.fingerprint(), set.shards().size(), set.token_count(),
                                        set.document_count(), source->split().validation_documents()});
  }
  return state;
}

uint64_t Loader::resume(const LoaderState& saved) const {
  const LoaderState now = state(saved.rows_consumed);
  if (saved.sources.size() != now.sources.size()) {
    throw UsageError(fmt::format("cannot resume: the checkpoint's data has {} sources, the configuration {}",
                                 saved.sources.size(), now.sources.size()));
  }
  for (std::size_t k = 0; k < now.sources.size(); ++k) {
    const SourceState& was = saved.sources[k];
    const SourceState& is = now.sources[k];
    if (was.fingerprint != is.fingerprint) {
      throw UsageError(fmt::format(
          "cannot resume: data source {} ({}) changed since the checkpoint: it had {} shards, {} tokens, {} documents "
          "(fingerprint {}), now {} shards, {} tokens, {} documents (fingerprint {})",
          k, is.path, was.shards, was.tokens, was.documents, was.fingerprint, is.shards, is.tokens, is.documents,
          is.fingerprint));
    }
    if (was.validation_documents != is.validation_documents) {
      throw UsageError(fmt::format("cannot resume: data source {} ({}) held out {} validation documents, now {}", k,
                                   is.path, was.validation_documents, is.validation_documents));
    }
  }
  const auto differs = [](const char* what, const std::string& was, const std::string& is) {
    if (was != is) throw UsageError(fmt::format("cannot resume: data {} was {} in the checkpoint, now {}", what, was, is));
  };
  differs("fingerprint", saved.fingerprint, now.fingerprint);
  differs("seed", std::to_string(saved.seed), std::to_string(now.seed));
  differs("shuffle", saved.shuffle ? "true" : "false", now.shuffle ? "true" : "false");
  differs("packing", saved.packing, now.packing);
  differs("seq_len", std::to_string(saved.seq_len), std::to_string(now.seq_len));
  differs("eos_id", std::to_string(saved.eos_id), std::to_string(now.eos_id));
  bool same_weights = saved.weights.size() == now.weights.size();
  for (std::size_t k = 0; same_weights && k < now.weights.size(); ++k) {
    same_weights = std::abs(saved.weights[k] - now.weights[k]) <= 1e-12;
  }
  if (!same_weights) {
    throw UsageError(fmt::format("cannot resume: data weights were [{}] in the checkpoint, now [{}]",
                                 fmt::join(saved.weights, ", "), fmt::join(now.weights, ", ")));
  }
  return saved.rows_consumed;
}

}  // namespace ssa::data
