/*
 * Module entry and the argument/error helpers every source file shares. See weft.h for the layout of a reader and
 * ../addon.ts for the JS contract of each export.
 */
#include "weft.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void weft_throw_errno(napi_env env, const char *what, int err) {
  char message[512];
  const char *name = strerrorname_np(err);
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_value code, msg, error, errno_value;
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_create_int32(env, err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_throw(env, error);
}

void weft_throw_arg(napi_env env, const char *message) { napi_throw_type_error(env, "ERR_INVALID_ARG", message); }

static int arg_error(napi_env env, const char *name, const char *expected) {
  char message[256];
  snprintf(message, sizeof message, "%s must be %s", name, expected);
  weft_throw_arg(env, message);
  return -1;
}

int weft_arg_u32(napi_env env, napi_value v, const char *name, uint32_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d)
    return arg_error(env, name, "an integer in [0, 2^32)");
  *out = (uint32_t)d;
  return 0;
}

int weft_arg_string(napi_env env, napi_value v, const char *name, char *buf, size_t cap) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return arg_error(env, name, "a string");
  if (len >= cap) {
    char expected[64];
    snprintf(expected, sizeof expected, "a string of at most %zu bytes", cap - 1);
    return arg_error(env, name, expected);
  }
  napi_get_value_string_utf8(env, v, buf, cap, &len);
  return 0;
}

int weft_arg_buffer(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len) {
  bool is_buffer = false;
  void *p;
  if (napi_is_buffer(env, v, &is_buffer) != napi_ok || !is_buffer) return arg_error(env, name, "a Buffer");
  if (napi_get_buffer_info(env, v, &p, len) != napi_ok) return arg_error(env, name, "a Buffer");
  *data = p;
  return 0;
}

static int typed_array(napi_env env, napi_value v, const char *name, napi_typedarray_type want, const char *expected,
                       void **data, size_t *len) {
  bool is_typed = false;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return arg_error(env, name, expected);
  if (napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) != napi_ok || type != want)
    return arg_error(env, name, expected);
  return 0;
}

int weft_arg_u32s(napi_env env, napi_value v, const char *name, uint32_t **data, size_t *len) {
  return typed_array(env, v, name, napi_uint32_array, "a Uint32Array", (void **)data, len);
}

int weft_arg_u16s(napi_env env, napi_value v, const char *name, uint16_t **data, size_t *len) {
  return typed_array(env, v, name, napi_uint16_array, "a Uint16Array", (void **)data, len);
}

int weft_arg_f64s(napi_env env, napi_value v, const char *name, double **data, size_t *len) {
  return typed_array(env, v, name, napi_float64_array, "a Float64Array", (void **)data, len);
}

int weft_arg_function(napi_env env, napi_value v, const char *name) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_function) return arg_error(env, name, "a function");
  return 0;
}

void weft_set_number(napi_env env, napi_value obj, const char *key, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  napi_set_named_property(env, obj, key, v);
}

/* fdClose(fd): close a descriptor this addon opened. Stop its reader first (libuv must not poll a closed fd). */
napi_value weft_fd_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  WEFT_TRY(weft_arg_u32(env, argc > 0 ? argv[0] : NULL, "fd", &fd));
  /* Linux always releases the descriptor, even when close() reports EINTR: never retry. */
  if (close((int)fd) != 0 && errno != EINTR) {
    weft_throw_errno(env, "close", errno);
    return NULL;
  }
  return NULL;
}

/*
 * copyBytes(source, sourceOffset, target, targetOffset, length): length. Buffer#copy with a partial range builds a
 * Uint8Array view per call in Node 20 (garbage per packet on the data path); this copies with none.
 */
napi_value weft_copy_bytes(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], out;
  uint8_t *source, *target;
  size_t source_len, target_len;
  uint32_t source_offset, target_offset, length;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  WEFT_TRY(weft_arg_buffer(env, argv[0], "source", &source, &source_len));
  WEFT_TRY(weft_arg_u32(env, argv[1], "sourceOffset", &source_offset));
  WEFT_TRY(weft_arg_buffer(env, argv[2], "target", &target, &target_len));
  WEFT_TRY(weft_arg_u32(env, argv[3], "targetOffset", &target_offset));
  WEFT_TRY(weft_arg_u32(env, argv[4], "length", &length));
  if ((uint64_t)source_offset + length > source_len || (uint64_t)target_offset + length > target_len) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "copyBytes: range outside source or target");
    return NULL;
  }
  memmove(target + target_offset, source + source_offset, length);
  napi_create_uint32(env, length, &out);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"tapOpen", NULL, weft_tap_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tapReaderStart", NULL, weft_tap_reader_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tapWriteBatch", NULL, weft_tap_write_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"checksumComplete", NULL, weft_checksum_complete, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pcapOpen", NULL, weft_pcap_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pcapReaderStart", NULL, weft_pcap_reader_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pcapInjectBatch", NULL, weft_pcap_inject_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pcapClose", NULL, weft_pcap_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pcapStats", NULL, weft_pcap_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pcapVersion", NULL, weft_pcap_version, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpOpen", NULL, weft_udp_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpReaderStart", NULL, weft_udp_reader_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpSendBatch", NULL, weft_udp_send_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readerStop", NULL, weft_reader_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readerStats", NULL, weft_reader_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"busyPoll", NULL, weft_busy_poll, NULL, NULL, NULL, napi_enumerable, NULL},
      {"busyPollStats", NULL, weft_busy_poll_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aeadSeal", NULL, weft_aead_seal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aeadOpen", NULL, weft_aead_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aeadSealRun", NULL, weft_aead_seal_run, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aeadOpenRun", NULL, weft_aead_open_run, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aegis256x2SealRun", NULL, weft_aegis256x2_seal_run, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aegis256x2OpenRun", NULL, weft_aegis256x2_open_run, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aegis256x2Seal", NULL, weft_aegis256x2_seal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aegis256x2Open", NULL, weft_aegis256x2_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aegis256x2Implementation", NULL, weft_aegis256x2_implementation, NULL, NULL, NULL, napi_enumerable, NULL},
      {"aegis256x2Use", NULL, weft_aegis256x2_use, NULL, NULL, NULL, napi_enumerable, NULL},
      {"copyBytes", NULL, weft_copy_bytes, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fdClose", NULL, weft_fd_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  weft_readers_init(env);
  weft_aead_init(env);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
