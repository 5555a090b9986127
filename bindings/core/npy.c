/*
** The NPY format: the dtype table, the version 1.0 header writer (byte for byte NumPy's), the
** parser of untrusted headers (a block another program wrote, a file from anywhere), and .npy
** file reading and writing. The parser reads only inside the bytes it is given and checks every
** number before it is used; it accepts the Python-literal subset NumPy writes (and Python 2's
** "3L" dimensions), nothing that would need a guess.
*/
#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "posix.h"

const char *const luashm_dtype_names[LUASHM_NDTYPES] = {"i8",  "u8",  "i16", "u16", "i32",  "u32",
                                                        "i64", "u64", "f32", "f64", "bool", "f16"};
const unsigned char luashm_dtype_sizes[LUASHM_NDTYPES] = {1, 1, 2, 2, 4, 4, 8, 8, 4, 8, 1, 2};

static const char *const long_names[LUASHM_NDTYPES] = {"int8",    "uint8",   "int16", "uint16",
                                                       "int32",   "uint32",  "int64", "uint64",
                                                       "float32", "float64", "bool_", "float16"};

/* The descr NumPy writes on a little-endian machine; '<' and '=' are accepted on reading, and
   any byte order for one-byte types. */
static const char *const descrs[LUASHM_NDTYPES] = {"|i1", "|u1", "<i2", "<u2", "<i4", "<u4",
                                                   "<i8", "<u8", "<f4", "<f8", "|b1", "<f2"};

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 6
#define ALIGN 64
#define GROWTH_AXIS_MAX_DIGITS 21 /* NumPy's spare room after the dict, for in-place growth */
#define MAX_HEADER (1u << 20)     /* NumPy refuses more than 10000 bytes by default */

int luashm_dtype_lookup(const char *name) {
  int i;
  for (i = 0; i < LUASHM_NDTYPES; i++)
    if (strcmp(name, luashm_dtype_names[i]) == 0 || strcmp(name, long_names[i]) == 0) return i;
  return -1;
}

int luashm_npy_probe(const unsigned char *p, size_t avail) {
  return avail >= MAGIC_LEN && memcmp(p, MAGIC, MAGIC_LEN) == 0;
}

/* ---------------------------------------------------------------------------------------
** Writer
** ------------------------------------------------------------------------------------- */

/* The dict as Python prints it, with NumPy's growth spaces; returns its length, writes at most
   cap bytes to out (out may be NULL to measure). */
static size_t dict_text(char *out, size_t cap, int dtype, int ndim, const size_t *shape) {
  char buf[64 + LUASHM_MAXDIMS * 24];
  size_t n;
  int i, first_len = 0;
  n = (size_t)snprintf(buf, sizeof buf, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                       descrs[dtype]);
  for (i = 0; i < ndim; i++) {
    int w = snprintf(buf + n, sizeof buf - n, i ? ", %zu" : "%zu", shape[i]);
    if (i == 0) first_len = w;
    n += (size_t)w;
  }
  n += (size_t)snprintf(buf + n, sizeof buf - n, "%s), }", ndim == 1 ? "," : "");
  if (ndim > 0)
    for (i = first_len; i < GROWTH_AXIS_MAX_DIGITS; i++) buf[n++] = ' ';
  if (out != NULL) memcpy(out, buf, n < cap ? n : cap);
  return n;
}

size_t luashm_npy_header_len(int dtype, int ndim, const size_t *shape) {
  size_t hlen = dict_text(NULL, 0, dtype, ndim, shape) + 1; /* + '\n' */
  size_t pad = ALIGN - ((MAGIC_LEN + 2 + 2 + hlen) % ALIGN);
  return MAGIC_LEN + 2 + 2 + hlen + pad;
}

