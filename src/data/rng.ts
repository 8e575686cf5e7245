// A small deterministic PRNG for the data pipeline: every random choice of the loader (epoch permutations, crop
// boxes, photometric parameters, replacements for bad images) is drawn from a generator keyed by integers such as
// (seed, epoch, index, stream), so the same seed gives the same batches whatever the worker count or timing.
//
// The key is hashed with MurmurHash3's 32-bit mixing (github.com/aappleby/smhasher, MurmurHash3.cpp) into the
// 128-bit state of xoshiro128** (Blackman & Vigna, prng.di.unimi.it/xoshiro128starstar.c). Floats carry 53 random
// bits. Pure JS with no imports, so decode workers can use it too. Not for cryptography.

/** What a generator's key is made of: non-negative safe integers, or strings (hashed with FNV-1a). */
export type KeyPart = number | string;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function mixWord(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over a string's UTF-16 code units: a stable 32-bit id for record keys. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The key's parts as 32-bit words: a number gives its low and high words (safe integers up to 2^53). */
function keyWords(parts: readonly KeyPart[]): number[] {
  const words: number[] = [];
  for (const p of parts) {
    if (typeof p === "string") {
      words.push(hashString(p), p.length);
      continue;
    }
    if (!Number.isSafeInteger(p) || p < 0) throw new RangeError(`Rng key: expected non-negative safe integers but received ${p}`);
    words.push(p >>> 0, Math.floor(p / 2 ** 32) >>> 0);
  }
  return words;
}

/** xoshiro128**: four 32-bit words of state, period 2^128 - 1. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** A generator for a key; equal keys give equal streams. */
  static forKey(...parts: KeyPart[]): Rng {
    const words = keyWords(parts);
    // Four differently-seeded MurmurHash3 passes over the key fill the state.
    const state = [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344].map((seed) => {
      let h = seed;
      for (const w of words) h = mixWord(h, w);
      return fmix(h ^ words.length);
    });
    return new Rng(state[0]!, state[1]!, state[2]!, state[3]!);
  }

  private constructor(a: number, b: number, c: number, d: number) {
    this.s0 = a | 0;
    this.s1 = b | 0;
    this.s2 = c | 0;
    this.s3 = d | 0;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the all-zero state is a fixed point
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9);
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result >>> 0;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  /** Uniform integer in [lo, hi), hi - lo <= 2^53. */
  int(lo: number, hi: number): number {
    if (!(hi > lo)) throw new RangeError(`Rng.int: empty range [${lo}, ${hi})`);
    return lo + Math.floor(this.float() * (hi - lo));
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.float() < p;
  }

  /** A uniform random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    this.shuffle(out);
    return out;
  }

  /** Shuffles in place (Fisher-Yates) and returns the array. */
  shuffle<A extends { length: number; [i: number]: number }>(a: A): A {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    return a;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
