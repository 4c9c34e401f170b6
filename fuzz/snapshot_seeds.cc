// Writes the seed corpus of snapshot_reader_fuzz: a few images made by the real writer from the
// unit tests' synthetic state, so the fuzzer starts from valid files and mutates inward.
// Usage: snapshot_seeds DIR
#include <cstdio>
#include <string>

#include "snapshot/image_writer.h"
#include "snapshot/test_state.h"

int main(int argc, char** argv) {
  using namespace ember::snapshot;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  ProcessState small = testing::SyntheticState(1, 1, 1);
  ProcessState no_pages = testing::SyntheticState(2, 3, 0);
  for (auto& a : no_pages.areas) {
    a.pages.clear();
    a.page_data.clear();
  }
  no_pages.working_set.clear();
  no_pages.itimers.clear();
  const std::pair<const char*, ProcessState> seeds[] = {
      {"full.snap", testing::SyntheticState()},
      {"small.snap", small},
      {"no-pages.snap", no_pages},
      {"many-files.snap", testing::SyntheticState(2, 5, 6)},
  };
  for (const auto& [name, state] : seeds) {
    if (auto written = WriteImage(state, dir + "/" + name); !written) {
      std::fprintf(stderr, "snapshot_seeds: %s\n", written.error().ToString().c_str());
      return 1;
    }
  }
  return 0;
}
