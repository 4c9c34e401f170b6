// One sendmsg / recvmsg with file descriptors attached (SCM_RIGHTS), shared by every place that
// hands fds across a unix socket: the sandbox child's layer fd, the netns helper's namespaces,
// the template protocol's spawn frames. Allocation-free and async-signal-safe, so the children
// of clone (which must not allocate) use them too.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace ember::sys {

// At most this many fds travel with one message.
inline constexpr size_t kMaxPassedFds = 8;

// Sends `size` bytes with `fd_count` fds (none when 0), retrying EINTR; MSG_NOSIGNAL is always
// added to `flags`. Returns the bytes sent or -1 with errno (EINVAL for too many fds).
ssize_t SendWithFds(int sock, const void* data, size_t size, const int* fds, size_t fd_count,
                    int flags = 0) noexcept;

// Receives up to `size` bytes, retrying EINTR; fds that came along are stored in `fds` (at most
// `max_fds`, close-on-exec) and counted in *fd_count. *truncated is set when the kernel had to
// drop fds. Returns the bytes read (0 at EOF) or -1 with errno.
ssize_t ReceiveWithFds(int sock, void* data, size_t size, int* fds, size_t max_fds,
                       size_t* fd_count, bool* truncated, int flags = 0) noexcept;

// For a connected stream or seqpacket socket whose peer has closed: whether the peer closed with
// data of ours still unread (the kernel then sets ECONNRESET on our end; reading SO_ERROR clears
// it, so ask once). A closed peer that had read everything leaves no error.
bool PeerClosedWithDataUnread(int sock) noexcept;

}  // namespace ember::sys
