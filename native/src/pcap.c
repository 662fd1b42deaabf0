/*
 * pcap capture: frames read and injected through libpcap, for hosts where a TAP cannot be put on the bridge.
 *
 * The handle captures on one interface (weft uses one end of a veth pair whose other end is on the bridge), in
 * promiscuous and immediate mode, incoming frames only (PCAP_D_IN: what we inject is not read back), nonblocking.
 * libpcap reads through the kernel's memory-mapped packet ring; our reader (reader.c) watches the handle's
 * selectable fd and, per wake, copies up to one batch of frames out of the ring into the caller's fixed slots (one
 * memcpy per frame: the slots have headroom for the sleeve's header, the ring does not). Injection is one
 * pcap_inject (a send() on the packet socket) per frame, a batch per N-API call.
 *
 * Frames are plain Ethernet frames of at most the snapshot length: no virtio_net_hdr and no offloads, so the
 * interface must hand over MTU-sized frames with complete checksums (the caller turns its offloads off).
 *
 * Built only where libpcap's headers were found (binding.gyp defines WEFT_HAVE_PCAP and links -lpcap); otherwise
 * pcapOpen throws ENOTSUP and says what to install.
 */
#include "weft.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifdef WEFT_HAVE_PCAP
#include <pcap/pcap.h>

/* Tags the external handles pcap functions accept, so a stray external cannot be mistaken for ours. */
static const napi_type_tag PCAP_TAG = {0x7765667470636170ULL, 0x68616e646c650001ULL};

typedef struct {
  pcap_t *pcap; /* NULL once closed */
} weft_pcap_box;

static void box_finalize(napi_env env, void *data, void *hint) {
  weft_pcap_box *box = data;
  if (box->pcap) pcap_close(box->pcap); /* dropped without pcapClose: do not leak the ring */
  free(box);
}

static weft_pcap_box *box_arg(napi_env env, napi_value v) {
  bool is_ours = false;
  void *data;
  if (!v || napi_check_object_type_tag(env, v, &PCAP_TAG, &is_ours) != napi_ok || !is_ours ||
      napi_get_value_external(env, v, &data) != napi_ok) {
    weft_throw_arg(env, "handle must be one returned by pcapOpen");
    return NULL;
  }
  return data;
}

static void throw_pcap(napi_env env, const char *what, const char *detail, const char *code) {
  char message[PCAP_ERRBUF_SIZE + 128];
  napi_value msg, err, code_value;
  snprintf(message, sizeof message, "%s: %s", what, detail);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &err);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value);
  napi_set_named_property(env, err, "code", code_value);
  napi_throw(env, err);
}

/* libpcap's activation results as errno-like codes the TS side can give advice for. */
static const char *activate_code(int status) {
  switch (status) {
    case PCAP_ERROR_PERM_DENIED:
      return "EPERM";
    case PCAP_ERROR_NO_SUCH_DEVICE:
      return "ENODEV";
    case PCAP_ERROR_IFACE_NOT_UP:
      return "ENETDOWN";
    default:
      return "EPCAP";
  }
}

/*
 * pcapOpen(ifname, snapBytes, bufferBytes): {handle, fd}. Promiscuous, immediate, incoming only, nonblocking.
 * Frames longer than snapBytes are cut by the kernel (the reader drops them as truncated). bufferBytes sizes the
 * kernel ring.
 */
