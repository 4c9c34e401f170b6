// The network-namespace pool's helper process (see netns_pool.h): forked from the pool's thread,
// it joins the owner's user namespace once, then makes one network namespace per request.
//
// Protocol over a SOCK_SEQPACKET socketpair: at start the helper sends one NetnsHelperReply
// (kReady, or the step that failed). Then for every byte the pool writes it answers with one
// reply: kCreated with the namespace's fd attached (SCM_RIGHTS), or the failed step and its
// errno. EOF on the socket (the pool is gone) ends the helper.
//
// Everything here runs after a fork of a multi-threaded process: raw syscalls only, no
// allocation, no locks, no logging.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace ember::sandbox {

enum class NetnsHelperStep : int32_t {
  kReady,              // start-up done
  kCreated,            // a namespace, attached to the message
  kJoinUserNamespace,  // setns into the owner's user namespace
  kUnshareNetwork,     // unshare(CLONE_NEWNET)
  kLoopback,           // bring `lo` up
  kOpenNamespace,      // open /proc/self/ns/net
};

struct NetnsHelperReply {
  NetnsHelperStep step = NetnsHelperStep::kReady;
  int32_t error = 0;  // errno of the failed step; 0 for kReady and kCreated
};

// For the pool's error messages: what the step did, e.g. "unshare(CLONE_NEWNET)".
const char* NetnsHelperStepName(NetnsHelperStep step);

struct NetnsHelperArgs {
  int sock = -1;          // the helper's end of the socketpair
  int user_ns = -1;       // the owner's user namespace; -1: it is ours already, stay
  bool loopback = false;  // bring `lo` up in every namespace
  pid_t parent = -1;      // the pool's process, to notice it died before PR_SET_PDEATHSIG
};

// The helper's whole life; only returns through _exit.
[[noreturn]] void RunNetnsHelper(const NetnsHelperArgs& args) noexcept;

}  // namespace ember::sandbox
