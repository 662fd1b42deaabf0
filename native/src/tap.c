/*
 * TAP devices: open, batched read (through the shared reader) and batched write.
 *
 * The device is opened with IFF_TAP|IFF_NO_PI, so every read() yields exactly one Ethernet frame (destination MAC
 * first, no FCS, no packet-information prefix) and every write() takes one. It is not persistent: it disappears
 * when the fd is closed, so a crashed daemon leaves no device behind.
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

/* tapOpen(name): {fd, name}. `name` '' lets the kernel choose (tapN); a name of an existing TAP attaches to it. */
napi_value weft_tap_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, value;
  char name[IFNAMSIZ];
  char what[IFNAMSIZ + 64];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  WEFT_TRY(weft_arg_string(env, argv[0], "name", name, sizeof name));
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    weft_throw_errno(env, "open /dev/net/tun", errno);
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, strlen(name));
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    int err = errno;
    close(fd);
    snprintf(what, sizeof what, "TUNSETIFF '%s'", name);
    weft_throw_errno(env, what, err);
    return NULL;
  }
  napi_create_object(env, &out);
  weft_set_number(env, out, "fd", fd);
  napi_create_string_utf8(env, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ), &value);
  napi_set_named_property(env, out, "name", value);
  return out;
}

static uint32_t tap_fill(weft_reader *r) {
  uint32_t n = 0;
  size_t capacity = r->slot_bytes - r->headroom;
  while (n < r->slots) {
    uint32_t offset = n * r->slot_bytes + r->headroom;
    ssize_t k = read(r->fd, r->buffer + offset, capacity);
    if (k < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) r->read_errors++;
      r->is_drained = 1;
      break;
    }
    /* The tun driver truncates a frame longer than the read buffer without saying so: a read that fills the slot
     * exactly is taken as truncated and dropped (slots are sized above the largest MTU, so it never is a real one). */
    if ((size_t)k == capacity || k == 0) {
      if (k) r->truncated_drops++;
      continue;
    }
    r->offsets[n] = offset;
    r->lengths[n] = (uint32_t)k;
    n++;
  }
  return n;
}

/* tapReaderStart(fd, buffer, offsets, lengths, slotBytes, headroomBytes, onBatch(count)): reader handle. */
napi_value weft_tap_reader_start(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  uint32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  WEFT_TRY(weft_arg_u32(env, argv[0], "fd", &fd));
  weft_reader *r = calloc(1, sizeof *r);
  if (!r) {
    weft_throw_errno(env, "tapReaderStart", ENOMEM);
    return NULL;
  }
  r->fd = (int)fd;
  r->fill = tap_fill;
  if (weft_reader_args(env, r, argv[1], argv[2], argv[3], argv[4], argv[5], 0) != 0) {
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
