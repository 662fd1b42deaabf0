/*
 * weft_native: the data plane's kernel mechanism (TAP devices and batched UDP), no policy.
 *
 * Shared by every source file: argument checks that throw a JS error and return -1, errno errors with a stable
 * `code` (the errno name, e.g. "EPERM"), and the poll-driven batch reader used by both TAP and UDP.
 */
#ifndef WEFT_NATIVE_H
#define WEFT_NATIVE_H

#include <node_api.h>
#include <uv.h>
#include <stddef.h>
#include <stdint.h>

/* Bail out of a napi_callback with NULL (the JS exception is already pending). */
#define WEFT_TRY(expr)            \
  do {                            \
    if ((expr) != 0) return NULL; \
  } while (0)

/* Throw Error(message "<what>: <strerror>") with `code` = errno name and `errno` = err. */
void weft_throw_errno(napi_env env, const char *what, int err);
/* Throw TypeError(message) with code ERR_INVALID_ARG. */
void weft_throw_arg(napi_env env, const char *message);

/* Argument readers: 0 on success, -1 after throwing a TypeError naming `name`. */
int weft_arg_u32(napi_env env, napi_value v, const char *name, uint32_t *out);
int weft_arg_string(napi_env env, napi_value v, const char *name, char *buf, size_t cap);
int weft_arg_buffer(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len);
int weft_arg_u32s(napi_env env, napi_value v, const char *name, uint32_t **data, size_t *len);
int weft_arg_u16s(napi_env env, napi_value v, const char *name, uint16_t **data, size_t *len);
int weft_arg_f64s(napi_env env, napi_value v, const char *name, double **data, size_t *len);
int weft_arg_function(napi_env env, napi_value v, const char *name);
/* Set obj[key] = number. */
void weft_set_number(napi_env env, napi_value obj, const char *key, double value);

/*
 * A reader watches one nonblocking fd with uv_poll on the main loop. On readability its `fill` reads packets into
 * fixed slots (slot i spans [i*slot_bytes, (i+1)*slot_bytes) of the buffer; a packet starts `headroom` bytes into
 * its slot) and records offsets/lengths (and, for UDP, source address and port); the reader then calls the JS
 * callback once per batch with the count.
 */
typedef struct weft_reader weft_reader;
typedef uint32_t (*weft_fill_fn)(weft_reader *r);

struct weft_reader {
  napi_env env;
  uv_poll_t poll;
  int fd;
  int is_stopped;
  int is_drained; /* set by fill: the last read hit EAGAIN (or an error), so stop looping */
  int has_pending; /* set by fill: packets already read did not fit the arrays; the next fill delivers them before
                    * reading again, and the reader calls fill again even when the fd is drained */
  weft_fill_fn fill;
  napi_ref refs[5]; /* buffer, offsets, lengths, and for UDP addrs, ports: kept alive (and unmoved) while reading */
  int ref_count;
  napi_ref callback_ref;
  napi_async_context async_context;
  napi_ref resource_ref;
  struct weft_handle_box *box;
  struct weft_env_state *state;
  weft_reader *next; /* the env's list of live readers, stopped by the env cleanup hook */

  uint8_t *buffer;
  uint32_t *offsets;
  uint32_t *lengths;
  uint32_t *addrs;
  uint16_t *ports;
  uint32_t slots;   /* receive slots: reads per fill */
  uint32_t entries; /* capacity of offsets/lengths (and addrs/ports): >= slots, more when one read can hold several
                     * packets (UDP GRO) */
  uint32_t slot_bytes;
  uint32_t headroom;
  uint32_t prefix_bytes; /* TAP with IFF_VNET_HDR: each read starts with this many bytes of virtio_net_hdr, landing in
                          * the headroom right before the frame (0 otherwise) */
  void *scratch; /* fill-specific (UDP: mmsghdr/iovec/sockaddr arrays), freed with the reader */

  double wakes, batches, packets, truncated_drops, read_errors;
};

/* Counters a reader keeps; they outlive the reader in its JS handle so stats can be read after stop. */
typedef struct weft_handle_box {
  weft_reader *reader; /* NULL once stopped */
  double wakes, batches, packets, truncated_drops, read_errors;
} weft_handle_box;

/*
 * Start a reader on `fd`. `r` is calloc'd and has fd, fill, buffer, arrays, slots, slot_bytes, headroom and
 * scratch set; refs[0..ref_count) are set. Returns the JS handle, or NULL after throwing (then `r` is freed).
 */