napi_value weft_pcap_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], out, handle;
  char name[64];
  char errbuf[PCAP_ERRBUF_SIZE];
  uint32_t snap_bytes, buffer_bytes;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  WEFT_TRY(weft_arg_string(env, argc > 0 ? argv[0] : NULL, "ifname", name, sizeof name));
  WEFT_TRY(weft_arg_u32(env, argc > 1 ? argv[1] : NULL, "snapBytes", &snap_bytes));
  WEFT_TRY(weft_arg_u32(env, argc > 2 ? argv[2] : NULL, "bufferBytes", &buffer_bytes));
  if (snap_bytes < 64 || snap_bytes > 262144 || buffer_bytes < 65536) {
    weft_throw_arg(env, "snapBytes must be 64..262144 and bufferBytes at least 65536");
    return NULL;
  }
  errbuf[0] = 0;
  pcap_t *p = pcap_create(name, errbuf);
  if (!p) {
    throw_pcap(env, "pcap_create", errbuf, "EPCAP");
    return NULL;
  }
  int status;
  if ((status = pcap_set_snaplen(p, (int)snap_bytes)) != 0 || (status = pcap_set_promisc(p, 1)) != 0 ||
      (status = pcap_set_immediate_mode(p, 1)) != 0 || (status = pcap_set_buffer_size(p, (int)buffer_bytes)) != 0) {
    pcap_close(p);
    throw_pcap(env, "pcap settings", pcap_statustostr(status), "EPCAP");
    return NULL;
  }
  status = pcap_activate(p);
  if (status < 0) {
    char detail[PCAP_ERRBUF_SIZE + 64];
    snprintf(detail, sizeof detail, "%s (%s)", pcap_statustostr(status), pcap_geterr(p));
    const char *code = activate_code(status);
    pcap_close(p);
    throw_pcap(env, "pcap_activate", detail, code);
    return NULL;
  }
  if (pcap_datalink(p) != DLT_EN10MB) {
    pcap_close(p);
    throw_pcap(env, "pcap_datalink", "not an Ethernet interface", "EINVAL");
    return NULL;
  }
  if (pcap_setdirection(p, PCAP_D_IN) != 0 || pcap_setnonblock(p, 1, errbuf) != 0) {
    char detail[PCAP_ERRBUF_SIZE];
    snprintf(detail, sizeof detail, "%s", pcap_geterr(p));
    pcap_close(p);
    throw_pcap(env, "pcap_setdirection/setnonblock", detail, "EPCAP");
    return NULL;
  }
  int fd = pcap_get_selectable_fd(p);
  if (fd < 0) {
    pcap_close(p);
    throw_pcap(env, "pcap_get_selectable_fd", "no selectable fd", "EPCAP");
    return NULL;
  }
  weft_pcap_box *box = calloc(1, sizeof *box);
  if (!box) {
    pcap_close(p);
    weft_throw_errno(env, "pcapOpen", ENOMEM);
    return NULL;
  }
  box->pcap = p;
  napi_create_external(env, box, box_finalize, NULL, &handle);
  napi_type_tag_object(env, handle, &PCAP_TAG);
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "handle", handle);
  weft_set_number(env, out, "fd", fd);
  return out;
}

/* The reader's fill: frames from the ring into slots, until the ring is empty or the slots are full. */
typedef struct {
  pcap_t *pcap;
  weft_reader *r;
  uint32_t n;
} pcap_fill_state;

static void on_frame(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes) {
  pcap_fill_state *st = (pcap_fill_state *)user;
  weft_reader *r = st->r;
  uint32_t capacity = r->slot_bytes - r->headroom;
  if (h->caplen < h->len || h->caplen > capacity) {
    r->truncated_drops++;
    return;
  }
  uint32_t offset = st->n * r->slot_bytes + r->headroom;
  memcpy(r->buffer + offset, bytes, h->caplen);
  r->offsets[st->n] = offset;
  r->lengths[st->n] = h->caplen;
  st->n++;
}

static uint32_t pcap_fill(weft_reader *r) {
  pcap_fill_state *st = r->scratch;
  st->r = r;
  st->n = 0;
  while (st->n < r->slots) {
    int k = pcap_dispatch(st->pcap, (int)(r->slots - st->n), on_frame, (u_char *)st);
    if (k < 0) {
      r->read_errors++;
      r->is_drained = 1;
      break;
    }
    if (k == 0) {
      r->is_drained = 1;
      break;
    }
  }
  return st->n;
}

/*
 * pcapReaderStart(handle, buffer, offsets, lengths, slotBytes, headroomBytes, onBatch(count)): reader handle (stop it
 * with readerStop before pcapClose). One slot per offsets entry; a frame starts headroomBytes into its slot.
 */
