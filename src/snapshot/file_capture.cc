#include "snapshot/file_capture.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "base/fs.h"
#include "snapshot/proc_parsers.h"
#include "snapshot/root_path.h"

namespace ember::snapshot {
namespace {

// The socket tables of a network namespace, in the order a refusal looks a socket up.
constexpr const char* kSocketTables[] = {"tcp", "tcp6", "udp",     "udp6",  "unix",
                                         "raw", "raw6", "netlink", "packet"};

Result<std::string> ReadLink(const std::string& path) {
  char buf[4096];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n < 0) return FailErrno("readlink " + path);
  return std::string(buf, static_cast<size_t>(n));
}

std::string DescribeSocketFd(pid_t pid, uint64_t inode) {
  std::string net = "/proc/" + std::to_string(pid) + "/net/";
  for (const char* table : kSocketTables) {
    auto text = ReadFile(net + table);
    if (!text) continue;
    std::string desc = proc::DescribeSocket(table, *text, inode);
    if (!desc.empty()) return desc;
  }
  return "socket";
}

tl::unexpected<Error> Refuse(int fd, const std::string& what, const std::string& link,
                             const std::string& why) {
  return Fail(ErrorCode::kUnsupported,
              "fd " + std::to_string(fd) + " is " + what + " (" + link + "); " + why);
}

}  // namespace

std::string DescribeAnonInode(const std::string& link) {
  std::string kind = link.substr(link.find(':') + 1);
  kind.erase(std::remove(kind.begin(), kind.end(), '['), kind.end());
  kind.erase(std::remove(kind.begin(), kind.end(), ']'), kind.end());
  if (kind == "eventfd") return "an eventfd";
  if (kind == "eventpoll") return "an epoll instance";
  if (kind == "signalfd") return "a signalfd";
  if (kind == "timerfd") return "a timerfd";
  if (kind == "io_uring") return "an io_uring instance";
  if (kind == "inotify") return "an inotify instance";
  if (kind == "fanotify") return "a fanotify instance";
  if (kind == "pidfd") return "a pidfd";
  if (kind == "userfaultfd") return "a userfaultfd";
  return "a kernel object of kind '" + kind + "'";
}

Result<std::vector<FileDescriptor>> CaptureFiles(pid_t pid, const SandboxRoot& root,
                                                 int control_fd) {
  std::string proc = "/proc/" + std::to_string(pid);
  EMBER_ASSIGN_OR_RETURN(auto names, ListDirectory(proc + "/fd"));
  std::vector<int> fds;
  for (const std::string& name : names) fds.push_back(std::stoi(name));
  std::sort(fds.begin(), fds.end());
  if (control_fd >= 0 && !std::binary_search(fds.begin(), fds.end(), control_fd)) {
    return Fail(ErrorCode::kInvalidArgument, "the control channel fd " +
                                                 std::to_string(control_fd) +
                                                 " is not open in process " + std::to_string(pid));
  }
  std::vector<FileDescriptor> files;
  for (int fd : fds) {
    std::string fd_path = proc + "/fd/" + std::to_string(fd);
    std::string what = "fd " + std::to_string(fd);
    auto link = ReadLink(fd_path);
    if (!link && link.error().sys_errno() == ENOENT)
      continue;  // closed meanwhile (a racing
                 // thread cannot: all stopped)
    EMBER_TRY(link);
    EMBER_ASSIGN_OR_RETURN(auto info_text, ReadFile(proc + "/fdinfo/" + std::to_string(fd)));
    EMBER_ASSIGN_OR_RETURN(auto info, proc::ParseFdinfo(info_text));
    FileDescriptor file;
    file.fd = fd;
    file.cloexec = (info.flags & O_CLOEXEC) != 0;
    file.open_flags = info.flags & ~(O_CREAT | O_TRUNC | O_EXCL | O_CLOEXEC);
    file.offset = info.pos;
    if (link->starts_with("anon_inode:")) {
      return Refuse(fd, DescribeAnonInode(*link), *link, "ember cannot checkpoint it");
    }
    struct stat st;
    if (::stat(fd_path.c_str(), &st) != 0) return FailErrno("stat " + fd_path);
    file.dev = st.st_dev;
    file.inode = st.st_ino;
    if (S_ISSOCK(st.st_mode)) {
      if (fd == control_fd) {
        file.kind = FileKind::kControlChannel;
        files.push_back(std::move(file));
        continue;
      }
      std::string desc = DescribeSocketFd(pid, st.st_ino);
      bool network = desc.starts_with("TCP") || desc.starts_with("UDP") || desc.starts_with("raw");
      return Refuse(fd, "a " + desc, *link,
                    network ? "ember cannot checkpoint open network connections"
                            : "ember cannot checkpoint sockets other than its control channel");
    }
    if (fd == control_fd) {
      return Fail(ErrorCode::kInvalidArgument,
                  "the control channel " + what + " is not a socket (" + *link + ")");
    }
    if (S_ISFIFO(st.st_mode)) {
      if (fd == 1 || fd == 2) {
        file.kind = FileKind::kPipe;
        files.push_back(std::move(file));
        continue;
      }
      return Refuse(fd, "a pipe", *link,
                    "ember reconnects only the log pipes on fds 1 and 2 at restore");
    }
    if (link->starts_with("/memfd:")) {
      return Refuse(fd, "a memfd", *link, "ember cannot checkpoint a file that has no path");
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISCHR(st.st_mode)) {
      return Refuse(fd, S_ISBLK(st.st_mode) ? "a block device" : "an unknown kind of file", *link,
                    "ember cannot checkpoint it");
    }
    file.kind = S_ISREG(st.st_mode)   ? FileKind::kRegular
                : S_ISDIR(st.st_mode) ? FileKind::kDirectory
                                      : FileKind::kDevice;
    EMBER_ASSIGN_OR_RETURN(auto rooted, ResolveInRoot(root, *link, st, what));
    file.path = rooted.path;
    files.push_back(std::move(file));
  }
  return files;
}

}  // namespace ember::snapshot
