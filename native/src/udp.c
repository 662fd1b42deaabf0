/*
 * UDP over IPv4 and IPv6: open, batched receive with recvmmsg (through the shared reader) and batched send with
 * sendmmsg.
 *
 * Addresses cross the boundary as four host-order u32 words per datagram (the 128-bit IPv6 address, most
 * significant word first) and ports as u16, in typed arrays the caller owns, so no string or object is made per
 * datagram. An IPv4 address is the IPv4-mapped form ::ffff:a.b.c.d, so its last word is the familiar host-order u32
 * (127.0.0.1 is [0, 0, 0xffff, 0x7f000001]). A socket bound to an IPv6 address is dual-stack (IPV6_V6ONLY off):
 * bound to :: it sends and receives both families; one bound to an IPv4 address reaches IPv4 peers only.
 *
 * Both directions use UDP segmentation offload where the kernel has it, invisibly to the caller: a send batch's
 * runs of equal-size datagrams to one destination, packed back to back, go as one message with UDP_SEGMENT (GSO,
 * Linux >= 4.18: the kernel splits it late, or never on the way through veth and loopback), and the reader turns
 * on UDP_GRO (Linux >= 5.0) and splits each coalesced message back into its datagrams.
 */
#include "weft.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Socket buffers large enough to absorb a burst of a few thousand full-size datagrams while JS is busy; the
 * kernel's default (~200 KiB) drops under load. SO_*BUFFORCE works as root beyond net.core.[rw]mem_max; otherwise
 * the plain option is capped at that maximum, silently. */
#define SOCKET_BUFFER_BYTES (4 * 1024 * 1024)

/* Messages per sendmmsg call: its arrays live on the stack (~32 KiB). */
#define SEND_CHUNK 256

/* At most this many datagrams, and bytes, in one GSO message: the kernel's limits are 64 segments (128 since 6.9)
 * and a 64 KiB IP packet. */
#define GSO_MAX_SEGMENTS 64
#define GSO_MAX_BYTES 65000

/* Control buffer of one received message: room for the UDP_GRO cmsg (an int) and a spare one. */
#define RECV_CONTROL_BYTES 64

/* Control buffer of one sent message: the UDP_SEGMENT cmsg (a u16). */
typedef union gso_control {
  char bytes[CMSG_SPACE(sizeof(uint16_t))];
  struct cmsghdr align;
} gso_control;

/* The per-socket GSO state the caller keeps in gso[0] (see udpSendBatch). */
#define GSO_UNTRIED 0
#define GSO_WORKS 1
#define GSO_REFUSED (-1)

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

/* An IPv4 or IPv6 socket address. */
typedef union udp_name {
  struct sockaddr sa;
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
  uint64_t align[4]; /* 32 bytes: keeps the arrays laid out after an array of these 8-aligned */
} udp_name;

/* Four host-order words (see the top of this file) into a socket address of `family`. 0, or -1 when an AF_INET
 * socket is asked to reach an IPv6 address. */
static int words_to_name(const uint32_t *w, uint16_t port, int family, udp_name *name, socklen_t *len) {
  memset(name, 0, sizeof *name);
  if (family == AF_INET) {
    if (w[0] != 0 || w[1] != 0 || w[2] != 0xffff) return -1;
    name->v4.sin_family = AF_INET;
    name->v4.sin_addr.s_addr = htonl(w[3]);
    name->v4.sin_port = htons(port);
    *len = sizeof name->v4;
    return 0;
  }
  name->v6.sin6_family = AF_INET6;
  for (int k = 0; k < 4; k++) {
    uint32_t be = htonl(w[k]);
    memcpy(&name->v6.sin6_addr.s6_addr[4 * k], &be, 4);
  }
  name->v6.sin6_port = htons(port);
  *len = sizeof name->v6;
  return 0;
}

