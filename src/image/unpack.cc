#include "image/unpack.h"

#include <archive.h>
#include <archive_entry.h>

#include <memory>

#include "image/layer_plan.h"
#include "image/tar_reader.h"
#include "image/tree_writer.h"

namespace ember::image {
namespace {

EntryHeader HeaderOf(struct archive_entry* e) {
  EntryHeader h;
  const char* path = archive_entry_pathname(e);
  h.path = path ? path : "";
  if (const char* link = archive_entry_hardlink(e)) {
    h.type = EntryType::kHardlink;
    h.link_target = link;
    return h;
  }
  switch (archive_entry_filetype(e)) {
    case AE_IFDIR:
      h.type = EntryType::kDir;
      break;
    case AE_IFLNK:
      h.type = EntryType::kSymlink;
      break;
    case AE_IFIFO:
      h.type = EntryType::kFifo;
      break;
    case AE_IFCHR:
      h.type = EntryType::kCharDevice;
      break;
    case AE_IFBLK:
      h.type = EntryType::kBlockDevice;
      break;
    case AE_IFSOCK:
      h.type = EntryType::kSocket;
      break;
    default:
      h.type = EntryType::kFile;
      break;
  }
  return h;
}

// One pass over every layer. Without a writer it only plans (and so validates); with one it also
// applies each decision.
Status Pass(const std::vector<std::string>& layers, LayerPlanner& planner, TreeWriter* writer) {
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string& layer = layers[i];
    std::string where =
        layers.size() > 1 ? "layer " + std::to_string(i + 1) + " (" + layer + ")" : layer;
    EMBER_ASSIGN_OR_RETURN(auto a, OpenTar(layer));
    planner.BeginLayer();
    struct archive_entry* e;
    for (;;) {
      int r = archive_read_next_header(a.get(), &e);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) {
        return Fail(ErrorCode::kCorrupt, "read " + where + ": " + archive_error_string(a.get()));
      }
      auto planned = planner.Plan(HeaderOf(e));
      if (!planned) return Fail(std::move(planned).error().Context(where));
      if (writer != nullptr) {
        EMBER_TRY_CTX(writer->Apply(*planned, a.get(), e), where);
      }
    }
  }
  return Ok();
}

}  // namespace

Result<UnpackStats> UnpackLayers(const std::vector<std::string>& layers, bool layered,
                                 const std::string& dest) {
  {
    LayerPlanner check(layered);
    EMBER_TRY(Pass(layers, check, nullptr));
  }
  LayerPlanner planner(layered);
  EMBER_ASSIGN_OR_RETURN(auto writer, TreeWriter::Open(dest));
  auto applied = Pass(layers, planner, &writer);
  if (applied) applied = writer.Finish();
  if (!applied) {
    (void)EmptyDirectory(dest);
    return Fail(std::move(applied).error());
  }
  return UnpackStats{static_cast<uint32_t>(layers.size()), planner.entry_count()};
}

}  // namespace ember::image
