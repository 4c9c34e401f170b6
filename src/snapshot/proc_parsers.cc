#include "snapshot/proc_parsers.h"

#include <signal.h>
#include <sys/mman.h>

#include <charconv>
#include <cstdio>
#include <cstring>

namespace ember::snapshot::proc {
namespace {

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty()) lines.push_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

template <typename T>
bool Number(std::string_view s, T* out, int base = 10) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, base);
  return ec == std::errc() && ptr == s.data() + s.size();
}

tl::unexpected<Error> Malformed(std::string_view file, std::string_view line) {
  return Fail(ErrorCode::kCorrupt, "unexpected line in " + std::string(file) + ": '" +
                                       std::string(line.substr(0, 200)) + "'");
}

// "Key:\tvalue" -> value, or npos-like empty view with found=false.
bool Value(std::string_view line, std::string_view key, std::string_view* value) {
  if (line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != ':') {
    return false;
  }
  std::string_view rest = line.substr(key.size() + 1);
  while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
  *value = rest;
  return true;
}

}  // namespace

Result<std::vector<MapsEntry>> ParseMaps(std::string_view text) {
  std::vector<MapsEntry> entries;
  for (std::string_view line : Lines(text)) {
    // The path is everything after the inode, padded with spaces; it may itself contain spaces.
    std::vector<std::string_view> f = Fields(line);
    if (f.size() < 5) return Malformed("maps", line);
    MapsEntry e;
    size_t dash = f[0].find('-');
    size_t colon = f[3].find(':');
    if (dash == std::string_view::npos || colon == std::string_view::npos || f[1].size() != 4 ||
        !Number(f[0].substr(0, dash), &e.start, 16) || !Number(f[0].substr(dash + 1), &e.end, 16) ||
        !Number(f[2], &e.offset, 16) || !Number(f[3].substr(0, colon), &e.dev_major, 16) ||
        !Number(f[3].substr(colon + 1), &e.dev_minor, 16) || !Number(f[4], &e.inode)) {
      return Malformed("maps", line);
    }
    if (f[1][0] == 'r') e.prot |= PROT_READ;
    if (f[1][1] == 'w') e.prot |= PROT_WRITE;
    if (f[1][2] == 'x') e.prot |= PROT_EXEC;
    e.shared = f[1][3] == 's';
    if (f.size() > 5) {
      size_t at = static_cast<size_t>(f[5].data() - line.data());
      e.path = std::string(line.substr(at));
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

Result<std::map<uint64_t, VmFlags>> ParseSmapsVmFlags(std::string_view text) {
  std::map<uint64_t, VmFlags> out;
  bool have_area = false;
  uint64_t start = 0;
  for (std::string_view line : Lines(text)) {
    std::string_view value;
    if (Value(line, "VmFlags", &value)) {
      if (!have_area) return Malformed("smaps", line);
      VmFlags flags;
      for (std::string_view flag : Fields(value)) {
        if (flag == "sh") flags.shared = true;
        if (flag == "gd") flags.growsdown = true;
        if (flag == "dd") flags.dontdump = true;
        if (flag == "io") flags.io = true;
        if (flag == "pf") flags.pfnmap = true;
      }
      out[start] = flags;
      continue;
    }
    // An area header starts with "start-end " (hex); the "Key: value" lines never contain '-'
    // before their first space.
    size_t dash = line.find('-');
    size_t space = line.find(' ');
    if (dash != std::string_view::npos && dash < space) {
      if (!Number(line.substr(0, dash), &start, 16)) return Malformed("smaps", line);
      have_area = true;
    }
  }
  return out;
}

Result<StatFields> ParseStat(std::string_view text) {
  // comm (field 2) may hold spaces and parentheses; fields resume after the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string_view::npos) return Malformed("stat", text);
  std::vector<std::string_view> f = Fields(text.substr(close + 1));
  // f[0] is field 3 (state); field n is f[n - 3]. Field 51 (env_end) must be there.
  if (f.size() < 49 || f[0].size() != 1) return Malformed("stat", text);
  StatFields out;
  out.state = f[0][0];
  auto field = [&](int n, uint64_t* value) { return Number(f[n - 3], value); };
  MmBounds& mm = out.mm;
  if (!field(26, &mm.start_code) || !field(27, &mm.end_code) || !field(28, &mm.start_stack) ||
      !field(45, &mm.start_data) || !field(46, &mm.end_data) || !field(47, &mm.start_brk) ||
      !field(48, &mm.arg_start) || !field(49, &mm.arg_end) || !field(50, &mm.env_start) ||
      !field(51, &mm.env_end)) {
    return Malformed("stat", text);
  }
  return out;
}

Result<StatusFields> ParseStatus(std::string_view text) {
  StatusFields out;
  for (std::string_view line : Lines(text)) {
    std::string_view value;
    bool ok = true;
    if (Value(line, "Umask", &value)) {
      ok = Number(value, &out.umask, 8);
    } else if (Value(line, "SigPnd", &value)) {
      ok = Number(value, &out.sig_pnd, 16);
    } else if (Value(line, "ShdPnd", &value)) {
      ok = Number(value, &out.shd_pnd, 16);
    } else if (Value(line, "SigBlk", &value)) {
      ok = Number(value, &out.sig_blk, 16);
    } else if (Value(line, "Threads", &value)) {
      ok = Number(value, &out.threads);
    } else if (Value(line, "NSpid", &value)) {
      for (std::string_view pid : Fields(value)) {
        pid_t p = 0;
        ok = ok && Number(pid, &p);
        out.ns_pid.push_back(p);
      }
    }
    if (!ok) return Malformed("status", line);
  }
  if (out.ns_pid.empty()) return Fail(ErrorCode::kCorrupt, "status has no NSpid line");
  return out;
}

Result<FdInfo> ParseFdinfo(std::string_view text) {
  FdInfo out;
  bool have_pos = false, have_flags = false;
  for (std::string_view line : Lines(text)) {
    std::string_view value;
    bool ok = true;
    if (Value(line, "pos", &value)) {
      ok = have_pos = Number(value, &out.pos);
    } else if (Value(line, "flags", &value)) {
      ok = have_flags = Number(value, &out.flags, 8);
    } else if (Value(line, "mnt_id", &value)) {
      ok = Number(value, &out.mnt_id);
    } else if (Value(line, "ino", &value)) {
      ok = Number(value, &out.ino);
    }
    if (!ok) return Malformed("fdinfo", line);
  }
  if (!have_pos || !have_flags) return Fail(ErrorCode::kCorrupt, "fdinfo lacks pos or flags");
  return out;
}

Result<std::vector<TimerInfo>> ParseTimers(std::string_view text) {
  // Four lines per timer:  ID: 0 / signal: 10/0000000000001234 / notify: signal/pid.21452 /
  // ClockID: 1
  std::vector<TimerInfo> timers;
  for (std::string_view line : Lines(text)) {
    std::string_view value;
    bool ok = true;
    if (Value(line, "ID", &value)) {
      timers.emplace_back();
      ok = Number(value, &timers.back().id);
    } else if (timers.empty()) {
      ok = false;
    } else if (Value(line, "signal", &value)) {
      size_t slash = value.find('/');
      ok = slash != std::string_view::npos &&
           Number(value.substr(0, slash), &timers.back().signal) &&
           Number(value.substr(slash + 1), &timers.back().sigev_value, 16);
    } else if (Value(line, "notify", &value)) {
      size_t slash = value.find('/');
      size_t dot = value.find('.');
      ok = slash != std::string_view::npos && dot != std::string_view::npos && dot > slash;
      if (ok) {
        std::string_view how = value.substr(0, slash);
        std::string_view whom = value.substr(slash + 1, dot - slash - 1);
        int notify = how == "signal"   ? SIGEV_SIGNAL
                     : how == "none"   ? SIGEV_NONE
                     : how == "thread" ? SIGEV_THREAD
                                       : -1;
        ok = notify >= 0 && (whom == "pid" || whom == "tid") &&
             Number(value.substr(dot + 1), &timers.back().notify_pid);
        timers.back().notify = notify | (whom == "tid" ? SIGEV_THREAD_ID : 0);
      }
    } else if (Value(line, "ClockID", &value)) {
      ok = Number(value, &timers.back().clock_id);
    }
    if (!ok) return Malformed("timers", line);
  }
  return timers;
}

namespace {

// "0100007F:1F90" (IPv4, little-endian word) or 32 hex digits (IPv6) -> printable.
std::string InetAddress(std::string_view hex) {
  size_t colon = hex.find(':');
  if (colon == std::string_view::npos) return std::string(hex);
  unsigned port = 0;
  Number(hex.substr(colon + 1), &port, 16);
  std::string_view addr = hex.substr(0, colon);
  char buf[96];
  if (addr.size() == 8) {
    uint32_t a = 0;
    Number(addr, &a, 16);
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u:%u", a & 0xff, (a >> 8) & 0xff, (a >> 16) & 0xff,
                  a >> 24, port);
    return buf;
  }
  return "[" + std::string(addr) + "]:" + std::to_string(port);
}

std::string TcpState(std::string_view hex) {
  static constexpr const char* kStates[] = {"?",          "ESTABLISHED", "SYN_SENT",  "SYN_RECV",
                                            "FIN_WAIT1",  "FIN_WAIT2",   "TIME_WAIT", "CLOSE",
                                            "CLOSE_WAIT", "LAST_ACK",    "LISTEN",    "CLOSING"};
  unsigned state = 0;
  if (!Number(hex, &state, 16) || state >= std::size(kStates)) return std::string(hex);
  return kStates[state];
}

}  // namespace

std::string DescribeSocket(std::string_view table, std::string_view text, uint64_t inode) {
  // Index of the inode column in a data line of each table (headers do not align with data).
  int column = table == "unix"      ? 6
               : table == "netlink" ? 9
               : table == "packet"  ? 8
               : table.starts_with("tcp") || table.starts_with("udp") || table.starts_with("raw")
                   ? 9
                   : -1;
  if (column < 0) return "";
  std::vector<std::string_view> lines = Lines(text);
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string_view> f = Fields(lines[i]);
    uint64_t found = 0;
    if (f.size() <= static_cast<size_t>(column) || !Number(f[column], &found) || found != inode) {
      continue;
    }
    if (table == "unix") {
      std::string kind = f[4] == "0001"   ? "stream"
                         : f[4] == "0002" ? "datagram"
                         : f[4] == "0005" ? "seqpacket"
                                          : "type " + std::string(f[4]);
      std::string path = f.size() > 7 ? " " + std::string(f[7]) : "";
      return "unix " + kind + " socket" + path;
    }
    if (table == "netlink" || table == "packet") return std::string(table) + " socket";
    std::string proto = table.starts_with("tcp") ? "TCP" : table.starts_with("udp") ? "UDP" : "raw";
    if (table.ends_with("6")) proto += "v6";
    std::string desc = proto + " socket " + InetAddress(f[1]) + " -> " + InetAddress(f[2]);
    if (table.starts_with("tcp")) desc += " " + TcpState(f[3]);
    return desc;
  }
  return "";
}

std::string SignalName(int sig) {
  if (sig >= SIGRTMIN && sig <= SIGRTMAX) {
    return sig == SIGRTMIN ? "SIGRTMIN" : "SIGRTMIN+" + std::to_string(sig - SIGRTMIN);
  }
  if (sig >= 32 && sig < SIGRTMIN) return "signal " + std::to_string(sig) + " (glibc internal)";
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? "SIG" + std::string(abbrev) : "signal " + std::to_string(sig);
}

int FirstSignal(uint64_t set) { return set == 0 ? 0 : __builtin_ctzll(set) + 1; }

}  // namespace ember::snapshot::proc