/* A received socket address into four host-order words and a port. */
static void name_to_words(const udp_name *name, uint32_t *w, uint16_t *port) {
  if (name->sa.sa_family == AF_INET6) {
    for (int k = 0; k < 4; k++) {
      uint32_t be;
      memcpy(&be, &name->v6.sin6_addr.s6_addr[4 * k], 4);
      w[k] = ntohl(be);
    }
    *port = ntohs(name->v6.sin6_port);
  } else {
    w[0] = w[1] = 0;
    w[2] = 0xffff;
    w[3] = ntohl(name->v4.sin_addr.s_addr);
    *port = ntohs(name->v4.sin_port);
  }
}

/*
 * udpOpen(bindAddress, port): {fd, port, family, receiveBufferBytes, sendBufferBytes}. Port 0 picks a free one. An
 * address with a ':' opens an IPv6 socket with IPV6_V6ONLY off (family 6: "::" takes IPv4 too, as ::ffff:a.b.c.d);
 * a dotted one an IPv4 socket (family 4).
 */
napi_value weft_udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  char address[INET6_ADDRSTRLEN + 1];
  char what[128];
  uint32_t port;
  udp_name name;
  socklen_t name_len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  WEFT_TRY(weft_arg_string(env, argv[0], "bindAddress", address, sizeof address));
  WEFT_TRY(weft_arg_u32(env, argv[1], "port", &port));
  memset(&name, 0, sizeof name);
  int family = strchr(address, ':') ? AF_INET6 : AF_INET;
  int parsed;
  if (family == AF_INET6) {
    name.v6.sin6_family = AF_INET6;
    name.v6.sin6_port = htons((uint16_t)port);
    parsed = inet_pton(AF_INET6, address, &name.v6.sin6_addr);
    name_len = sizeof name.v6;
  } else {
    name.v4.sin_family = AF_INET;
    name.v4.sin_port = htons((uint16_t)port);
    parsed = inet_pton(AF_INET, address, &name.v4.sin_addr);
    name_len = sizeof name.v4;
  }
  if (port > 65535 || parsed != 1) {
    weft_throw_arg(env, "bindAddress must be an IPv4 or IPv6 address and port an integer in [0, 65535]");
    return NULL;
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    weft_throw_errno(env, "socket", errno);
    return NULL;
  }
  if (family == AF_INET6) {
    int off = 0; /* dual-stack whatever net.ipv6.bindv6only says */
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  /* Don't Fragment on every datagram, never fragmented here, and no path MTU taken from ICMP: a datagram too big for
   * the device fails with EMSGSIZE, one too big for a link further on vanishes. The router sizes datagrams per path
   * from its own probes (router/path-mtu.ts) instead of trusting ICMP, which tunnels and firewalls often lose. For a
   * dual-stack socket both options apply: SOL_IP to its IPv4 traffic, SOL_IPV6 to its IPv6. */
  int probe = IP_PMTUDISC_PROBE;
  setsockopt(fd, SOL_IP, IP_MTU_DISCOVER, &probe, sizeof probe);
  if (family == AF_INET6) {
    int probe6 = IPV6_PMTUDISC_PROBE;
    setsockopt(fd, SOL_IPV6, IPV6_MTU_DISCOVER, &probe6, sizeof probe6);
  }
  grow_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF);
  grow_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF);
  if (bind(fd, &name.sa, name_len) != 0) {
    int err = errno;
    close(fd);
    snprintf(what, sizeof what, family == AF_INET6 ? "bind [%s]:%u" : "bind %s:%u", address, port);
    weft_throw_errno(env, what, err);
    return NULL;
  }
  socklen_t len = sizeof name;
  getsockname(fd, &name.sa, &len);
  napi_create_object(env, &out);
  weft_set_number(env, out, "fd", fd);
  weft_set_number(env, out, "port", ntohs(family == AF_INET6 ? name.v6.sin6_port : name.v4.sin_port));
  weft_set_number(env, out, "family", family == AF_INET6 ? 6 : 4);
  /* Linux reports twice the size set (it doubles for its bookkeeping); report what it says. */
  weft_set_number(env, out, "receiveBufferBytes", buffer_bytes(fd, SO_RCVBUF));
  weft_set_number(env, out, "sendBufferBytes", buffer_bytes(fd, SO_SNDBUF));
  return out;
}

