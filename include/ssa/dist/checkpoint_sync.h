// A checkpoint written by every rank of a data-parallel run into one folder: rank 0 builds the
// staging folder with the model folder and trainer_state.json (CheckpointStore::save), every rank
// adds its own files (its optimizer shard), and rank 0 writes DONE and puts the folder in place
// only after a barrier says they all have. Every rank returns once the checkpoint is complete,
// so a SIGTERM stop exits with the checkpoint on disk.
#pragma once

#include <filesystem>
#include <functional>

#include "ssa/dist/process_group.h"
#include "ssa/train/checkpoint_store.h"

namespace ssa::dist {

// `contents` matters on rank 0 only (elsewhere only its step). `write_own_files` writes this
// rank's files into the folder it is given. Returns the checkpoint folder.
std::filesystem::path save_checkpoint(ProcessGroup& group, train::CheckpointStore& store,
                                      const train::CheckpointContents& contents,
                                      const std::function<void(const std::filesystem::path& folder)>& write_own_files);

}  // namespace ssa::dist
