/*
 * UDP over IPv4: open, batched receive with recvmmsg (through the shared reader) and batched send with sendmmsg.
 *
 * Addresses cross the boundary as host-order u32 (127.0.0.1 is 0x7f000001) and ports as u16, in typed arrays the
 * caller owns, so no string or object is made per datagram. IPv6 is not supported yet: it needs 128-bit addresses
 * in those arrays.
 */
#include "weft.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Socket buffers large enough to absorb a burst of a few thousand full-size datagrams while JS is busy; the
 * kernel's default (~200 KiB) drops under load. SO_*BUFFORCE works as root beyond net.core.[rw]mem_max; otherwise
 * the plain option is capped at that maximum, silently. */
#define SOCKET_BUFFER_BYTES (4 * 1024 * 1024)

/* Datagrams per sendmmsg call: its arrays live on the stack (~24 KiB). */
#define SEND_CHUNK 256

static void grow_buffer(int fd, int force_option, int option) {
  int bytes = SOCKET_BUFFER_BYTES;
  if (setsockopt(fd, SOL_SOCKET, force_option, &bytes, sizeof bytes) != 0)
    setsockopt(fd, SOL_SOCKET, option, &bytes, sizeof bytes);
}

static int buffer_bytes(int fd, int option) {
  int bytes = 0;
  socklen_t len = sizeof bytes;
  getsockopt(fd, SOL_SOCKET, option, &bytes, &len);
  return bytes;
}

/* udpOpen(bindAddress, port): {fd, port, receiveBufferBytes, sendBufferBytes}. Port 0 picks a free one. */
napi_value weft_udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  char address[INET_ADDRSTRLEN + 1];
  char what[128];
  uint32_t port;
  struct sockaddr_in sin;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  WEFT_TRY(weft_arg_string(env, argv[0], "bindAddress", address, sizeof address));
  WEFT_TRY(weft_arg_u32(env, argv[1], "port", &port));
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  if (port > 65535 || inet_pton(AF_INET, address, &sin.sin_addr) != 1) {
    weft_throw_arg(env, "bindAddress must be a dotted IPv4 address and port an integer in [0, 65535]");
    return NULL;
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    weft_throw_errno(env, "socket", errno);
    return NULL;
  }
  grow_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF);
  grow_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF);
  if (bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
    int err = errno;
    close(fd);
    snprintf(what, sizeof what, "bind %s:%u", address, port);
    weft_throw_errno(env, what, err);
    return NULL;
  }
  socklen_t len = sizeof sin;
  getsockname(fd, (struct sockaddr *)&sin, &len);
  napi_create_object(env, &out);
  weft_set_number(env, out, "fd", fd);
  weft_set_number(env, out, "port", ntohs(sin.sin_port));
  /* Linux reports twice the size set (it doubles for its bookkeeping); report what it says. */
  weft_set_number(env, out, "receiveBufferBytes", buffer_bytes(fd, SO_RCVBUF));
  weft_set_number(env, out, "sendBufferBytes", buffer_bytes(fd, SO_SNDBUF));
  return out;
}

typedef struct udp_scratch {
  struct mmsghdr *msgs;
  struct iovec *iovs;
  struct sockaddr_in *names;
} udp_scratch;

static uint32_t udp_fill(weft_reader *r) {
  udp_scratch *s = r->scratch;
  for (uint32_t i = 0; i < r->slots; i++) s->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
  int k;
  do {
    k = recvmmsg(r->fd, s->msgs, r->slots, MSG_DONTWAIT, NULL);
  } while (k < 0 && errno == EINTR);
  if (k < 0) {
    if (errno != EAGAIN) r->read_errors++;
    r->is_drained = 1;
    return 0;
  }
  if ((uint32_t)k < r->slots) r->is_drained = 1;
  uint32_t n = 0;
  for (int i = 0; i < k; i++) {
    struct msghdr *h = &s->msgs[i].msg_hdr;
    if (h->msg_flags & MSG_TRUNC) { /* larger than a slot: the tail is gone, so the datagram is useless */
      r->truncated_drops++;
      continue;
    }
    r->offsets[n] = (uint32_t)i * r->slot_bytes + r->headroom;
    r->lengths[n] = s->msgs[i].msg_len;
    r->addrs[n] = ntohl(s->names[i].sin_addr.s_addr);
    r->ports[n] = ntohs(s->names[i].sin_port);
    n++;
  }
  return n;
}

/*
 * udpReaderStart(fd, buffer, offsets, lengths, addrs, ports, slotBytes, headroomBytes, onBatch(count)): reader
 * handle. addrs (Uint32Array) and ports (Uint16Array) need one entry per slot.
 */