typedef struct udp_scratch {
  struct mmsghdr *msgs;
  struct iovec *iovs;
  udp_name *names;
  char *controls; /* RECV_CONTROL_BYTES per slot */
  /* Messages of the last recvmmsg not yet delivered (the arrays filled up): next_msg < msg_count, and the first
   * next_byte bytes of message next_msg are already delivered. */
  uint32_t msg_count, next_msg, next_byte;
} udp_scratch;

/* The segment size of a GRO-coalesced message, or 0 when the kernel did not coalesce it. */
static uint32_t gro_size(struct msghdr *h) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int size;
      memcpy(&size, CMSG_DATA(c), sizeof size);
      return size > 0 ? (uint32_t)size : 0;
    }
  }
  return 0;
}

/*
 * recvmmsg into the slots, then one entry per datagram: a GRO message of N segments becomes N entries lying back to
 * back in its slot (the headroom is in front of the message, not of each datagram). When the entries run out, the
 * rest stays in the slots for the next call (has_pending), which delivers it before reading again.
 */
static uint32_t udp_fill(weft_reader *r) {
  udp_scratch *s = r->scratch;
  if (s->next_msg >= s->msg_count) {
    for (uint32_t i = 0; i < r->slots; i++) {
      s->msgs[i].msg_hdr.msg_namelen = sizeof(udp_name);
      s->msgs[i].msg_hdr.msg_controllen = RECV_CONTROL_BYTES;
    }
    int k;
    do {
      k = recvmmsg(r->fd, s->msgs, r->slots, MSG_DONTWAIT, NULL);
    } while (k < 0 && errno == EINTR);
    if (k < 0) {
      if (errno != EAGAIN) r->read_errors++;
      r->is_drained = 1;
      r->has_pending = 0;
      return 0;
    }
    if ((uint32_t)k < r->slots) r->is_drained = 1;
    s->msg_count = (uint32_t)k;
    s->next_msg = 0;
    s->next_byte = 0;
  }
  uint32_t n = 0;
  for (; s->next_msg < s->msg_count; s->next_msg++, s->next_byte = 0) {
    uint32_t i = s->next_msg;
    struct msghdr *h = &s->msgs[i].msg_hdr;
    if (h->msg_flags & MSG_TRUNC) { /* larger than a slot: the tail is gone, so the datagram is useless */
      r->truncated_drops++;
      continue;
    }
    uint32_t len = s->msgs[i].msg_len;
    uint32_t segment = gro_size(h);
    if (segment == 0 || segment > len) segment = len;
    uint32_t base = i * r->slot_bytes + r->headroom;
    uint32_t addr[4];
    uint16_t port;
    name_to_words(&s->names[i], addr, &port);
    do { /* at least one entry: a zero-length datagram is delivered too */
      if (n == r->entries) {
        r->has_pending = 1;
        return n;
      }
      uint32_t take = len - s->next_byte < segment ? len - s->next_byte : segment;
      r->offsets[n] = base + s->next_byte;
      r->lengths[n] = take;
      memcpy(&r->addrs[4 * n], addr, sizeof addr);
      r->ports[n] = port;
      n++;
      s->next_byte += take;
    } while (s->next_byte < len);
  }
  r->has_pending = 0;
  return n;
}

