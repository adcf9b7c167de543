/* cnnkit's bilinear affine warp for float32 (C, H, W) images, C <= 4 per pass.
 *
 * Each output pixel (i, j) samples the input at (r, c) = A (i, j, 1) with bilinear weights,
 * exactly like scipy.ndimage.affine_transform(order=1) with modes nearest, reflect,
 * grid-wrap and grid-constant (an outside corner takes cval). The image is first
 * interleaved into 4 floats per pixel so one 16-byte load fetches every channel of a corner:
 * four loads and six vector operations per output pixel. Compiled on the user's machine
 * (-O3 -march=native) by cnnkit/data/native/__init__.py; torch's grid_sample is the fallback.
 */
#include <math.h>
#include <stdlib.h>

typedef float v4 __attribute__((vector_size(16)));

enum { NEAREST = 0, REFLECT = 1, WRAP = 2, CONSTANT = 3 };

static inline v4 load4(const float *p) { v4 v; __builtin_memcpy(&v, p, 16); return v; }

/* An index outside [0, n) mapped by the fill mode; -1 means "use cval". */
static inline int map_index(int i, int n, int mode) {
    if ((unsigned)i < (unsigned)n) return i;
    if (mode == NEAREST) return i < 0 ? 0 : n - 1;
    if (mode == REFLECT) { int p = 2 * n, k = i % p; if (k < 0) k += p; return k < n ? k : p - 1 - k; }
    if (mode == WRAP) { int k = i % n; if (k < 0) k += n; return k; }
    return -1;
}

static inline v4 lerp2(v4 p00, v4 p01, v4 p10, v4 p11, float fr, float fc) {
    v4 top = p00 + fc * (p01 - p00), bot = p10 + fc * (p11 - p10);
    return top + fr * (bot - top);
}

static v4 border_pixel(const float *s4, int h, int w, double r, double c, int mode, v4 cv) {
    r = fmax(fmin(r, 1e9), -1e9), c = fmax(fmin(c, 1e9), -1e9); /* int-safe, NaN -> a bound */
    double rf = floor(r), cf = floor(c);
    int r0 = (int)rf, c0 = (int)cf;
    int ra = map_index(r0, h, mode), rb = map_index(r0 + 1, h, mode);
    int ca = map_index(c0, w, mode), cb = map_index(c0 + 1, w, mode);
    v4 p00 = (ra < 0 || ca < 0) ? cv : load4(s4 + 4 * ((long)ra * w + ca));
    v4 p01 = (ra < 0 || cb < 0) ? cv : load4(s4 + 4 * ((long)ra * w + cb));
    v4 p10 = (rb < 0 || ca < 0) ? cv : load4(s4 + 4 * ((long)rb * w + ca));
    v4 p11 = (rb < 0 || cb < 0) ? cv : load4(s4 + 4 * ((long)rb * w + cb));
    return lerp2(p00, p01, p10, p11, (float)(r - rf), (float)(c - cf));
}

static void interleave(const float *src, float *s4, int c, long plane) {
    if (c == 3) {
        for (long q = 0; q < plane; q++) {
            v4 v = {src[q], src[plane + q], src[2 * plane + q], 0};
            __builtin_memcpy(s4 + 4 * q, &v, 16);
        }
        return;
    }
    for (long q = 0; q < plane; q++) {
        v4 v = {0, 0, 0, 0};
        for (int k = 0; k < c; k++) v[k] = src[k * plane + q];
        __builtin_memcpy(s4 + 4 * q, &v, 16);
    }
}

static void warp_image(const float *s4, float *dst, const double *a, int c, int h, int w,
                       int mode, v4 cv) {
    long plane = (long)h * w;
    double rmax = h - 1, cmax = w - 1;
    for (int i = 0; i < h; i++) {
        double r = a[0] * i + a[2], col = a[3] * i + a[5];
        for (int j = 0; j < w; j++) {
            double rr = r + j * a[1], cc = col + j * a[4];
            v4 out;
            if (rr >= 0 && rr < rmax && cc >= 0 && cc < cmax) { /* all four corners inside */
                int r0 = (int)rr, c0 = (int)cc;  /* truncation == floor for rr, cc >= 0 */
                const float *p = s4 + 4 * ((long)r0 * w + c0);
                out = lerp2(load4(p), load4(p + 4), load4(p + 4 * w), load4(p + 4 * w + 4),
                            (float)(rr - r0), (float)(cc - c0));
            } else {
                out = border_pixel(s4, h, w, rr, cc, mode, cv);
            }
            long o = (long)i * w + j;
            for (int k = 0; k < c; k++) dst[k * plane + o] = out[k];
        }
    }
}

/* Warp images [b0, b1) of x (B, C, H, W) into y by the row-major 3x3 maps m (B, 3, 3,
 * output (row, col, 1) -> input (row, col)), the images split over `threads` OpenMP threads
 * when built with -fopenmp (the caller's, torch's, runtime). Returns 0, or -1 when out of
 * memory. */
int cnnkit_warp_f32(const float *x, float *y, const double *m, long b0, long b1, long c,
                    long h, long w, int mode, float cval, int threads) {
    long plane = h * w;
    int failed = 0;
    v4 cv = {cval, cval, cval, cval};
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(| : failed)
#endif
    {
        float *s4 = malloc(plane * 4 * sizeof(float));
        if (!s4) failed = 1;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (long b = b0; b < b1; b++)
            for (long k0 = 0; s4 && k0 < c; k0 += 4) {
                int ck = c - k0 < 4 ? (int)(c - k0) : 4;
                long off = (b * c + k0) * plane;
                interleave(x + off, s4, ck, plane);
                warp_image(s4, y + off, m + 9 * b, ck, (int)h, (int)w, mode, cv);
            }
        free(s4);
    }
    return failed ? -1 : 0;
}

/* 1 when built with OpenMP (the caller passes its thread count), else 0 (the caller splits). */
int cnnkit_warp_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
