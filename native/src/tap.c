/*
 * TAP devices: open, batched read (through the shared reader) and batched write.
 *
 * The device is opened with IFF_TAP|IFF_NO_PI, so every read() yields exactly one Ethernet frame (destination MAC
 * first, no FCS, no packet-information prefix) and every write() takes one. It is not persistent: it disappears
 * when the fd is closed, so a crashed daemon leaves no device behind.
 *
 * With offloads (IFF_VNET_HDR and TUNSETOFFLOAD), every frame read or written is preceded by a 10-byte
 * virtio_net_hdr, and the kernel may hand over (and take) frames of up to 64 KiB that it has not cut into segments
 * (TSO) or whose TCP/UDP checksum is only partly computed; the header says which. One read() then moves up to 45
 * segments' worth of a TCP stream instead of one.
 */
#include "weft.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define VNET_HDR_BYTES 10 /* struct virtio_net_hdr: what TUNSETVNETHDRSZ defaults to */

/*
 * tapOpen(name, vnetHeader, offload): {fd, name, vnetHeaderBytes, offloads}. `name` '' lets the kernel choose
 * (tapN); a name of an existing TAP attaches to it. With `vnetHeader`, every frame read or written carries a
 * virtio_net_hdr (vnetHeaderBytes 10): frames written may then be TCP super-frames with partial checksums, which
 * the kernel finishes and cuts. With `offload` as well, the device also takes partial checksums and TCP
 * segmentation from the kernel on the way out (offloads: the TUN_F_* bits the kernel accepted); without it the
 * kernel finishes checksums and segments before frames reach us (offloads 0).
 */
napi_value weft_tap_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out, value;
  char name[IFNAMSIZ];
  char what[IFNAMSIZ + 64];
  bool is_vnet = false, is_offload = false;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  WEFT_TRY(weft_arg_string(env, argv[0], "name", name, sizeof name));
  if ((argc > 1 && napi_get_value_bool(env, argv[1], &is_vnet) != napi_ok) ||
      (argc > 2 && napi_get_value_bool(env, argv[2], &is_offload) != napi_ok)) {
    weft_throw_arg(env, "vnetHeader and offload must be booleans");
    return NULL;
  }
  if (is_offload && !is_vnet) {
    weft_throw_arg(env, "offload needs vnetHeader: the header is how the kernel says what it left undone");
    return NULL;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    weft_throw_errno(env, "open /dev/net/tun", errno);
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (is_vnet ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, strlen(name));
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    int err = errno;
    close(fd);
    snprintf(what, sizeof what, "TUNSETIFF '%s'", name);
    weft_throw_errno(env, what, err);
    return NULL;
  }
  unsigned int offloads = 0;
  if (is_vnet) {
    int header_bytes = VNET_HDR_BYTES;
    if (ioctl(fd, TUNSETVNETHDRSZ, &header_bytes) != 0) {
      int err = errno;
      close(fd);
      weft_throw_errno(env, "TUNSETVNETHDRSZ", err);
      return NULL;
    }
    /* Partial checksums and TCP segmentation (IPv4, IPv6, with ECN); fall back to checksums only, then none. */
    const unsigned int wanted[] = {TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN, TUN_F_CSUM, 0};
    for (size_t i = is_offload ? 0 : 2; i < sizeof wanted / sizeof wanted[0]; i++) {
      if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)wanted[i]) == 0) {
        offloads = wanted[i];
        break;
      }
    }
  }
  napi_create_object(env, &out);
  weft_set_number(env, out, "fd", fd);
  weft_set_number(env, out, "vnetHeaderBytes", is_vnet ? VNET_HDR_BYTES : 0);
  weft_set_number(env, out, "offloads", offloads);
  napi_create_string_utf8(env, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ), &value);
  napi_set_named_property(env, out, "name", value);
  return out;
}

static uint32_t tap_fill(weft_reader *r) {
  uint32_t n = 0;
  uint32_t prefix = r->prefix_bytes;
  size_t capacity = r->slot_bytes - r->headroom + prefix;
  while (n < r->slots) {
    uint32_t offset = n * r->slot_bytes + r->headroom;
    ssize_t k = read(r->fd, r->buffer + offset - prefix, capacity);
    if (k < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) r->read_errors++;
      r->is_drained = 1;
      break;
    }
    /* The tun driver truncates a frame longer than the read buffer without saying so: a read that fills the slot
     * exactly is taken as truncated and dropped (slots are sized above the largest MTU, so it never is a real one). */
    if ((size_t)k == capacity || (size_t)k <= prefix) {
      if ((size_t)k == capacity) r->truncated_drops++;
      continue;
    }
    r->offsets[n] = offset;
    r->lengths[n] = (uint32_t)k - prefix;
    n++;
  }
  return n;
}

/*
 * tapReaderStart(fd, buffer, offsets, lengths, slotBytes, headroomBytes, onBatch(count), vnetHeaderBytes): reader
 * handle. With vnetHeaderBytes (10 for a TAP opened with offload), each frame's virtio_net_hdr lies in the
 * `vnetHeaderBytes` right before the frame's offset, inside the headroom.
 */
