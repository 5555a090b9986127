/*
** Links between a parent and its workers (see link.h): the registry of held links, frames,
** reading and waiting.
*/
#include "link.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sync.h"

#define READ_ROOM 65536  /* the least free room a read is given */
#define SEND_SLICE_MS 50 /* a blocked send looks at the interrupt flag at least this often */

/* ---------------------------------------------------------------------------------------
** Held links
** ------------------------------------------------------------------------------------- */

static int *held_fds;
static size_t held_n, held_cap;

int luashm_link_hold(int fd) {
  if (held_n == held_cap) {
    size_t cap = held_cap ? held_cap * 2 : 16;
    int *p = (int *)realloc(held_fds, cap * sizeof *p);
    if (p == NULL) return -1;
    held_fds = p;
    held_cap = cap;
  }
  held_fds[held_n++] = fd;
  return 0;
}

void luashm_link_release(int fd) {
  size_t i;
  for (i = 0; i < held_n; i++)
    if (held_fds[i] == fd) {
      held_fds[i] = held_fds[--held_n];
      break;
    }
  close(fd);
}

int luashm_link_keep_only(int fd) {
  size_t i;
  for (i = 0; i < held_n; i++)
    if (held_fds[i] != fd) close(held_fds[i]);
  held_n = 0;
  return luashm_link_hold(fd);
}

void luashm_link_close(luashm_link *k) {
  if (k->fd >= 0) luashm_link_release(k->fd);
  k->fd = -1;
}

void luashm_link_free(luashm_link *k) {
  luashm_link_close(k);
  free(k->buf);
  k->buf = NULL;
  k->len = k->cap = 0;
}

/* ---------------------------------------------------------------------------------------
** Frames
** ------------------------------------------------------------------------------------- */

static size_t frame_limit = LUASHM_FRAME_MAX;

size_t luashm_frame_limit(void) {
  return frame_limit;
}

void luashm_frame_set_limit(size_t limit) {
  frame_limit = limit < LUASHM_FRAME_MAX ? limit : LUASHM_FRAME_MAX;
}

static uint32_t frame_len(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Waits until fd can take more bytes: 0, or EINTR (interruptible and an interrupt pending). */
static int wait_room(int fd, int interruptible) {
  struct pollfd pfd = {fd, POLLOUT, 0};
  if (interruptible && luashm_interrupt_pending()) return EINTR;
  poll(&pfd, 1, interruptible ? SEND_SLICE_MS : -1);
  return interruptible && luashm_interrupt_pending() ? EINTR : 0;
}

int luashm_frame_send(int fd, char tag, const void *p, size_t len, int interruptible) {
  unsigned char head[LUASHM_FRAME_HEAD];
  uint32_t n;
  struct iovec iov[2];
  struct msghdr msg;
  if (len > frame_limit) return errno = E2BIG, -1;
  n = (uint32_t)(len + 1);
  head[0] = (unsigned char)n;
  head[1] = (unsigned char)(n >> 8);
  head[2] = (unsigned char)(n >> 16);
  head[3] = (unsigned char)(n >> 24);
  head[4] = (unsigned char)tag;
  iov[0].iov_base = head;
  iov[0].iov_len = LUASHM_FRAME_HEAD;
  iov[1].iov_base = (void *)p;
  iov[1].iov_len = len;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  while (msg.msg_iovlen > 0) {
    ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EINTR && errno != EAGAIN) return -1;
      if (wait_room(fd, interruptible) == EINTR) return errno = EINTR, -1;
      continue;
    }
    while (w > 0 && msg.msg_iovlen > 0) {
      size_t step = (size_t)w < msg.msg_iov->iov_len ? (size_t)w : msg.msg_iov->iov_len;
      msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + step;
      msg.msg_iov->iov_len -= step;
      w -= (ssize_t)step;
      if (msg.msg_iov->iov_len == 0) {
        msg.msg_iov++;
        msg.msg_iovlen--;
      }
    }
  }
  return 0;
}

int luashm_frame_ready(const luashm_link *k) {
  if (k->len < LUASHM_FRAME_HEAD) return 0;
  if (k->len - 4 < frame_len(k->buf)) return 0;
  return k->buf[4];
}

const unsigned char *luashm_frame_payload(const luashm_link *k, size_t *len) {
  *len = (size_t)frame_len(k->buf) - 1;
  return k->buf + LUASHM_FRAME_HEAD;
}

void luashm_frame_consume(luashm_link *k) {
  size_t n = 4 + (size_t)frame_len(k->buf);
  memmove(k->buf, k->buf + n, k->len - n);
  k->len -= n;
}

/* Blocking read of exactly len bytes: 1 done, 0 EOF before any byte, -1 error or short. */
static int read_exact(int fd, unsigned char *p, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t r = read(fd, p + got, len - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return got == 0 && r == 0 ? 0 : -1;
    got += (size_t)r;
  }
  return 1;
}

unsigned char *luashm_frame_read(int fd, int *tag, size_t *len) {
  unsigned char head[LUASHM_FRAME_HEAD], *p;
  uint32_t n;
  int r = read_exact(fd, head, LUASHM_FRAME_HEAD);
  *len = r == 0 ? 0 : 1;
  if (r != 1) return NULL;
  n = frame_len(head);
  if (n == 0) return NULL; /* a frame counts its tag: a zero length is no frame of ours */
  p = (unsigned char *)malloc(n);
  if (p == NULL || read_exact(fd, p, n - 1) != 1) {
    free(p);
    return NULL;
  }
  *tag = head[4];
  *len = n - 1;
  return p;
}

/* ---------------------------------------------------------------------------------------
** Reading and waiting
** ------------------------------------------------------------------------------------- */

int luashm_link_pump(luashm_link *k) {
  for (;;) {
    ssize_t r;
    if (k->fd < 0) return 0;
    if (k->cap - k->len < READ_ROOM) {
      size_t cap = k->cap ? k->cap * 2 : READ_ROOM * 2;
      unsigned char *p = (unsigned char *)realloc(k->buf, cap);
      if (p == NULL) return -1;
      k->buf = p;
      k->cap = cap;
    }
    r = read(k->fd, k->buf + k->len, k->cap - k->len);
    if (r > 0) {
      k->len += (size_t)r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return 0;
    luashm_link_release(k->fd); /* EOF (or a broken link): the child has exited or is exiting */
    k->fd = -1;
    return 1;
  }
}

int luashm_link_poll(luashm_link *const *ks, int n, struct pollfd *pfd, int ms) {
  int i, np = 0;
  if (luashm_interrupt_pending()) return EINTR;
  for (i = 0; i < n; i++)
    if (ks[i]->fd >= 0) pfd[np++] = (struct pollfd){ks[i]->fd, POLLIN, 0};
  /* poll is never restarted after a signal handler, whatever its SA_RESTART: a SIGINT wakes
     this at once. */
  poll(pfd, (nfds_t)np, ms);
  return luashm_interrupt_pending() ? EINTR : 0;
}