void luashm_npy_write(unsigned char *out, int dtype, int ndim, const size_t *shape) {
  size_t total = luashm_npy_header_len(dtype, ndim, shape);
  size_t hl = total - 10, n;
  memcpy(out, MAGIC "\x01\x00", 8);
  out[8] = (unsigned char)(hl & 0xff);
  out[9] = (unsigned char)(hl >> 8);
  n = dict_text((char *)out + 10, hl, dtype, ndim, shape);
  memset(out + 10 + n, ' ', hl - n - 1);
  out[total - 1] = '\n';
}

/* ---------------------------------------------------------------------------------------
** Parser
** ------------------------------------------------------------------------------------- */

typedef struct cursor {
  const char *p, *end;
  char *err;
} cursor;

/* Every message is a literal format checked by the compiler (issue 16: no format string that
   came from elsewhere). */
static int bad(cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(cursor *c, const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(c->err, LUASHM_ERRLEN, "bad NPY header: %s", what);
  return -1;
}

static void skip_ws(cursor *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int expect(cursor *c, char ch) {
  skip_ws(c);
  if (c->p >= c->end || *c->p != ch) return bad(c, "expected '%c'", ch);
  c->p++;
  return 0;
}

/* A quoted string without escapes, copied into out (cap bytes, NUL-terminated). */
static int parse_string(cursor *c, char *out, size_t cap) {
  char q;
  size_t n = 0;
  skip_ws(c);
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return bad(c, "expected a string");
  q = *c->p++;
  while (c->p < c->end && *c->p != q) {
    if (*c->p == '\\' || n + 1 >= cap) return bad(c, "unsupported string in the dict");
    out[n++] = *c->p++;
  }
  if (c->p >= c->end) return bad(c, "unterminated string");
  c->p++;
  out[n] = '\0';
  return 0;
}

static int parse_word(cursor *c, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return 0;
  c->p += n;
  return 1;
}

static int parse_descr(cursor *c, luashm_npy *h) {
  char d[16];
  int i;
  skip_ws(c);
  if (c->p < c->end && (*c->p == '[' || *c->p == '{'))
    return bad(c, "structured dtypes are not supported");
  if (parse_string(c, d, sizeof d) != 0) return -1;
  if (strlen(d) < 2) return bad(c, "unsupported descr '%s'", d);
  for (i = 0; i < LUASHM_NDTYPES; i++) {
    const char *want = descrs[i];
    int one_byte = luashm_dtype_sizes[i] == 1;
    if (strcmp(d + 1, want + 1) != 0) continue;
    if (d[0] == '<' || d[0] == '=' || (one_byte && (d[0] == '|' || d[0] == '>'))) {
      h->dtype = i;
      return 0;
    }
    if (d[0] == '>') return bad(c, "big-endian descr '%s' is not supported", d);
  }
  return bad(
      c, "unsupported descr '%s' (luashm has i8 u8 i16 u16 i32 u32 i64 u64 f32 f64 bool f16)", d);
}

static int parse_fortran(cursor *c) {
  skip_ws(c);
  if (parse_word(c, "False")) return 0;
  if (parse_word(c, "True"))
    return bad(c, "fortran_order True (column-major) is not supported; save it C-ordered");
  return bad(c, "fortran_order is not True or False");
}

static int parse_dim(cursor *c, size_t *out) {
  size_t v = 0;
  skip_ws(c);
  if (c->p < c->end && *c->p == '-') return bad(c, "negative dimension in shape");
  if (c->p >= c->end || *c->p < '0' || *c->p > '9')
    return bad(c, "shape is not a tuple of integers");
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
    size_t d = (size_t)(*c->p++ - '0');
    if (v > (SIZE_MAX - d) / 10) return bad(c, "dimension too large in shape");
    v = v * 10 + d;
  }
  if (c->p < c->end && *c->p == 'L') c->p++;
  *out = v;
  return 0;
}

static int parse_shape(cursor *c, luashm_npy *h) {
  int comma = 0;
  if (expect(c, '(') != 0) return bad(c, "shape is not a tuple");
  h->ndim = 0;
  for (;;) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ')') break;
    if (h->ndim > 0 && !comma) return bad(c, "expected ',' or ')' in shape");
    if (h->ndim == LUASHM_MAXDIMS) return bad(c, "more than 32 dimensions");
    if (parse_dim(c, &h->shape[h->ndim]) != 0) return -1;
    h->ndim++;
    skip_ws(c);
    comma = c->p < c->end && *c->p == ',';
    if (comma) c->p++;
  }
  c->p++;
  if (h->ndim == 1 && !comma) return bad(c, "shape (n) is not a tuple");
  return 0;
}

