// A language model as a LoglikelihoodFn (multiple_choice.h), with lm-eval's request handling:
// whitespace at the end of the context moves to the front of the continuation; the continuation's
// tokens are those of encode(context + continuation) after the tokens of encode(context); an
// empty context is replaced by the prefix token; the input keeps the last max_length tokens.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ssa/eval/multiple_choice.h"
#include "ssa/model/llama.h"

namespace ssa::eval {

using EncodeFn = std::function<std::vector<int64_t>(const std::string&)>;

// Context and continuation token ids of one request, as lm-eval splits them.
struct EncodedRequest {
  std::vector<int64_t> context, continuation;
};
EncodedRequest encode_request(const LoglikelihoodRequest& request, const EncodeFn& encode, int64_t prefix_token);

LoglikelihoodFn model_loglikelihood(model::LlamaForCausalLM model, EncodeFn encode, int64_t prefix_token,
                                    int64_t max_length, model::ForwardOptions options);

}  // namespace ssa::eval
