#include "ssa/eval/model_loglikelihood.h"

#include "ssa/util/error.h"

namespace ssa::eval {

EncodedRequest encode_request(const LoglikelihoodRequest& request, const EncodeFn& encode, int64_t prefix_token) {
  EncodedRequest out;
  if (request.context.empty()) {
    out.context = {prefix_token};
    out.continuation = encode(request.continuation);
    return out;
  }
  std::string context = request.context, continuation = request.continuation;
  const size_t kept = context.find_last_not_of(" \t\n\r\f\v") + 1;  // npos + 1 == 0: all whitespace
  continuation = context.substr(kept) + continuation;
  context.resize(kept);
  const auto whole = encode(context + continuation);
  out.context = encode(context);
  if (out.context.size() > whole.size()) throw UsageError("tokenizer: the context encodes longer than context + continuation");
  out.continuation.assign(whole.begin() + static_cast<std::ptrdiff_t>(out.context.size()), whole.end());
  return out;
}

LoglikelihoodFn model_loglikelihood(model::LlamaForCausalLM model, EncodeFn encode, int64_t prefix_token,
                                    int64_t max_length, model::ForwardOptions options) {
  return [=](const std::vector<LoglikelihoodRequest>& requests) mutable {
    torch::NoGradGuard no_grad;
    const auto device = model->output_weight().device();
    std::vector<double> out;
    out.reserve(requests.size());
    for (const auto& request : requests) {
      const auto encoded = encode_request(request, encode, prefix_token);
      const int64_t n = static_cast<int64_t>(encoded.continuation.size());
      if (n == 0) throw UsageError("multiple choice: a continuation encodes to no tokens");
      std::vector<int64_t> all = encoded.context;
      all.insert(all.end(), encoded.continuation.begin(), encoded.continuation.end());
      const int64_t start = std::max<int64_t>(0, static_cast<int64_t>(all.size()) - (max_length + 1));
      std::vector<int64_t> input(all.begin() + start, all.end() - 1);
      auto hidden = model->forward(torch::tensor(input, torch::kInt64).unsqueeze(0).to(device), options).hidden[0];
      const int64_t scored = std::min<int64_t>(n, hidden.size(0));
      auto log_probs = torch::log_softmax(model->logits(hidden.narrow(0, hidden.size(0) - scored, scored)).to(torch::kFloat64), -1);
      auto targets = torch::tensor(std::vector<int64_t>(all.end() - scored, all.end()), torch::kInt64).to(device);
      out.push_back(log_probs.gather(1, targets.unsqueeze(1)).sum().item<double>());
    }
    return out;
  };
}

}  // namespace ssa::eval
