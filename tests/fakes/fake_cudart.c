/*
 * A fake CUDA 12 runtime (libcudart.so.12) for machines without a GPU.
 *
 * edgekit's CUDA seam (edgekit/agent/backends/tensorrt/cudart.py) talks to libcudart
 * through ctypes. Loading this library instead runs that exact code, argument types and
 * return codes included, with no GPU: the functions below have the real C signatures,
 * return the real error codes, and cudaGetErrorName/cudaGetErrorString give the real
 * texts (tests/agent/test_cudart.py compares them with NVIDIA's library).
 *
 * Faithful where a GPU would punish a mistake:
 * - Device memory is malloc'd host memory, so a device pointer is a real address that the
 *   tests can read, but every device pointer is checked against the live allocations: a
 *   copy that leaves its allocation, or freeing an unknown pointer, is cudaErrorInvalidValue.
 * - Work queued on a stream (cudaMemcpyAsync, cudaLaunchHostFunc) runs, in order, only when
 *   something synchronizes it. Code that reads its output before synchronizing sees stale
 *   bytes here, as it would on a GPU most of the time but not always.
 * - It is stricter than CUDA with pageable host memory: CUDA copies pageable memory before
 *   cudaMemcpyAsync returns, the fake queues it like pinned memory, so code that works here
 *   also works there. The copies are counted apart so tests can insist on pinned memory.
 *
 * The environment is read at each call, not at load, because one process keeps one dlopen
 * handle per path and the tests change it between cases:
 *   FAKE_CUDART_DEVICES  GPUs present (default 1); 0 makes every device call cudaErrorNoDevice.
 *   FAKE_CUDART_CC       compute capability "major.minor" of every device (default "8.7", Orin).
 *
 * fakecudart_* symbols are the tests' window into the fake; the real library has none.
 */

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int cudaError_t;
typedef struct CUstream_st *cudaStream_t;
typedef void (*cudaHostFn_t)(void *user_data);

enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorLaunchFailure = 719,
    cudaErrorUnknown = 999,
};

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaDeviceAttr {
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
};

#define FAKE_RUNTIME_VERSION 12060
#define FAKE_DRIVER_VERSION 12060
/* The handles CUDA reserves for the legacy default stream (0 and cudaStreamLegacy). */
#define LEGACY_STREAM ((cudaStream_t)0x1)

struct fakecudart_stats {
    int64_t device_allocations;
    int64_t pinned_blocks;
    int64_t streams;
    int64_t async_copies_pinned;
    int64_t async_copies_pageable;
    int64_t host_funcs;
};

struct block {
    char *base;
    size_t size;
    struct block *next;
};

struct op {
    int is_copy;
    void *dst;
    const void *src;
    size_t count;
    int writes_device; /* dst is device memory: what fakecudart_queued_writes asks about */
    cudaHostFn_t fn;
    void *user_data;
    struct op *next;
};