/* The dict: exactly the keys descr, fortran_order and shape, in any order. */
static int parse_dict(cursor *c, luashm_npy *h) {
  int seen = 0;
  if (expect(c, '{') != 0) return bad(c, "the header is not a dict");
  for (;;) {
    char key[32];
    int bit;
    skip_ws(c);
    if (c->p < c->end && *c->p == '}') break;
    if (parse_string(c, key, sizeof key) != 0) return -1;
    if (expect(c, ':') != 0) return -1;
    if (strcmp(key, "descr") == 0) {
      bit = 1;
      if (parse_descr(c, h) != 0) return -1;
    } else if (strcmp(key, "fortran_order") == 0) {
      bit = 2;
      if (parse_fortran(c) != 0) return -1;
    } else if (strcmp(key, "shape") == 0) {
      bit = 4;
      if (parse_shape(c, h) != 0) return -1;
    } else {
      return bad(c, "unexpected key '%s'", key);
    }
    if (seen & bit) return bad(c, "duplicate key '%s'", key);
    seen |= bit;
    skip_ws(c);
    if (c->p < c->end && *c->p == ',') {
      c->p++;
    } else {
      skip_ws(c);
      if (c->p >= c->end || *c->p != '}') return bad(c, "expected ',' or '}' in the dict");
    }
  }
  c->p++;
  if (seen != 7)
    return bad(c, "the dict lacks '%s'",
               !(seen & 1)   ? "descr"
               : !(seen & 2) ? "fortran_order"
                             : "shape");
  skip_ws(c);
  if (c->p != c->end) return bad(c, "junk after the dict");
  return 0;
}

int luashm_npy_parse(const unsigned char *p, size_t avail, size_t total, luashm_npy *h, char *err) {
  cursor c;
  size_t start, hlen, bytes;
  int i;
  c.err = err;
  if (avail < 10 || memcmp(p, MAGIC, MAGIC_LEN) != 0) {
    c.p = c.end = NULL;
    return avail < 10 ? bad(&c, "truncated (shorter than 10 bytes)") : bad(&c, "bad magic");
  }
  if (p[7] != 0 || p[6] < 1 || p[6] > 3)
    return bad(&c, "unsupported format version %u.%u", p[6], p[7]);
  if (p[6] == 1) {
    start = 10;
    hlen = (size_t)p[8] | (size_t)p[9] << 8;
  } else {
    if (avail < 12) return bad(&c, "truncated (shorter than 12 bytes)");
    start = 12;
    hlen = (size_t)p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 | (size_t)p[11] << 24;
    if (hlen > MAX_HEADER) return bad(&c, "header length is larger than 1 MiB");
  }
  if (hlen > avail - start || start + hlen > total)
    return bad(&c, "header length runs past the end of the %s", avail < total ? "file" : "block");
  c.p = (const char *)p + start;
  c.end = c.p + hlen;
  memset(h, 0, sizeof *h);
  if (parse_dict(&c, h) != 0) return -1;
  h->data_offset = start + hlen;
  h->count = 1;
  for (i = 0; i < h->ndim; i++) {
    if (h->shape[i] == 0) {
      h->count = 0;
      break;
    }
    if (h->count > SIZE_MAX / h->shape[i]) return bad(&c, "shape overflows the address space");
    h->count *= h->shape[i];
  }
  if (h->count > SIZE_MAX / luashm_dtype_sizes[h->dtype])
    return bad(&c, "shape overflows the address space");
  bytes = h->count * luashm_dtype_sizes[h->dtype];
  if (bytes > total - h->data_offset)
    return bad(&c,
               "%zu bytes of data at offset %zu do not fit in %zu bytes (the shape lies or the "
               "data is truncated)",
               bytes, h->data_offset, total);
  return 0;
}