napi_value weft_reader_start(napi_env env, weft_reader *r, napi_value callback);
/*
 * Check the common reader arguments and fill `r` from them. 0 on success, -1 after throwing. With
 * `is_slots_from_buffer` 0 there is one slot per offsets entry (TAP: one frame per read); with 1 the slots are
 * buffer.length / slotBytes (at most offsets.length) and offsets/lengths may hold more entries than slots (UDP: a
 * GRO read holds several datagrams).
 */
int weft_reader_args(napi_env env, weft_reader *r, napi_value buffer, napi_value offsets, napi_value lengths,
                     napi_value slot_bytes, napi_value headroom, int is_slots_from_buffer);

napi_value weft_reader_stop(napi_env env, napi_callback_info info);
napi_value weft_reader_stats(napi_env env, napi_callback_info info);
napi_value weft_busy_poll(napi_env env, napi_callback_info info);
napi_value weft_busy_poll_stats(napi_env env, napi_callback_info info);
void weft_readers_init(napi_env env);

napi_value weft_tap_open(napi_env env, napi_callback_info info);
napi_value weft_tap_reader_start(napi_env env, napi_callback_info info);
napi_value weft_tap_write_batch(napi_env env, napi_callback_info info);
napi_value weft_checksum_complete(napi_env env, napi_callback_info info);
napi_value weft_pcap_open(napi_env env, napi_callback_info info);
napi_value weft_pcap_reader_start(napi_env env, napi_callback_info info);
napi_value weft_pcap_inject_batch(napi_env env, napi_callback_info info);
napi_value weft_pcap_close(napi_env env, napi_callback_info info);
napi_value weft_pcap_stats(napi_env env, napi_callback_info info);
napi_value weft_pcap_version(napi_env env, napi_callback_info info);
napi_value weft_udp_open(napi_env env, napi_callback_info info);
napi_value weft_udp_reader_start(napi_env env, napi_callback_info info);
napi_value weft_udp_send_batch(napi_env env, napi_callback_info info);
napi_value weft_fd_close(napi_env env, napi_callback_info info);
napi_value weft_aead_seal(napi_env env, napi_callback_info info);
napi_value weft_aead_open(napi_env env, napi_callback_info info);
/*
 * The data-plane AEADs (aead-calls.c): one datagram's ranges, checked against the buffer before a cipher sees them.
 * AD at buffer[ad_offset, +ad_length); body at buffer[body_offset, +length), the 16-byte tag right after it.
 */
typedef struct {
  uint8_t *buffer, *nonce, *key;
  size_t buffer_len;
  size_t bytes_before; /* bytes of the buffer's memory in front of `buffer` (a Buffer view's byteOffset) */
  uint32_t ad_offset, ad_length, body_offset, length;
} weft_aead_args;

/* What a cipher supplies to the shared calls. */
typedef struct {
  const char *seal_name, *open_name, *seal_run_name, *open_run_name; /* for ENOTSUP errors */
  size_t nonce_bytes;                                                  /* 12 or 32 */
  int (*ready)(void);                                                  /* can it run here? */
  void (*seal)(const weft_aead_args *a);                               /* encrypt in place, write the tag */
  int (*open)(const weft_aead_args *a); /* 0 when authentic, else -1 (no plaintext left behind) */
  /* Optional: seal two datagrams of one body length (and AD length) under one key at once. */
  void (*seal2)(const weft_aead_args *a, const weft_aead_args *b);
  /* Optional: open two datagrams of one body length (and AD length) under one key at once; a mask of which failed
   * (bit 0: a, bit 1: b). */
  int (*open2)(const weft_aead_args *a, const weft_aead_args *b);
} weft_aead_cipher;

napi_value weft_aead_call_seal(napi_env env, napi_callback_info info, const weft_aead_cipher *c);
napi_value weft_aead_call_open(napi_env env, napi_callback_info info, const weft_aead_cipher *c);
napi_value weft_aead_call_seal_run(napi_env env, napi_callback_info info, const weft_aead_cipher *c);
napi_value weft_aead_call_open_run(napi_env env, napi_callback_info info, const weft_aead_cipher *c);
napi_value weft_aead_seal_run(napi_env env, napi_callback_info info);
napi_value weft_aead_open_run(napi_env env, napi_callback_info info);
napi_value weft_aegis256x2_seal_run(napi_env env, napi_callback_info info);
napi_value weft_aegis256x2_open_run(napi_env env, napi_callback_info info);
napi_value weft_aegis256x2_seal(napi_env env, napi_callback_info info);
napi_value weft_aegis256x2_open(napi_env env, napi_callback_info info);
napi_value weft_aegis256x2_implementation(napi_env env, napi_callback_info info);
napi_value weft_aegis256x2_use(napi_env env, napi_callback_info info);
void weft_aead_init(napi_env env);

#endif