struct CUstream_st {
    int live;
    int draining;
    struct op *head, *tail;
    struct CUstream_st *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* Signalled when a stream stops draining, so a second synchronizer waits for the first. */
static pthread_cond_t drained = PTHREAD_COND_INITIALIZER;
static struct block *device_blocks, *pinned_blocks;
/* Destroyed streams stay listed (live = 0) and are never freed: a stale handle then stays
 * recognisable as cudaErrorInvalidResourceHandle instead of naming reused memory. */
static struct CUstream_st *streams;
static struct fakecudart_stats stats;

/* Per thread, as in CUDA. */
static __thread cudaError_t last_error = cudaSuccess;
static __thread int current_device = 0;
/* Set by fakecudart_fault from a host function; the synchronize that ran it reports it. */
static __thread cudaError_t host_fault = cudaSuccess;

static cudaError_t fail(cudaError_t code)
{
    last_error = code;
    return code;
}

static int device_count(void)
{
    const char *value = getenv("FAKE_CUDART_DEVICES");
    return value ? atoi(value) : 1;
}

/* 0, or cudaErrorNoDevice for every call that needs a GPU when none is present. */
static cudaError_t need_device(void)
{
    return device_count() > 0 ? cudaSuccess : cudaErrorNoDevice;
}

static struct block *find_block(struct block *list, const void *ptr, size_t count)
{
    const char *p = ptr;
    for (struct block *b = list; b; b = b->next) {
        if (p >= b->base && p < b->base + (b->size ? b->size : 1))
            return (size_t)(b->base + b->size - p) >= count ? b : NULL;
    }
    return NULL;
}

static int is_device(const void *ptr)
{
    return find_block(device_blocks, ptr, 0) != NULL;
}

static struct CUstream_st *live_stream(cudaStream_t stream)
{
    for (struct CUstream_st *s = streams; s; s = s->next)
        if (s == stream)
            return s->live ? s : NULL;
    return NULL;
}

static void run_op(struct op *op)
{
    if (op->is_copy) {
        memcpy(op->dst, op->src, op->count);
    } else {
        op->fn(op->user_data);
    }
}

/* Runs the stream's queue in order. The lock is released around each operation: a host
 * function may call back into the fake (the tests' device reads do), and a copy of a large
 * buffer should not stall other threads. Called and returns with the lock held. */
static cudaError_t drain_locked(struct CUstream_st *s)
{
    cudaError_t result = cudaSuccess;
    while (s->draining)
        pthread_cond_wait(&drained, &lock);
    s->draining = 1;
    while (s->head) {
        struct op *op = s->head;
        s->head = op->next;
        if (!s->head)
            s->tail = NULL;
        pthread_mutex_unlock(&lock);
        host_fault = cudaSuccess;
        run_op(op);
        if (host_fault != cudaSuccess && result == cudaSuccess)
            result = host_fault;
        free(op);
        pthread_mutex_lock(&lock);
    }
    s->draining = 0;
    pthread_cond_broadcast(&drained);
    return result;
}

static cudaError_t drain_all_locked(void)
{
    cudaError_t result = cudaSuccess;
    for (struct CUstream_st *s = streams; s; s = s->next) {
        cudaError_t code = drain_locked(s);
        if (result == cudaSuccess)
            result = code;
    }
    return result;
}

/* Queues op on stream, or, on the legacy default stream, runs it after every other
 * stream's work, which is the order CUDA promises for it (it may also run it at once). */
static cudaError_t submit(cudaStream_t stream, struct op *op)
{
    pthread_mutex_lock(&lock);
    if (stream == NULL || stream == LEGACY_STREAM) {
        cudaError_t code = drain_all_locked();
        pthread_mutex_unlock(&lock);
        host_fault = cudaSuccess;
        run_op(op);
        if (code == cudaSuccess)
            code = host_fault;
        free(op);
        return code == cudaSuccess ? cudaSuccess : fail(code);
    }
    struct CUstream_st *s = live_stream(stream);
    if (!s) {
        pthread_mutex_unlock(&lock);
        free(op);
        return fail(cudaErrorInvalidResourceHandle);
    }
    if (s->tail)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    pthread_mutex_unlock(&lock);
    return cudaSuccess;
}

/* Checks a copy's pointers against the allocations; kind Default infers the sides (UVA). */
static cudaError_t check_copy_locked(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind,
                                     int *dst_device, int *src_device)
{
    if (kind == cudaMemcpyDefault) {
        *dst_device = is_device(dst);
        *src_device = is_device(src);
    } else if (kind >= cudaMemcpyHostToHost && kind <= cudaMemcpyDeviceToDevice) {
        *dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
        *src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    } else {
        return cudaErrorInvalidValue;
    }
    if (!dst || !src)
        return cudaErrorInvalidValue;
    if (*dst_device && !find_block(device_blocks, dst, count))
        return cudaErrorInvalidValue;
    if (*src_device && !find_block(device_blocks, src, count))
        return cudaErrorInvalidValue;
    return cudaSuccess;
}

static cudaError_t add_block(struct block **list, void **ptr, size_t size, int64_t *counter)
{
    struct block *b = malloc(sizeof *b);
    /* malloc(0) may return NULL; one byte keeps every allocation a distinct address. */
    char *base = malloc(size ? size : 1);
    if (!b || !base) {
        free(b);
        free(base);
        return fail(cudaErrorMemoryAllocation);
    }
    /* Uninitialised on a GPU too: a pattern, so code that assumes zeros fails here. */
    memset(base, 0xA5, size);
    b->base = base;
    b->size = size;
    pthread_mutex_lock(&lock);
    b->next = *list;
    *list = b;
    ++*counter;
    pthread_mutex_unlock(&lock);
    *ptr = base;
    return cudaSuccess;
}

/* Frees the block that starts at ptr; the caller holds the lock. */
static cudaError_t remove_block_locked(struct block **list, void *ptr, int64_t *counter)
{
    for (struct block **link = list; *link; link = &(*link)->next) {
        struct block *b = *link;
        if (b->base == ptr) {
            *link = b->next;
            free(b->base);
            free(b);
            --*counter;
            return cudaSuccess;
        }
    }
    return cudaErrorInvalidValue;
}

/* -- device management ------------------------------------------------------------------ */

cudaError_t cudaGetDeviceCount(int *count)
{
    if (!count)
        return fail(cudaErrorInvalidValue);
    *count = device_count() > 0 ? device_count() : 0;
    return *count ? cudaSuccess : fail(cudaErrorNoDevice);
}

cudaError_t cudaGetDevice(int *device)
{
    if (need_device())
        return fail(need_device());
    if (!device)
        return fail(cudaErrorInvalidValue);
    *device = current_device;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    if (need_device())
        return fail(need_device());
    if (device < 0 || device >= device_count())
        return fail(cudaErrorInvalidDevice);
    current_device = device;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device)
{
    if (need_device())
        return fail(need_device());
    if (!value)
        return fail(cudaErrorInvalidValue);
    if (device < 0 || device >= device_count())
        return fail(cudaErrorInvalidDevice);
    const char *cc = getenv("FAKE_CUDART_CC");
    int major = 8, minor = 7;
    if (cc && sscanf(cc, "%d.%d", &major, &minor) != 2)
        return fail(cudaErrorInvalidValue);
    /* Only what edgekit asks: an attribute the fake does not model fails instead of
     * answering a made-up value. */
    switch (attr) {
    case cudaDevAttrComputeCapabilityMajor:
        *value = major;
        return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor:
        *value = minor;
        return cudaSuccess;
    default:
        return fail(cudaErrorInvalidValue);
    }
}

cudaError_t cudaRuntimeGetVersion(int *version)
{
    if (!version)
        return fail(cudaErrorInvalidValue);
    *version = FAKE_RUNTIME_VERSION;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *version)
{
    if (!version)
        return fail(cudaErrorInvalidValue);
    *version = FAKE_DRIVER_VERSION;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    if (need_device())
        return fail(need_device());
    pthread_mutex_lock(&lock);
    cudaError_t code = drain_all_locked();
    pthread_mutex_unlock(&lock);
    return code == cudaSuccess ? cudaSuccess : fail(code);
}

/* -- errors ----------------------------------------------------------------------------- */

static const struct {
    cudaError_t code;
    const char *name;
    const char *text;
} errors[] = {
    {cudaSuccess, "cudaSuccess", "no error"},
    {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
    {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
    {cudaErrorInitializationError, "cudaErrorInitializationError", "initialization error"},
    {cudaErrorInsufficientDriver, "cudaErrorInsufficientDriver",
     "CUDA driver version is insufficient for CUDA runtime version"},
    {cudaErrorNoDevice, "cudaErrorNoDevice", "no CUDA-capable device is detected"},
    {cudaErrorInvalidDevice, "cudaErrorInvalidDevice", "invalid device ordinal"},
    {cudaErrorInvalidResourceHandle, "cudaErrorInvalidResourceHandle", "invalid resource handle"},
    {cudaErrorNotReady, "cudaErrorNotReady", "device not ready"},
    {cudaErrorLaunchFailure, "cudaErrorLaunchFailure", "unspecified launch failure"},
    {cudaErrorUnknown, "cudaErrorUnknown", "unknown error"},
};

const char *cudaGetErrorName(cudaError_t code)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].code == code)
            return errors[i].name;
    return "unrecognized error code";
}