/*
 * udpReaderStart(fd, buffer, offsets, lengths, addrs, ports, slotBytes, headroomBytes, onBatch(count)): reader
 * handle. The receive slots are buffer.length / slotBytes (at most offsets.length); offsets, lengths and ports
 * (Uint16Array) need at least one entry per slot and as many each, addrs (Uint32Array) four words per entry, and
 * more entries let a
 * batch carry more of the datagrams GRO coalesced (64 per slot holds every one). Turns UDP_GRO on for the socket
 * (ignored where the kernel lacks it), so a slot must hold a whole coalesced message: slotBytes >= headroom + 65507.
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
  if (weft_reader_args(env, r, argv[1], argv[2], argv[3], argv[6], argv[7], 1) != 0 ||
      weft_arg_u32s(env, argv[4], "addrs", &r->addrs, &addrs_len) != 0 ||
      weft_arg_u16s(env, argv[5], "ports", &r->ports, &ports_len) != 0 ||
      (addrs_len < 4 * (size_t)r->entries || ports_len < r->entries
           ? (weft_throw_arg(env, "addrs needs four words and ports one entry per offsets entry"), 1)
           : 0)) {
    for (int i = 0; i < r->ref_count; i++) napi_delete_reference(env, r->refs[i]);
    free(r);
    return NULL;
  }
  napi_create_reference(env, argv[4], 1, &r->refs[r->ref_count++]);
  napi_create_reference(env, argv[5], 1, &r->refs[r->ref_count++]);
  /* One allocation for the four arrays, set up once: recvmmsg only rewrites lengths, flags, names and controls. */
  size_t bytes = r->slots * (sizeof(struct mmsghdr) + sizeof(struct iovec) + sizeof(udp_name) +
                             RECV_CONTROL_BYTES);
  udp_scratch *s = calloc(1, sizeof *s + bytes);
  if (!s) {
    for (int i = 0; i < r->ref_count; i++) napi_delete_reference(env, r->refs[i]);
    free(r);
    weft_throw_errno(env, "udpReaderStart", ENOMEM);
    return NULL;
  }
  s->msgs = (struct mmsghdr *)(s + 1);
  s->iovs = (struct iovec *)(s->msgs + r->slots);
  s->names = (udp_name *)(s->iovs + r->slots);
  s->controls = (char *)(s->names + r->slots); /* 8-aligned: every element above is a multiple of 8 bytes */
  for (uint32_t i = 0; i < r->slots; i++) {
    s->iovs[i].iov_base = r->buffer + (size_t)i * r->slot_bytes + r->headroom;
    s->iovs[i].iov_len = r->slot_bytes - r->headroom;
    s->msgs[i].msg_hdr.msg_name = &s->names[i];
    s->msgs[i].msg_hdr.msg_iov = &s->iovs[i];
    s->msgs[i].msg_hdr.msg_iovlen = 1;
    s->msgs[i].msg_hdr.msg_control = s->controls + (size_t)i * RECV_CONTROL_BYTES;
  }
  r->scratch = s;
  int on = 1;
  setsockopt(r->fd, SOL_UDP, UDP_GRO, &on, sizeof on); /* best effort: without it, one datagram per message */
  return weft_reader_start(env, r, argv[8]);
}

/* Send datagrams [first, first + count) to `name` one message each; used when the kernel refused them as one GSO
 * message. Returns datagrams sent; *is_full is set, and the unsent rest counted in drops[0], on EAGAIN. */
static uint32_t send_plain(int fd, uint8_t *buffer, const uint32_t *offsets, const uint32_t *lengths,
                           udp_name *name, socklen_t name_len, uint32_t first, uint32_t count, double *drops, int *is_full) {
  struct mmsghdr msgs[GSO_MAX_SEGMENTS];
  struct iovec iovs[GSO_MAX_SEGMENTS];
  memset(msgs, 0, sizeof msgs[0] * count);
  for (uint32_t j = 0; j < count; j++) {
    iovs[j].iov_base = buffer + offsets[first + j];
    iovs[j].iov_len = lengths[first + j];
    msgs[j].msg_hdr.msg_name = name;
    msgs[j].msg_hdr.msg_namelen = name_len;
    msgs[j].msg_hdr.msg_iov = &iovs[j];
    msgs[j].msg_hdr.msg_iovlen = 1;
  }
  uint32_t done = 0, sent = 0;
  while (done < count) {
    int k = sendmmsg(fd, msgs + done, count - done, MSG_DONTWAIT);
    if (k > 0) {
      done += (uint32_t)k;
      sent += (uint32_t)k;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN) {
      drops[0] += count - done;
      *is_full = 1;
      break;
    } else {
      drops[1]++;
      done++;
    }
  }
  return sent;
}

