// What `ember image import` accepts, and how each kind becomes a list of layer tars:
//   * docker-archive: a tar with manifest.json ([{"Config", "RepoTags", "Layers": [...]}]), as
//     written by `docker save` / `podman save`;
//   * oci-archive: a tar with oci-layout, index.json and blobs/sha256/<hex>, as written by
//     `skopeo copy ... oci-archive:`; index -> (nested index ->) manifest -> layers;
//   * tarball: any other tar (any compression) is a rootfs taken literally;
//   * directory: packed as it is (not unpacked here).
// A docker archive that also carries an OCI layout (docker 25+) is read through manifest.json.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace ember::image {

enum class SourceKind { kDirectory, kDockerArchive, kOciArchive, kTarball };
std::string_view SourceKindName(SourceKind kind);

struct DockerManifest {
  std::vector<std::string> layers;  // member paths inside the archive, bottom first
  std::vector<std::string> repo_tags;
};
Result<DockerManifest> ParseDockerManifest(std::string_view json);

// Follows an OCI index to the layer digests ("sha256:..."), bottom first. `read_blob` returns a
// (small) blob by digest. Nested indexes are followed; with several manifests the one for this
// host's platform (linux/amd64, linux/arm64) wins, else the first. `ref_name` receives the
// org.opencontainers.image.ref.name annotation when there is one.
Result<std::vector<std::string>> ResolveOciLayers(
    std::string_view index_json,
    const std::function<Result<std::string>(const std::string& digest)>& read_blob,
    std::string* ref_name);

// "sha256:abc" -> "blobs/sha256/abc"; refuses digests that are not algorithm:hex.
Result<std::string> OciBlobPath(const std::string& digest);

struct PreparedSource {
  SourceKind kind = SourceKind::kTarball;
  std::vector<std::string> layer_files;  // tar files to unpack, bottom first
  std::string suggested_name;            // from RepoTags / ref name; "" if none
};

// Looks at `path` and, for image archives, copies the layer members it needs into `work_dir`.
// Directories come back with kind kDirectory and no layers.
Result<PreparedSource> PrepareSource(const std::string& path, const std::string& work_dir);

}  // namespace ember::image