const char *cudaGetErrorString(cudaError_t code)
{
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++)
        if (errors[i].code == code)
            return errors[i].text;
    return "unrecognized error code";
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t code = last_error;
    last_error = cudaSuccess;
    return code;
}

cudaError_t cudaPeekAtLastError(void)
{
    return last_error;
}

/* -- memory ----------------------------------------------------------------------------- */

cudaError_t cudaMalloc(void **dev_ptr, size_t size)
{
    if (need_device())
        return fail(need_device());
    if (!dev_ptr)
        return fail(cudaErrorInvalidValue);
    return add_block(&device_blocks, dev_ptr, size, &stats.device_allocations);
}

cudaError_t cudaFree(void *dev_ptr)
{
    if (!dev_ptr)
        return cudaSuccess;
    pthread_mutex_lock(&lock);
    /* cudaFree waits for the device first, so queued work never touches freed memory. */
    cudaError_t code = drain_all_locked();
    if (remove_block_locked(&device_blocks, dev_ptr, &stats.device_allocations) != cudaSuccess)
        code = cudaErrorInvalidValue;
    pthread_mutex_unlock(&lock);
    return code == cudaSuccess ? cudaSuccess : fail(code);
}

cudaError_t cudaMallocHost(void **ptr, size_t size)
{
    if (need_device())
        return fail(need_device());
    if (!ptr)
        return fail(cudaErrorInvalidValue);
    return add_block(&pinned_blocks, ptr, size, &stats.pinned_blocks);
}