/*
 * udpSendBatch(fd, buffer, offsets, lengths, addrs, ports, count, drops[, gso[, family]]): datagrams sent, with
 * sendmmsg in chunks of SEND_CHUNK messages. Datagram i goes to the address in addrs[4i .. 4i+4) (four words, see the
 * top of this file) and ports[i]; `family` is the socket's (4, the default, or 6, from udpOpen): an IPv4 socket
 * refuses a datagram to an IPv6 address (counted in drops[1]). drops[0] += datagrams dropped because the socket buffer was full (EAGAIN: the rest
 * of the batch, since retrying now would only spin), drops[1] += datagrams refused one by one (bad range, EMSGSIZE,
 * EHOSTUNREACH, EPERM from a firewall): sendmmsg stops at the first failing message, which we skip and continue
 * after.
 *
 * gso (a Float64Array of 4, kept by the caller per socket, zeroed at first) turns on UDP GSO: a run of datagrams to
 * one address and port, all of one length L but the last (which may be shorter), each starting where the one before
 * ends in `buffer`, goes as one message with a UDP_SEGMENT cmsg of L (at most GSO_MAX_SEGMENTS datagrams and
 * GSO_MAX_BYTES). gso[0] is the state: 0 untried, 1 works, -1 refused (the kernel lacks UDP_SEGMENT or refused the
 * first GSO message with EIO, EINVAL or ENOPROTOOPT, or refused one later with EIO or ENOPROTOOPT: no GSO on this
 * socket again). gso[1] += GSO messages sent, gso[2] += datagrams in them, gso[3] += GSO messages refused, whose
 * datagrams were then sent one message each. Without gso, one message per datagram.
 */
