// The bucketed reducer in one process (a one-rank Gloo group): a bucket starts while the backward
// pass is still running, and it reduces the gradient plus the earlier micro-batches' sum.
#include <gtest/gtest.h>

#include "dist/dist_fixture.h"
#include "ssa/dist/gradient_reducer.h"

namespace ssa::dist {
namespace {

TEST(GradientReducer, StartsABucketWhileTheBackwardPassGoesOn) {
  LaunchEnvironment env;
  env.launcher = "torchrun";
  env.master_addr = "127.0.0.1";
  env.master_port = test::free_port();
  config::DistConfig config;
  config.timeout_s = 30;
  ProcessGroup group(env, config, torch::kCPU);

  torch::manual_seed(3);
  auto w0 = torch::randn({3, 4}).requires_grad_();  // first layer: its gradient comes last
  auto w1 = torch::randn({4, 2}).requires_grad_();
  const auto x = torch::randn({5, 3});
  const auto loss = [&] { return torch::tanh(x.mm(w0)).mm(w1).pow(2).sum(); };
  std::vector<torch::Tensor> accumulated(2);
  const auto layout = assign_buckets({12, 8}, 10, 1);
  ASSERT_EQ(layout.buckets.size(), 2u);  // bucket 0 holds w1, bucket 1 w0
  GradientReducer reducer(group, layout, {w0, w1}, [&](size_t i) { return accumulated[i]; }, /*scatter=*/false,
                          torch::kFloat32);
  bool first_bucket_started = false;
  w0.register_hook([&](const torch::Tensor&) { first_bucket_started = reducer.result(0).defined(); });

  // The first reduced pass learns how often each hook runs, so it reduces after the backward pass.
  reducer.arm(/*with_accumulated=*/false);
  loss().backward();
  EXPECT_FALSE(first_bucket_started);
  reducer.launch_remaining();
  reducer.wait();

  accumulated[0] = torch::ones({3, 4});
  w0.mutable_grad() = torch::Tensor();
  w1.mutable_grad() = torch::Tensor();
  reducer.arm(/*with_accumulated=*/true);
  loss().backward();
  EXPECT_TRUE(first_bucket_started);
  reducer.launch_remaining();
  reducer.wait();
  EXPECT_TRUE(torch::allclose(reducer.result(1).view({3, 4}), w0.grad() + 1));
  EXPECT_TRUE(torch::allclose(reducer.result(0).view({4, 2}), w1.grad()));
}

}  // namespace
}  // namespace ssa::dist