cudaError_t cudaFreeHost(void *ptr)
{
    if (!ptr)
        return cudaSuccess;
    pthread_mutex_lock(&lock);
    cudaError_t code = drain_all_locked();
    if (remove_block_locked(&pinned_blocks, ptr, &stats.pinned_blocks) != cudaSuccess)
        code = cudaErrorInvalidValue;
    pthread_mutex_unlock(&lock);
    return code == cudaSuccess ? cudaSuccess : fail(code);
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind)
{
    if (need_device())
        return fail(need_device());
    int dst_device = 0, src_device = 0;
    pthread_mutex_lock(&lock);
    /* Synchronous and on the legacy default stream: everything queued before runs first. */
    cudaError_t code = count ? check_copy_locked(dst, src, count, kind, &dst_device, &src_device) : cudaSuccess;
    if (code == cudaSuccess)
        code = drain_all_locked();
    pthread_mutex_unlock(&lock);
    if (code != cudaSuccess)
        return fail(code);
    if (count)
        memcpy(dst, src, count);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream)
{
    if (need_device())
        return fail(need_device());
    if (!count)
        return cudaSuccess;
    int dst_device = 0, src_device = 0;
    pthread_mutex_lock(&lock);
    cudaError_t code = check_copy_locked(dst, src, count, kind, &dst_device, &src_device);
    if (code == cudaSuccess && !(dst_device && src_device)) {
        const void *host = dst_device ? src : dst;
        if (find_block(pinned_blocks, host, count))
            stats.async_copies_pinned++;
        else
            stats.async_copies_pageable++;
    }
    pthread_mutex_unlock(&lock);
    if (code != cudaSuccess)
        return fail(code);
    struct op *op = calloc(1, sizeof *op);
    if (!op)
        return fail(cudaErrorMemoryAllocation);
    op->is_copy = 1;
    op->dst = dst;
    op->src = src;
    op->count = count;
    op->writes_device = dst_device;
    return submit(stream, op);
}