napi_value weft_udp_reader_start(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  uint32_t fd;
  size_t addrs_len, ports_len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  WEFT_TRY(weft_arg_u32(env, argv[0], "fd", &fd));
  weft_reader *r = calloc(1, sizeof *r);
  if (!r) {
    weft_throw_errno(env, "udpReaderStart", ENOMEM);
    return NULL;
  }
  r->fd = (int)fd;
  r->fill = udp_fill;
  if (weft_reader_args(env, r, argv[1], argv[2], argv[3], argv[6], argv[7]) != 0 ||
      weft_arg_u32s(env, argv[4], "addrs", &r->addrs, &addrs_len) != 0 ||
      weft_arg_u16s(env, argv[5], "ports", &r->ports, &ports_len) != 0 ||
      (addrs_len < r->slots || ports_len < r->slots
           ? (weft_throw_arg(env, "addrs and ports need one entry per slot"), 1)
           : 0)) {
    for (int i = 0; i < r->ref_count; i++) napi_delete_reference(env, r->refs[i]);
    free(r);
    return NULL;
  }
  napi_create_reference(env, argv[4], 1, &r->refs[r->ref_count++]);
  napi_create_reference(env, argv[5], 1, &r->refs[r->ref_count++]);
  /* One allocation for the three arrays, set up once: recvmmsg only rewrites lengths, flags and names. */
  size_t bytes = r->slots * (sizeof(struct mmsghdr) + sizeof(struct iovec) + sizeof(struct sockaddr_in));
  udp_scratch *s = calloc(1, sizeof *s + bytes);
  if (!s) {
    for (int i = 0; i < r->ref_count; i++) napi_delete_reference(env, r->refs[i]);
    free(r);
    weft_throw_errno(env, "udpReaderStart", ENOMEM);
    return NULL;
  }
  s->msgs = (struct mmsghdr *)(s + 1);
  s->iovs = (struct iovec *)(s->msgs + r->slots);
  s->names = (struct sockaddr_in *)(s->iovs + r->slots);
  for (uint32_t i = 0; i < r->slots; i++) {
    s->iovs[i].iov_base = r->buffer + (size_t)i * r->slot_bytes + r->headroom;
    s->iovs[i].iov_len = r->slot_bytes - r->headroom;
    s->msgs[i].msg_hdr.msg_name = &s->names[i];
    s->msgs[i].msg_hdr.msg_iov = &s->iovs[i];
    s->msgs[i].msg_hdr.msg_iovlen = 1;
  }
  r->scratch = s;
  return weft_reader_start(env, r, argv[8]);
}

/*
 * udpSendBatch(fd, buffer, offsets, lengths, addrs, ports, count, drops): datagrams sent, with sendmmsg in chunks
 * of SEND_CHUNK. drops[0] += datagrams dropped because the socket buffer was full (EAGAIN: the rest of the batch,
 * since retrying now would only spin), drops[1] += datagrams refused one by one (bad range, EMSGSIZE, EHOSTUNREACH,
 * EPERM from a firewall): sendmmsg stops at the first failing message, which we skip and continue after.
 */
napi_value weft_udp_send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], out;
  uint32_t fd, count;
  uint8_t *buffer;
  uint32_t *offsets, *lengths, *addrs;
  uint16_t *ports;
  double *drops;
  size_t buffer_len, offsets_len, lengths_len, addrs_len, ports_len, drops_len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  WEFT_TRY(weft_arg_u32(env, argv[0], "fd", &fd));
  WEFT_TRY(weft_arg_buffer(env, argv[1], "buffer", &buffer, &buffer_len));
  WEFT_TRY(weft_arg_u32s(env, argv[2], "offsets", &offsets, &offsets_len));
  WEFT_TRY(weft_arg_u32s(env, argv[3], "lengths", &lengths, &lengths_len));
  WEFT_TRY(weft_arg_u32s(env, argv[4], "addrs", &addrs, &addrs_len));
  WEFT_TRY(weft_arg_u16s(env, argv[5], "ports", &ports, &ports_len));
  WEFT_TRY(weft_arg_u32(env, argv[6], "count", &count));
  WEFT_TRY(weft_arg_f64s(env, argv[7], "drops", &drops, &drops_len));
  if (count > offsets_len || count > lengths_len || count > addrs_len || count > ports_len || drops_len < 2) {
    weft_throw_arg(env, "count must not exceed the length of offsets, lengths, addrs or ports; drops needs 2 entries");
    return NULL;
  }
  struct mmsghdr msgs[SEND_CHUNK];
  struct iovec iovs[SEND_CHUNK];
  struct sockaddr_in names[SEND_CHUNK];
  uint32_t sent = 0;
  uint32_t next = 0; /* first datagram not yet handed to the kernel */
  while (next < count) {
    uint32_t n = 0;
    /* Fill a chunk, skipping (and counting) datagrams whose range lies outside the buffer. */
    while (n < SEND_CHUNK && next < count) {
      uint32_t i = next++;
      if ((uint64_t)offsets[i] + lengths[i] > buffer_len) {
        drops[1]++;
        continue;
      }
      iovs[n].iov_base = buffer + offsets[i];
      iovs[n].iov_len = lengths[i];
      memset(&names[n], 0, sizeof names[n]);
      names[n].sin_family = AF_INET;
      names[n].sin_addr.s_addr = htonl(addrs[i]);
      names[n].sin_port = htons(ports[i]);
      memset(&msgs[n], 0, sizeof msgs[n]);
      msgs[n].msg_hdr.msg_name = &names[n];
      msgs[n].msg_hdr.msg_namelen = sizeof names[n];
      msgs[n].msg_hdr.msg_iov = &iovs[n];
      msgs[n].msg_hdr.msg_iovlen = 1;
      n++;
    }
    uint32_t done = 0;
    int is_full = 0;
    while (done < n) {
      int k = sendmmsg((int)fd, msgs + done, n - done, MSG_DONTWAIT);
      if (k > 0) {
        done += (uint32_t)k;
        sent += (uint32_t)k;
      } else if (errno == EINTR) {
        continue;
      } else if (errno == EAGAIN) {
        is_full = 1;
        break;
      } else {
        drops[1]++;
        done++;
      }
    }
    if (is_full) {
      /* The unsent rest of this chunk plus everything after it, minus bad ranges already counted above. */
      drops[0] += n - done;
      for (uint32_t i = next; i < count; i++) {
        if ((uint64_t)offsets[i] + lengths[i] > buffer_len) drops[1]++;
        else drops[0]++;
      }
      break;
    }
  }
  napi_create_uint32(env, sent, &out);
  return out;
}