napi_value weft_pcap_reader_start(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  weft_pcap_box *box = box_arg(env, argc > 0 ? argv[0] : NULL);
  if (!box) return NULL;
  if (!box->pcap) {
    weft_throw_arg(env, "pcapReaderStart: the handle is closed");
    return NULL;
  }
  weft_reader *r = calloc(1, sizeof *r);
  pcap_fill_state *st = calloc(1, sizeof *st);
  if (!r || !st) {
    free(r);
    free(st);
    weft_throw_errno(env, "pcapReaderStart", ENOMEM);
    return NULL;
  }
  st->pcap = box->pcap;
  r->fd = pcap_get_selectable_fd(box->pcap);
  r->fill = pcap_fill;
  r->scratch = st;
  if (weft_reader_args(env, r, argv[1], argv[2], argv[3], argv[4], argv[5], 0) != 0) {
    for (int i = 0; i < r->ref_count; i++) napi_delete_reference(env, r->refs[i]);
    free(st);
    free(r);
    return NULL;
  }
  return weft_reader_start(env, r, argv[6]);
}

/*
 * pcapInjectBatch(handle, buffer, offsets, lengths, count, drops): frames injected, one pcap_inject each. drops[0] +=
 * frames refused because the socket's buffer was full (EAGAIN/ENOBUFS: the rest of the batch is dropped), drops[1] +=
 * frames refused otherwise (bad range, the interface down, the handle closed).
 */
napi_value weft_pcap_inject_batch(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], out;
  uint32_t count;
  uint8_t *buffer;
  uint32_t *offsets, *lengths;
  double *drops;
  size_t buffer_len, offsets_len, lengths_len, drops_len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  weft_pcap_box *box = box_arg(env, argc > 0 ? argv[0] : NULL);
  if (!box) return NULL;
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
    if (!box->pcap || (uint64_t)offsets[i] + lengths[i] > buffer_len) {
      drops[1]++;
      continue;
    }
    if (pcap_inject(box->pcap, buffer + offsets[i], lengths[i]) >= 0) {
      written++;
    } else if (errno == EAGAIN || errno == ENOBUFS) {
      drops[0] += count - i;
      break;
    } else {
      drops[1]++;
    }
  }
  napi_create_uint32(env, written, &out);
  return out;
}

/* pcapClose(handle): close the capture (stop its reader first). Idempotent. */
napi_value weft_pcap_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  weft_pcap_box *box = box_arg(env, argc > 0 ? argv[0] : NULL);
  if (!box) return NULL;
  if (box->pcap) pcap_close(box->pcap);
  box->pcap = NULL;
  return NULL;
}

/* pcapStats(handle): {received, dropped, interfaceDropped} from pcap_stats (the kernel ring's counters). */
napi_value weft_pcap_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  struct pcap_stat ps;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  weft_pcap_box *box = box_arg(env, argc > 0 ? argv[0] : NULL);
  if (!box) return NULL;
  memset(&ps, 0, sizeof ps);
  if (box->pcap) pcap_stats(box->pcap, &ps);
  napi_create_object(env, &out);
  weft_set_number(env, out, "received", ps.ps_recv);
  weft_set_number(env, out, "dropped", ps.ps_drop);
  weft_set_number(env, out, "interfaceDropped", ps.ps_ifdrop);
  return out;
}

/* pcapVersion(): libpcap's version string. */
napi_value weft_pcap_version(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_create_string_utf8(env, pcap_lib_version(), NAPI_AUTO_LENGTH, &out);
  return out;
}

#else /* !WEFT_HAVE_PCAP */

static napi_value not_built(napi_env env) {
  weft_throw_errno(env, "weft's native addon was built without libpcap (install libpcap-dev, then rebuild it)", ENOTSUP);
  return NULL;
}
napi_value weft_pcap_open(napi_env env, napi_callback_info info) { return not_built(env); }
napi_value weft_pcap_reader_start(napi_env env, napi_callback_info info) { return not_built(env); }
napi_value weft_pcap_inject_batch(napi_env env, napi_callback_info info) { return not_built(env); }
napi_value weft_pcap_close(napi_env env, napi_callback_info info) { return not_built(env); }
napi_value weft_pcap_stats(napi_env env, napi_callback_info info) { return not_built(env); }
napi_value weft_pcap_version(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_create_string_utf8(env, "", 0, &out);
  return out;
}

#endif
