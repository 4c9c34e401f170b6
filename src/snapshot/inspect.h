// What `ember snapshot inspect` prints about an opened image: header and sections, compat record
// (and whether this host may restore it), process, threads, areas with their stored pages,
// files, signal handlers, timers, working set. Text for people, JSON for scripts.
#pragma once

#include <optional>
#include <string>

#include "base/error.h"
#include "snapshot/image_reader.h"

namespace ember::snapshot {

struct InspectExtras {
  std::optional<Status> host_compat;  // CheckCompat against this host, when it was run
  bool pages_verified = false;        // VerifyPages passed
};

std::string RenderImageText(const ImageReader& image, const InspectExtras& extras);
// Pretty-printed; bytes that are not UTF-8 (paths may hold any) are replaced, never thrown on.
std::string RenderImageJson(const ImageReader& image, const InspectExtras& extras);

std::string_view AreaKindName(AreaKind kind);
std::string_view FileKindName(FileKind kind);
// "r-xp" from PROT_* and MAP_SHARED.
std::string ProtString(int32_t prot, int32_t flags);

}  // namespace ember::snapshot
