// Peak of a process's large heap blocks, for `seer bench step --peak-memory` (CPU).
//
// Loaded with LD_PRELOAD into either engine's process (node running seerkit, python running the PyTorch anchor):
// it wraps the malloc family, counts the bytes of every live block of at least ALLOC_PEAK_MIN_BYTES (default
// 64 KiB: tensor storage, which libtorch's CPU allocator takes from posix_memalign, and not the interpreters' small
// objects), and at exit writes the high-water mark in bytes to the file named by ALLOC_PEAK_OUT. Both engines run on
// the same libtorch and allocator, so the two peaks compare the tensors each program keeps alive at its worst
// moment: the CPU counterpart of the CUDA caching allocator's peak that the GPU bench reports.
//
// Sizes are malloc_usable_size() at allocation and at free, so a block is added and removed by the same amount.
// dlsym() may call calloc() while the real functions are being looked up: those few bytes come from a static
// buffer. Only the process that loaded the probe first reports: ALLOC_PEAK_OUT is removed from the environment at
// load, so that child processes (which inherit LD_PRELOAD) do not overwrite the figure.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void* (*real_malloc)(size_t);
static void (*real_free)(void*);
static void* (*real_calloc)(size_t, size_t);
static void* (*real_realloc)(void*, size_t);
static int (*real_posix_memalign)(void**, size_t, size_t);
static void* (*real_aligned_alloc)(size_t, size_t);
static void* (*real_memalign)(size_t, size_t);
static void* (*real_valloc)(size_t);
static void* (*real_pvalloc)(size_t);

static _Atomic long live_bytes;
static _Atomic long peak_bytes;
static size_t min_bytes = 64 * 1024;

static char boot[8192];
static size_t boot_used;
static int in_boot(const void* p) { return (const char*)p >= boot && (const char*)p < boot + sizeof boot; }

static char report_path[4096];
static __thread int resolving; // this thread is inside resolve(): malloc and calloc serve dlsym from `boot`

/** Zeroed bytes from `boot`, for dlsym's own allocations while resolve() runs. */
static void* boot_alloc(size_t n) {
  size_t want = (n + 15) & ~(size_t)15;
  if (boot_used + want > sizeof boot) return NULL;
  void* p = boot + boot_used;
  boot_used += want;
  memset(p, 0, want);
  return p;
}

static void resolve(void) {
  if (real_free || resolving) return;
  resolving = 1;
  real_malloc = dlsym(RTLD_NEXT, "malloc");
  real_realloc = dlsym(RTLD_NEXT, "realloc");
  real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
  real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
  real_memalign = dlsym(RTLD_NEXT, "memalign");
  real_valloc = dlsym(RTLD_NEXT, "valloc");
  real_pvalloc = dlsym(RTLD_NEXT, "pvalloc");
  real_calloc = dlsym(RTLD_NEXT, "calloc");
  real_free = dlsym(RTLD_NEXT, "free"); // last: it marks the lookup done
  resolving = 0;
}

__attribute__((constructor)) static void load(void) {
  resolve();
  const char* m = getenv("ALLOC_PEAK_MIN_BYTES");
  if (m) min_bytes = strtoul(m, NULL, 10);
  const char* out = getenv("ALLOC_PEAK_OUT");
  if (out && strlen(out) < sizeof report_path) {
    strcpy(report_path, out);
    unsetenv("ALLOC_PEAK_OUT");
  }
}

static void count(void* p, int sign) {
  if (!p || in_boot(p)) return;
  size_t n = malloc_usable_size(p);
  if (n < min_bytes) return;
  long now = atomic_fetch_add(&live_bytes, sign * (long)n) + sign * (long)n;
  long peak = atomic_load(&peak_bytes);
  while (now > peak && !atomic_compare_exchange_weak(&peak_bytes, &peak, now)) {
  }
}

void* malloc(size_t n) {
  if (!real_free) {
    if (resolving) return boot_alloc(n);
    resolve();
  }
  void* p = real_malloc(n);
  count(p, 1);
  return p;
}

void* calloc(size_t k, size_t n) {
  if (!real_free) {
    if (resolving) return boot_alloc(k * n);
    resolve();
  }
  void* p = real_calloc(k, n);
  count(p, 1);
  return p;
}

void free(void* p) {
  if (!p || in_boot(p)) return;
  resolve();
  count(p, -1);
  real_free(p);
}

void* realloc(void* p, size_t n) {
  resolve();
  if (in_boot(p)) { // never happens in practice; copy out of the static buffer
    void* q = real_malloc(n);
    size_t room = (size_t)(boot + sizeof boot - (char*)p);
    if (q) memcpy(q, p, n < room ? n : room);
    count(q, 1);
    return q;
  }
  count(p, -1);
  void* q = real_realloc(p, n);
  if (q) count(q, 1);
  else if (n != 0 && p) count(p, 1); // a failed realloc leaves p allocated; realloc(p, 0) freed it
  return q;
}

int posix_memalign(void** out, size_t align, size_t n) {
  resolve();
  int rc = real_posix_memalign(out, align, n);
  if (rc == 0) count(*out, 1);
  return rc;
}

void* aligned_alloc(size_t align, size_t n) {
  resolve();
  void* p = real_aligned_alloc(align, n);
  count(p, 1);
  return p;
}

void* memalign(size_t align, size_t n) {
  resolve();
  void* p = real_memalign(align, n);
  count(p, 1);
  return p;
}

void* valloc(size_t n) {
  resolve();
  void* p = real_valloc(n);
  count(p, 1);
  return p;
}

void* pvalloc(size_t n) {
  resolve();
  void* p = real_pvalloc(n);
  count(p, 1);
  return p;
}

__attribute__((destructor)) static void report(void) {
  if (!report_path[0]) return;
  FILE* f = fopen(report_path, "w");
  if (!f) return;
  fprintf(f, "%ld\n", atomic_load(&peak_bytes));
  fclose(f);
}
