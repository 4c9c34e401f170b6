// The mount table as ember needs it: which mount points lie at or below a directory, and
// detaching them (crash leftovers, test fixtures).
#pragma once

#include <string>
#include <vector>

namespace ember {

// Mount points equal to `dir` or below it, from /proc/self/mountinfo, in mount order.
std::vector<std::string> MountPointsUnder(const std::string& dir);

// Lazily unmounts (MNT_DETACH) everything at or below `dir`, deepest first; errors are ignored,
// as this only clears leftovers.
void DetachMountsUnder(const std::string& dir);

}  // namespace ember
