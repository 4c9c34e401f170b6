#include "image/build.h"

#include <fcntl.h>
#include <glob.h>
#include <unistd.h>

#include <sstream>

#include "base/child_process.h"
#include "base/fs.h"

namespace ember::image {
namespace {

std::vector<std::string> Words(std::string_view text) {
  std::vector<std::string> words;
  std::istringstream in{std::string(text)};
  std::string w;
  while (in >> w) words.push_back(w);
  return words;
}

bool Contains(const std::vector<std::string>& words, std::string_view w) {
  for (const auto& x : words) {
    if (x == w) return true;
  }
  return false;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return std::string(s);
}

bool IsNetworkUri(std::string_view uri) {
  return uri.rfind("http://", 0) == 0 || uri.rfind("https://", 0) == 0;
}

// deb822: stanzas separated by blank lines, "Key: value" fields, '#' comments.
std::string FromDeb822(std::string_view suite, const std::string& content) {
  std::istringstream in(content + "\n\n");
  std::string line;
  std::vector<std::pair<std::string, std::string>> fields;
  auto stanza_match = [&]() -> std::string {
    std::vector<std::string> types, uris, suites, components;
    bool enabled = true;
    for (const auto& [k, v] : fields) {
      if (k == "types") types = Words(v);
      if (k == "uris") uris = Words(v);
      if (k == "suites") suites = Words(v);
      if (k == "components") components = Words(v);
      if (k == "enabled" && (v == "no" || v == "false")) enabled = false;
    }
    if (!enabled || !Contains(types, "deb") || !Contains(suites, suite) ||
        !Contains(components, "main")) {
      return "";
    }
    for (const auto& uri : uris) {
      if (IsNetworkUri(uri)) return uri;
    }
    return "";
  };
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '#') continue;
    if (Trim(line).empty()) {
      if (!fields.empty()) {
        if (auto uri = stanza_match(); !uri.empty()) return uri;
      }
      fields.clear();
      continue;
    }
    auto colon = line.find(':');
    if (colon == std::string::npos || line[0] == ' ' || line[0] == '\t') continue;
    std::string key = line.substr(0, colon);
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    fields.emplace_back(key, Trim(line.substr(colon + 1)));
  }
  return "";
}

// One-line format: deb [options] URI SUITE COMPONENT...
std::string FromOneLine(std::string_view suite, const std::string& content) {
  std::istringstream in(content);
  std::string line;
  while (std::getline(in, line)) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    auto words = Words(line);
    if (words.empty() || words[0] != "deb") continue;
    size_t i = 1;
    if (i < words.size() && words[i].front() == '[') {
      while (i < words.size() && words[i].back() != ']') ++i;
      ++i;
    }
    if (i + 2 >= words.size()) continue;  // needs URI, suite and a component
    const std::string& uri = words[i];
    if (words[i + 1] != suite || !IsNetworkUri(uri)) continue;
    std::vector<std::string> components(words.begin() + static_cast<long>(i) + 2, words.end());
    if (Contains(components, "main")) return uri;
  }
  return "";
}

}  // namespace

const std::vector<Recipe>& Recipes() {
  static const std::vector<Recipe> recipes = {
      // python3-minimal adds only the /usr/bin/python3 link, which users and handlers expect.
      {"python3.11",
       "Debian bookworm (minbase) with the CPython 3.11 interpreter and libpython",
       "bookworm",
       {"python3.11", "libpython3.11", "python3-minimal"}},
  };
  return recipes;
}

Result<Recipe> FindRecipe(std::string_view name) {
  std::string known;
  for (const auto& recipe : Recipes()) {
    if (recipe.name == name) return recipe;
    known += (known.empty() ? "" : ", ") + recipe.name;
  }
  return Fail(ErrorCode::kNotFound,
              "unknown image recipe '" + std::string(name) + "' (known recipes: " + known + ")");
}

Mirror FindDebianMirror(std::string_view suite,
                        const std::vector<std::pair<std::string, std::string>>& files) {
  for (const auto& [path, content] : files) {
    if (path.size() < 8 || path.substr(path.size() - 8) != ".sources") continue;
    if (auto uri = FromDeb822(suite, content); !uri.empty()) return {uri, path};
  }
  for (const auto& [path, content] : files) {
    if (path.size() >= 8 && path.substr(path.size() - 8) == ".sources") continue;
    if (auto uri = FromOneLine(suite, content); !uri.empty()) return {uri, path};
  }
  return {std::string(kDefaultDebianMirror), "default"};
}

Mirror HostDebianMirror(std::string_view suite, const std::string& apt_dir) {
  std::vector<std::pair<std::string, std::string>> files;
  glob_t g{};
  if (::glob((apt_dir + "/sources.list.d/*.sources").c_str(), 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      if (auto content = ReadFile(g.gl_pathv[i])) files.emplace_back(g.gl_pathv[i], *content);
    }
  }
  ::globfree(&g);
  if (auto content = ReadFile(apt_dir + "/sources.list"))
    files.emplace_back(apt_dir + "/sources.list", *content);
  return FindDebianMirror(suite, files);
}

Status RunMmdebstrap(const Recipe& recipe, const Mirror& mirror,
                     const std::vector<std::string>& extra_packages, const std::string& target,
                     const ProgressFn& progress, int hold_fd) {
  std::string include;
  for (const auto& p : recipe.packages) include += (include.empty() ? "" : ",") + p;
  for (const auto& p : extra_packages) include += (include.empty() ? "" : ",") + p;
  std::vector<std::string> argv = {
      "mmdebstrap", "--mode=root", "--variant=minbase", "--include=" + include,
      recipe.suite, target,        mirror.uri};
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return FailErrno("pipe2");
  UniqueFd read_end(out[0]), write_end(out[1]);
  pid_t pid = ::fork();
  if (pid < 0) return FailErrno("fork mmdebstrap");
  if (pid == 0) {
    ::dup2(write_end.get(), STDOUT_FILENO);
    ::dup2(write_end.get(), STDERR_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    // mmdebstrap hands apt hooks fds that dash can only redirect when they are below 10, so
    // nothing else may be inherited: the held lock becomes fd 3, everything above is closed.
    unsigned first_closed = 3;
    if (hold_fd >= 0) {
      if (hold_fd == 3) {
        ::fcntl(3, F_SETFD, 0);
      } else {
        ::dup2(hold_fd, 3);
      }
      first_closed = 4;
    }
    ::close_range(first_closed, ~0U, 0);
    ::execvp(cargv[0], cargv.data());
    static const char kMsg[] = "E: cannot run mmdebstrap (install the mmdebstrap package)\n";
    (void)!::write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
    ::_exit(127);
  }
  write_end.reset();
  EMBER_ASSIGN_OR_RETURN(auto child, ChildProcess::Adopt(pid));
  std::string pending, tail;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (line.empty()) continue;
      tail = line;  // the last line is what a failure is about
      if (progress) progress(line);
    }
  }
  EMBER_ASSIGN_OR_RETURN(auto status, child.Wait());
  if (status.signaled || status.code != 0) {
    return Fail(ErrorCode::kIo,
                "mmdebstrap " + status.Describe() + (tail.empty() ? "" : ": " + tail));
  }
  return Ok();
}

}  // namespace ember::image