napi_value weft_tap_reader_start(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  uint32_t fd, prefix = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  WEFT_TRY(weft_arg_u32(env, argv[0], "fd", &fd));
  if (argc > 7) WEFT_TRY(weft_arg_u32(env, argv[7], "vnetHeaderBytes", &prefix));
  weft_reader *r = calloc(1, sizeof *r);
  if (!r) {
    weft_throw_errno(env, "tapReaderStart", ENOMEM);
    return NULL;
  }
  r->fd = (int)fd;
  r->fill = tap_fill;
  r->prefix_bytes = prefix;
  if (weft_reader_args(env, r, argv[1], argv[2], argv[3], argv[4], argv[5], 0) != 0 || prefix > r->headroom) {
    if (prefix > r->headroom && r->slot_bytes) weft_throw_arg(env, "vnetHeaderBytes must fit in headroomBytes");
    for (int i = 0; i < r->ref_count; i++) napi_delete_reference(env, r->refs[i]);
    free(r);
    return NULL;
  }
  return weft_reader_start(env, r, argv[6]);
}

/*
 * tapWriteBatch(fd, buffer, offsets, lengths, count, drops): frames written. One write() per frame (a TAP takes one
 * frame per write). drops[0] += frames dropped because the device queue was full (EAGAIN: the rest of the batch is
 * dropped, retrying would only spin), drops[1] += frames refused with another error (bad range, EINVAL, EIO when the
 * device is down).
 */
napi_value weft_tap_write_batch(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], out;
  uint32_t fd, count;
  uint8_t *buffer;
  uint32_t *offsets, *lengths;
  double *drops;
  size_t buffer_len, offsets_len, lengths_len, drops_len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  WEFT_TRY(weft_arg_u32(env, argv[0], "fd", &fd));
  WEFT_TRY(weft_arg_buffer(env, argv[1], "buffer", &buffer, &buffer_len));
  WEFT_TRY(weft_arg_u32s(env, argv[2], "offsets", &offsets, &offsets_len));
  WEFT_TRY(weft_arg_u32s(env, argv[3], "lengths", &lengths, &lengths_len));
  WEFT_TRY(weft_arg_u32(env, argv[4], "count", &count));
  WEFT_TRY(weft_arg_f64s(env, argv[5], "drops", &drops, &drops_len));
  if (count > offsets_len || count > lengths_len || drops_len < 2) {
    weft_throw_arg(env, "count must not exceed offsets.length or lengths.length, and drops needs 2 entries");
    return NULL;
  }
  uint32_t written = 0;
  for (uint32_t i = 0; i < count; i++) {
    if ((uint64_t)offsets[i] + lengths[i] > buffer_len) {
      drops[1]++;
      continue;
    }
    ssize_t k = write((int)fd, buffer + offsets[i], lengths[i]);
    if (k >= 0) {
      written++;
    } else if (errno == EINTR) {
      i--;
    } else if (errno == EAGAIN) {
      drops[0] += count - i;
      break;
    } else {
      drops[1]++;
    }
  }
  napi_create_uint32(env, written, &out);
  return out;
}

/*
 * checksumComplete(buffer, frameOffset, frameLength, csumStart, csumOffset): finish a partial checksum the way a NIC
 * would (what the kernel leaves for "hardware" when a frame is read with VIRTIO_NET_HDR_F_NEEDS_CSUM): the one's
 * complement sum of the frame from csumStart to its end, which already includes the pseudo-header sum the kernel
 * put in the checksum field, is folded, complemented and stored at csumStart + csumOffset. Returns false (nothing
 * written) when the offsets do not fit the frame or the frame does not fit the buffer.
 */
napi_value weft_checksum_complete(napi_env env, napi_callback_info info) {
  size_t argc = 5, buffer_len;
  napi_value argv[5], out;
  uint8_t *buffer;
  uint32_t off, len, start, field;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  WEFT_TRY(weft_arg_buffer(env, argv[0], "buffer", &buffer, &buffer_len));
  WEFT_TRY(weft_arg_u32(env, argv[1], "frameOffset", &off));
  WEFT_TRY(weft_arg_u32(env, argv[2], "frameLength", &len));
  WEFT_TRY(weft_arg_u32(env, argv[3], "csumStart", &start));
  WEFT_TRY(weft_arg_u32(env, argv[4], "csumOffset", &field));
  bool is_done = false;
  if ((uint64_t)off + len <= buffer_len && (uint64_t)start + field + 2 <= len) {
    const uint8_t *p = buffer + off + start;
    size_t n = len - start;
    uint64_t sum = 0;
    for (; n >= 8; p += 8, n -= 8) {
      uint64_t w;
      memcpy(&w, p, 8);
      sum += (w & 0xffffffffULL) + (w >> 32); /* 32-bit halves: no carry is lost in 64 bits */
    }
    for (; n >= 2; p += 2, n -= 2) sum += (uint64_t)(p[0] | (p[1] << 8));
    if (n) sum += p[0];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    /* In the byte order it was summed in (RFC 1071: the sum does not depend on it). 0 is sent as 0xffff, as the
     * kernel does: equal in one's complement, and for UDP 0 would mean "no checksum". */
    uint16_t folded = (uint16_t)~sum;
    if (folded == 0) folded = 0xffff;
    memcpy(buffer + off + start + field, &folded, 2);
    is_done = true;
  }
  napi_get_boolean(env, is_done, &out);
  return out;
}
