// Stand-in for `ssa bench attention` in the kernels-only build: --out FILE, --lengths a,b,...,
// --kv-heads a,b,..., --budgets 16x16,64x16,..., --repeats N, --warmup N, --dense 0|1.
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <sstream>

#include "ssa/eval/attention_benchmark.h"

int main(int argc, char** argv) {
  ssa::eval::AttentionBenchmarkOptions options;
  options.command = "ssa_bench_attention (kernels-only build)";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    options.command += " " + key + " " + value;
    if (key == "--out") {
      options.out = value;
    } else if (key == "--lengths") {
      options.lengths.clear();
      std::stringstream list(value);
      for (std::string item; std::getline(list, item, ',');) options.lengths.push_back(std::stoll(item));
    } else if (key == "--kv-heads") {
      options.kv_heads.clear();
      std::stringstream list(value);
      for (std::string item; std::getline(list, item, ',');) options.kv_heads.push_back(std::stoll(item));
    } else if (key == "--budgets") {
      options.block_sizes.clear();
      options.topks.clear();
      std::stringstream list(value);
      for (std::string item; std::getline(list, item, ',');) {
        const auto x = item.find('x');
        options.block_sizes.push_back(std::stoll(item.substr(0, x)));
        options.topks.push_back(std::stoll(item.substr(x + 1)));
      }
    } else if (key == "--repeats") {
      options.repeats = std::atoi(value.c_str());
    } else if (key == "--warmup") {
      options.warmup = std::atoi(value.c_str());
    } else if (key == "--dense") {
      options.dense = value != "0";
    } else {
      std::cerr << "unknown option " << key << "\n";
      return 2;
    }
  }
  try {
    ssa::eval::run_attention_benchmark(options);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