/* -- streams ---------------------------------------------------------------------------- */

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags)
{
    if (need_device())
        return fail(need_device());
    /* cudaStreamDefault (0) and cudaStreamNonBlocking (1) are the only flags. */
    if (!stream || flags > 1)
        return fail(cudaErrorInvalidValue);
    struct CUstream_st *s = calloc(1, sizeof *s);
    if (!s)
        return fail(cudaErrorMemoryAllocation);
    s->live = 1;
    pthread_mutex_lock(&lock);
    s->next = streams;
    streams = s;
    stats.streams++;
    pthread_mutex_unlock(&lock);
    *stream = s;
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *stream)
{
    return cudaStreamCreateWithFlags(stream, 0);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    pthread_mutex_lock(&lock);
    struct CUstream_st *s = live_stream(stream);
    if (!s) {
        pthread_mutex_unlock(&lock);
        return fail(cudaErrorInvalidResourceHandle);
    }
    /* CUDA lets queued work finish after the handle goes; running it now is the same. */
    cudaError_t code = drain_locked(s);
    s->live = 0;
    stats.streams--;
    pthread_mutex_unlock(&lock);
    return code == cudaSuccess ? cudaSuccess : fail(code);
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    if (need_device())
        return fail(need_device());
    pthread_mutex_lock(&lock);
    cudaError_t code;
    if (stream == NULL || stream == LEGACY_STREAM) {
        code = drain_all_locked();
    } else {
        struct CUstream_st *s = live_stream(stream);
        code = s ? drain_locked(s) : cudaErrorInvalidResourceHandle;
    }
    pthread_mutex_unlock(&lock);
    return code == cudaSuccess ? cudaSuccess : fail(code);
}

/* Runs fn in the thread that synchronizes (CUDA uses a driver thread; either way fn must
 * not call CUDA on the stream it runs on). */
cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void *user_data)
{
    if (need_device())
        return fail(need_device());
    if (!fn)
        return fail(cudaErrorInvalidValue);
    struct op *op = calloc(1, sizeof *op);
    if (!op)
        return fail(cudaErrorMemoryAllocation);
    op->fn = fn;
    op->user_data = user_data;
    pthread_mutex_lock(&lock);
    stats.host_funcs++;
    pthread_mutex_unlock(&lock);
    return submit(stream, op);
}

/* -- for the tests ---------------------------------------------------------------------- */

int fakecudart_stats(struct fakecudart_stats *out)
{
    if (!out)
        return cudaErrorInvalidValue;
    pthread_mutex_lock(&lock);
    *out = stats;
    pthread_mutex_unlock(&lock);
    return cudaSuccess;
}

/* The size of the live device allocation that starts at ptr. */
int fakecudart_allocation_size(const void *ptr, size_t *size)
{
    int code = cudaErrorInvalidValue;
    pthread_mutex_lock(&lock);
    for (struct block *b = device_blocks; b; b = b->next) {
        if (b->base == ptr) {
            *size = b->size;
            code = cudaSuccess;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    return code;
}

/* Whether [ptr, ptr + count) lies inside one live device allocation. */
int fakecudart_check_device(const void *ptr, size_t count)
{
    pthread_mutex_lock(&lock);
    int code = find_block(device_blocks, ptr, count) ? cudaSuccess : cudaErrorInvalidValue;
    pthread_mutex_unlock(&lock);
    return code;
}

/* How many queued copies write into [ptr, ptr + count) of device memory: reading it now
 * would race them on a GPU. */
int fakecudart_queued_writes(const void *ptr, size_t count)
{
    const char *start = ptr, *end = start + count;
    int found = 0;
    pthread_mutex_lock(&lock);
    for (struct CUstream_st *s = streams; s; s = s->next) {
        for (struct op *op = s->head; op; op = op->next) {
            const char *dst = op->dst;
            if (op->is_copy && op->writes_device && dst < end && start < dst + op->count)
                found++;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

/* Called from a host function that failed, as a faulting kernel would: the synchronize
 * that ran it returns code. */
void fakecudart_fault(int code)
{
    host_fault = code;
}