napi_value weft_udp_send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10], out;
  uint32_t fd, count, family_arg = 4;
  uint8_t *buffer;
  uint32_t *offsets, *lengths, *addrs;
  uint16_t *ports;
  double *drops, *gso = NULL;
  size_t buffer_len, offsets_len, lengths_len, addrs_len, ports_len, drops_len, gso_len = 0;
  napi_valuetype gso_type = napi_undefined;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  WEFT_TRY(weft_arg_u32(env, argv[0], "fd", &fd));
  WEFT_TRY(weft_arg_buffer(env, argv[1], "buffer", &buffer, &buffer_len));
  WEFT_TRY(weft_arg_u32s(env, argv[2], "offsets", &offsets, &offsets_len));
  WEFT_TRY(weft_arg_u32s(env, argv[3], "lengths", &lengths, &lengths_len));
  WEFT_TRY(weft_arg_u32s(env, argv[4], "addrs", &addrs, &addrs_len));
  WEFT_TRY(weft_arg_u16s(env, argv[5], "ports", &ports, &ports_len));
  WEFT_TRY(weft_arg_u32(env, argv[6], "count", &count));
  WEFT_TRY(weft_arg_f64s(env, argv[7], "drops", &drops, &drops_len));
  if (argc >= 9) napi_typeof(env, argv[8], &gso_type);
  if (gso_type != napi_undefined && gso_type != napi_null)
    WEFT_TRY(weft_arg_f64s(env, argv[8], "gso", &gso, &gso_len));
  if (argc >= 10) WEFT_TRY(weft_arg_u32(env, argv[9], "family", &family_arg));
  if (count > offsets_len || count > lengths_len || (size_t)count * 4 > addrs_len || count > ports_len ||
      drops_len < 2 || (gso && gso_len < 4) || (family_arg != 4 && family_arg != 6)) {
    weft_throw_arg(env, "count must not exceed the length of offsets, lengths or ports (addrs: 4 words each); drops "
                        "needs 2 entries and gso 4; family is 4 or 6");
    return NULL;
  }
  int family = family_arg == 6 ? AF_INET6 : AF_INET;
  if (gso && gso[0] == GSO_UNTRIED) {
    /* A kernel without UDP_SEGMENT would ignore the cmsg and send each run as one big datagram: ask first. */
    int size = 0;
    socklen_t len = sizeof size;
    if (getsockopt((int)fd, SOL_UDP, UDP_SEGMENT, &size, &len) != 0) gso[0] = GSO_REFUSED;
  }
  struct mmsghdr msgs[SEND_CHUNK];
  struct iovec iovs[SEND_CHUNK];
  udp_name names[SEND_CHUNK];
  socklen_t name_lens[SEND_CHUNK];
  gso_control controls[SEND_CHUNK];
  uint32_t firsts[SEND_CHUNK]; /* message m carries datagrams [firsts[m], firsts[m] + segments[m]) */
  uint32_t segments[SEND_CHUNK];
  uint32_t sent = 0;
  uint32_t next = 0; /* first datagram not yet handed to the kernel */
  while (next < count) {
    uint32_t n = 0;
    int is_gso = gso && gso[0] != GSO_REFUSED;
    /* Fill a chunk, skipping (and counting) datagrams whose range lies outside the buffer. */
    while (n < SEND_CHUNK && next < count) {
      uint32_t i = next++;
      if ((uint64_t)offsets[i] + lengths[i] > buffer_len ||
          words_to_name(&addrs[4 * i], ports[i], family, &names[n], &name_lens[n]) != 0) {
        drops[1]++;
        continue;
      }
      uint32_t size = lengths[i], bytes = size, run = 1;
      if (is_gso && size > 0) {
        while (next < count && run < GSO_MAX_SEGMENTS && ports[next] == ports[i] &&
               memcmp(&addrs[4 * next], &addrs[4 * i], 16) == 0 &&
               offsets[next] == offsets[next - 1] + lengths[next - 1] && lengths[next] > 0 &&
               lengths[next] <= size && bytes + lengths[next] <= GSO_MAX_BYTES &&
               (uint64_t)offsets[next] + lengths[next] <= buffer_len) {
          bytes += lengths[next];
          run++;
          if (lengths[next++] < size) break; /* a shorter datagram ends the run */
        }
      }
      iovs[n].iov_base = buffer + offsets[i];
      iovs[n].iov_len = bytes;
      memset(&msgs[n], 0, sizeof msgs[n]);
      msgs[n].msg_hdr.msg_name = &names[n];
      msgs[n].msg_hdr.msg_namelen = name_lens[n];
      msgs[n].msg_hdr.msg_iov = &iovs[n];
      msgs[n].msg_hdr.msg_iovlen = 1;
      if (run > 1) {
        uint16_t segment = (uint16_t)size;
        msgs[n].msg_hdr.msg_control = controls[n].bytes;
        msgs[n].msg_hdr.msg_controllen = sizeof controls[n].bytes;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[n].msg_hdr);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof segment);
        memcpy(CMSG_DATA(c), &segment, sizeof segment);
      }
      firsts[n] = i;
      segments[n] = run;
      n++;
    }
    uint32_t done = 0;
    int is_full = 0;
    while (done < n) {
      int k = sendmmsg((int)fd, msgs + done, n - done, MSG_DONTWAIT);
      if (k > 0) {
        for (uint32_t m = done; m < done + (uint32_t)k; m++) {
          sent += segments[m];
          if (segments[m] > 1) {
            gso[0] = GSO_WORKS;
            gso[1]++;
            gso[2] += segments[m];
          }
        }
        done += (uint32_t)k;
      } else if (errno == EINTR) {
        continue;
      } else if (errno == EAGAIN) {
        is_full = 1;
        break;
      } else if (segments[done] > 1 && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT)) {
        /* GSO refused (no checksum offload on the route, a segment above the path MTU, ...): send the run plainly.
         * EINVAL after GSO has worked is this run's own problem; anything else means never again here. */
        if (gso[0] == GSO_UNTRIED || errno != EINVAL) gso[0] = GSO_REFUSED;
        gso[3]++;
        sent += send_plain((int)fd, buffer, offsets, lengths, &names[done], name_lens[done], firsts[done], segments[done], drops,
                           &is_full);
        done++;
        if (is_full) break;
      } else {
        drops[1] += segments[done];
        done++;
      }
    }
    if (is_full) {
      /* The unsent rest of this chunk plus everything after it, minus bad ranges already counted above. */
      for (uint32_t m = done; m < n; m++) drops[0] += segments[m];
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