/* ---------------------------------------------------------------------------------------
** Files
** ------------------------------------------------------------------------------------- */

static int fail_errno(char *err, const char *op, const char *path) {
  return luashm_fail(err, op, path, strerror(errno));
}

/* Reads exactly n bytes at off, or fails naming a short file. */
static int read_at(int fd, void *dst, size_t n, off_t off, const char *path, char *err) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, (char *)dst + got, n - got, off + (off_t)got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return fail_errno(err, "load", path);
    if (r == 0) return luashm_fail(err, "load", path, "the file is shorter than its header says");
    got += (size_t)r;
  }
  return 0;
}

/* Opens path for reading, only if it is a regular file: O_NONBLOCK, so that a FIFO found there
   is refused at once instead of waiting for a writer. Returns the fd, or -1 with err. */
static int open_regular(const char *path, struct stat *st, char *err) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return fail_errno(err, "load", path);
  if (fstat(fd, st) != 0) {
    fail_errno(err, "load", path);
    close(fd);
    return -1;
  }
  if (!S_ISREG(st->st_mode)) {
    luashm_fail(err, "load", path, "not a regular file");
    close(fd);
    return -1;
  }
  return fd;
}

int luashm_npy_read_header(const char *path, luashm_npy *h, char *err) {
  unsigned char pre[12], *buf = NULL;
  struct stat st;
  size_t avail, hlen;
  int fd = open_regular(path, &st, err), rc = -1;
  if (fd < 0) return -1;
  avail = (size_t)st.st_size < sizeof pre ? (size_t)st.st_size : sizeof pre;
  if (read_at(fd, pre, avail, 0, path, err) != 0) goto done;
  /* The length field decides how much more to read; the parser checks it all again. */
  hlen = avail < 10 ? 0
         : pre[6] == 1
             ? (size_t)pre[8] | (size_t)pre[9] << 8
             : (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
  if (hlen > MAX_HEADER) hlen = MAX_HEADER;
  avail = 12 + hlen < (size_t)st.st_size ? 12 + hlen : (size_t)st.st_size;
  if ((buf = malloc(avail ? avail : 1)) == NULL) {
    luashm_fail(err, "load", path, "out of memory");
    goto done;
  }
  if (read_at(fd, buf, avail, 0, path, err) != 0) goto done;
  if (luashm_npy_parse(buf, avail, (size_t)st.st_size, h, err) != 0) {
    char cause[LUASHM_ERRLEN];
    memcpy(cause, err, LUASHM_ERRLEN);
    luashm_fail(err, "load", path, cause);
    goto done;
  }
  rc = 0;
done:
  free(buf);
  close(fd);
  return rc;
}

int luashm_npy_read_data(const char *path, const luashm_npy *h, void *dst, size_t n, char *err) {
  struct stat st;
  int rc, fd = open_regular(path, &st, err);
  if (fd < 0) return -1;
  rc = read_at(fd, dst, n, (off_t)h->data_offset, path, err);
  close(fd);
  return rc;
}

static int write_all(int fd, const void *src, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = write(fd, (const char *)src + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    done += (size_t)w;
  }
  return 0;
}

int luashm_npy_save(const char *path, int dtype, int ndim, const size_t *shape, const void *data,
                    size_t n, char *err) {
  unsigned char head[1024];
  size_t hl = luashm_npy_header_len(dtype, ndim, shape);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return fail_errno(err, "save", path);
  luashm_npy_write(head, dtype, ndim, shape);
  if (write_all(fd, head, hl) != 0 || write_all(fd, data, n) != 0) {
    fail_errno(err, "save", path);
    close(fd);
    unlink(path);
    return -1;
  }
  if (close(fd) != 0) {
    fail_errno(err, "save", path);
    unlink(path);
    return -1;
  }
  return 0;
}
