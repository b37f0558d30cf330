#include "ssa/dist/checkpoint_sync.h"

#include "ssa/io/atomic_file.h"

namespace ssa::dist {

std::filesystem::path save_checkpoint(ProcessGroup& group, train::CheckpointStore& store,
                                      const train::CheckpointContents& contents,
                                      const std::function<void(const std::filesystem::path&)>& write_own_files) {
  const auto folder = store.step_folder(contents.state.step);
  if (group.rank() == 0) {
    store.save(contents, [&](const std::filesystem::path& staging) {
      group.barrier("checkpoint (staging folder ready)");
      write_own_files(staging);
      group.barrier("checkpoint (every rank's files written)");
    });
  } else {
    group.barrier("checkpoint (staging folder ready)");
    write_own_files(io::staging_path(folder));
    group.barrier("checkpoint (every rank's files written)");
  }
  group.barrier("checkpoint (complete)");
  return folder;
}

}  // namespace ssa::dist
