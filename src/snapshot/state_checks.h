// The rules a ProcessState must follow to be written as an image (format.h), checked before
// anything is laid out so that the writer never produces a file the reader would refuse.
#pragma once

#include "base/error.h"
#include "snapshot/process_state.h"

namespace ember::snapshot {

// kInvalidArgument naming the thread, area or file: no threads, areas unsorted or overlapping,
// page indexes out of range or order, page data of the wrong size, a path with a NUL, a count or
// size over kLimits.
Status CheckStateForImage(const ProcessState& state);

}  // namespace ember::snapshot
