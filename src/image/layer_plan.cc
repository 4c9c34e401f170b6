#include "image/layer_plan.h"

namespace ember::image {
namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr std::string_view kWhiteoutMeta = ".wh..wh.";

std::string Join(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

// Every path in `tree` strictly below `dir` sorts in ["dir/", "dir0"): '0' follows '/'.
std::string SubtreeBegin(const std::string& dir) { return dir.empty() ? "" : dir + "/"; }
std::string SubtreeEnd(const std::string& dir) { return dir.empty() ? "\x7f" : dir + "0"; }

Error Refuse(const EntryHeader& header, const std::string& why) {
  return Error(ErrorCode::kInvalidArgument, "refusing archive entry '" + header.path + "': " + why);
}

}  // namespace

std::string_view EntryTypeName(EntryType type) {
  switch (type) {
    case EntryType::kFile:
      return "file";
    case EntryType::kDir:
      return "directory";
    case EntryType::kSymlink:
      return "symlink";
    case EntryType::kHardlink:
      return "hardlink";
    case EntryType::kFifo:
      return "fifo";
    case EntryType::kCharDevice:
      return "character device";
    case EntryType::kBlockDevice:
      return "block device";
    case EntryType::kSocket:
      return "socket";
  }
  return "?";
}

Result<std::string> NormalizeEntryPath(std::string_view path) {
  if (!path.empty() && path[0] == '/') {
    return Fail(ErrorCode::kInvalidArgument, "absolute path '" + std::string(path) + "'");
  }
  std::string out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      return Fail(ErrorCode::kInvalidArgument,
                  "path '" + std::string(path) + "' leaves the root through '..'");
    }
    if (!out.empty()) out.push_back('/');
    out.append(part);
  }
  return out;
}

void LayerPlanner::BeginLayer() { written_in_layer_.clear(); }

void LayerPlanner::EraseSubtree(const std::string& path) {
  if (!path.empty()) tree_.erase(path);
  tree_.erase(tree_.lower_bound(SubtreeBegin(path)), tree_.lower_bound(SubtreeEnd(path)));
}

bool LayerPlanner::HasWrittenBelow(const std::string& path) const {
  auto it = written_in_layer_.lower_bound(SubtreeBegin(path));
  return it != written_in_layer_.end() && *it < SubtreeEnd(path);
}

// What an opaque marker in `dir` deletes: everything below it that this layer did not write,
// except directories that this layer wrote into (they stay as parents; their other content goes).
std::vector<std::string> LayerPlanner::OpaqueRemovals(const std::string& dir) {
  std::vector<std::string> removals;
  auto it = tree_.lower_bound(SubtreeBegin(dir));
  auto end = tree_.lower_bound(SubtreeEnd(dir));
  while (it != end) {
    const std::string& path = it->first;
    if (written_in_layer_.count(path) != 0 || HasWrittenBelow(path)) {
      ++it;
      continue;
    }
    removals.push_back(path);
    it = tree_.lower_bound(SubtreeEnd(path));  // skip what the removal takes with it
  }
  for (const auto& path : removals) EraseSubtree(path);
  return removals;
}

Result<PlannedEntry> LayerPlanner::Plan(const EntryHeader& header) {
  PlannedEntry entry;
  entry.type = header.type;
  auto normalized = NormalizeEntryPath(header.path);
  if (!normalized) return Fail(Refuse(header, normalized.error().message()));
  entry.path = std::move(*normalized);

  std::string dir, base = entry.path;
  if (auto slash = entry.path.rfind('/'); slash != std::string::npos) {
    dir = entry.path.substr(0, slash);
    base = entry.path.substr(slash + 1);
  }

  // Every existing parent must be a real directory: writing through a symlink could land anywhere.
  size_t pos = 0;
  while (!entry.path.empty()) {
    size_t slash = entry.path.find('/', pos);
    if (slash == std::string::npos) break;
    std::string parent = entry.path.substr(0, slash);
    pos = slash + 1;
    auto found = tree_.find(parent);
    if (found == tree_.end()) {
      entry.new_parents.push_back(parent);
    } else if (found->second == EntryType::kSymlink) {
      return Fail(Refuse(header, "its parent '" + parent + "' is a symlink (never followed)"));
    } else if (found->second != EntryType::kDir) {
      return Fail(Refuse(
          header, "its parent '" + parent + "' is a " + std::string(EntryTypeName(found->second))));
    }
  }

  if (layered_ && base.rfind(kWhiteoutPrefix, 0) == 0) {
    if (base == kOpaqueMarker) {
      auto found = tree_.find(dir);
      if (!dir.empty() && found == tree_.end()) {
        entry.kind = PlannedEntry::Kind::kSkip;  // nothing below to hide
        entry.new_parents.clear();
        return entry;
      }
      entry.kind = PlannedEntry::Kind::kOpaque;
      entry.path = dir;
      entry.new_parents.clear();
      entry.removals = OpaqueRemovals(dir);
      return entry;
    }
    entry.new_parents.clear();
    if (base.rfind(kWhiteoutMeta, 0) == 0) {
      entry.kind = PlannedEntry::Kind::kSkip;
      return entry;
    }
    std::string target = Join(dir, std::string_view(base).substr(kWhiteoutPrefix.size()));
    entry.kind = PlannedEntry::Kind::kWhiteout;
    entry.path = target;
    if (tree_.count(target) != 0) {
      entry.removals.push_back(target);
      EraseSubtree(target);
    }
    return entry;
  }

  switch (header.type) {
    case EntryType::kCharDevice:
    case EntryType::kBlockDevice:
      return Fail(Refuse(
          header, std::string(EntryTypeName(header.type)) + " nodes are not allowed in images"));
    case EntryType::kSocket:
      entry.kind = PlannedEntry::Kind::kSkip;
      entry.new_parents.clear();
      return entry;
    default:
      break;
  }
  if (entry.path.empty()) {
    if (header.type != EntryType::kDir) return Fail(Refuse(header, "the root must be a directory"));
    entry.kind = PlannedEntry::Kind::kWrite;
    return entry;
  }

  if (header.type == EntryType::kHardlink) {
    auto target = NormalizeEntryPath(header.link_target);
    if (!target) {
      return Fail(Refuse(header, "hardlink target escapes the root: " + target.error().message()));
    }
    auto found = tree_.find(*target);
    if (target->empty() || found == tree_.end()) {
      return Fail(Refuse(header, "hardlink target '" + header.link_target +
                                     "' is not an earlier entry of the archive"));
    }
    if (found->second == EntryType::kDir) {
      return Fail(Refuse(header, "hardlink target '" + header.link_target + "' is a directory"));
    }
    if (*target == entry.path) {
      entry.kind = PlannedEntry::Kind::kSkip;  // a link to itself changes nothing
      return entry;
    }
    entry.link_target = std::move(*target);
  }

  entry.kind = PlannedEntry::Kind::kWrite;
  auto existing = tree_.find(entry.path);
  if (existing != tree_.end() &&
      !(existing->second == EntryType::kDir && header.type == EntryType::kDir)) {
    entry.removals.push_back(entry.path);
    EraseSubtree(entry.path);
  }
  for (const auto& parent : entry.new_parents) {
    tree_[parent] = EntryType::kDir;
    written_in_layer_.insert(parent);
  }
  // A hardlink is, to the tree, whatever it links to.
  tree_[entry.path] = header.type == EntryType::kHardlink ? tree_[entry.link_target] : header.type;
  written_in_layer_.insert(entry.path);
  return entry;
}

}  // namespace ember::image
