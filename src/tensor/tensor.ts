// The Tensor: a JS handle on one libtorch tensor, with PyTorch's method names in camelCase.
//
// Ownership: each Tensor owns one native handle. dispose() (or `using`, or the enclosing tidy()) frees it; the
// data lives on while autograd or a view still needs it. Every op returns a new Tensor; in-place ops end in `_`
// and return `this`, as in PyTorch.
import { torch } from "../native/load";
import { DTYPE_BYTES, type DType, type Device, type TypedArray, checkDevice, dtypeCode, dtypeFromCode } from "./dtype";
import { registerTensorClass, release, track } from "./scope";

export type Scalar = number;
type Other = Tensor | Scalar;

export class TensorDisposedError extends Error {
  override name = "TensorDisposedError";
}

export class Tensor implements Disposable {
  /** The native handle; -1 once disposed. */
  private handle: number;
  /** True when exempt from tidy() (parameters, buffers, keep()). */
  kept = false;
  /** Internal (scope.ts): whether the GC safety net watches this tensor. */
  gcArmed = false;

  /** Wraps a native handle. Internal: use the creation functions in creation.ts. */
  constructor(id: number) {
    this.handle = id;
    track(this);
  }

  /** The native handle, for the binding. Throws once disposed. */
  get id(): number {
    if (this.handle < 0) throw new TensorDisposedError("tensor used after dispose()");
    return this.handle;
  }

  get isDisposed(): boolean {
    return this.handle < 0;
  }

  dispose(): void {
    if (this.handle < 0) return;
    release(this, this.handle);
    this.handle = -1;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- metadata ----

  get shape(): number[] {
    return torch.shape(this.id);
  }
  get strides(): number[] {
    return torch.strides(this.id);
  }
  get ndim(): number {
    return torch.dim(this.id);
  }
  get numel(): number {
    return torch.numel(this.id);
  }
  get dtype(): DType {
    return dtypeFromCode(torch.dtypeCode(this.id));
  }
  get device(): Device {
    return torch.deviceName(this.id) as Device;
  }
  /** Size of one dimension; negative dims count from the end. */
  size(dim: number): number {
    const s = this.shape;
    const d = dim < 0 ? s.length + dim : dim;
    if (d < 0 || d >= s.length) throw new RangeError(`dim ${dim} out of range for a ${s.length}-d tensor`);
    return s[d]!;
  }
  isContiguous(): boolean {
    return torch.isContiguous(this.id);
  }
  /** Whether a 4-d tensor is laid out NHWC (channels-last). */
  isChannelsLast(): boolean {
    return torch.isChannelsLast(this.id);
  }
  toString(): string {
    return `Tensor(shape=[${this.shape.join(", ")}], dtype=${this.dtype}, device=${this.device}${this.requiresGrad ? ", requiresGrad" : ""})`;
  }

  // ---- data out ----

  /**
   * The elements as a TypedArray, row-major (one copy; a device sync point on CUDA). bfloat16 and float16 read
   * as Float32Array, bool as Uint8Array, int64 as BigInt64Array.
   */
  data(): TypedArray {
    const dt = this.dtype;
    if (dt === "bfloat16" || dt === "float16") {
      using f = this.to("float32");
      return f.data();
    }
    const buf = torch.toBytes(this.id);
    switch (dt) {
      case "float32": return new Float32Array(buf);
      case "float64": return new Float64Array(buf);
      case "int64": return new BigInt64Array(buf);
      case "int32": return new Int32Array(buf);
      default: return new Uint8Array(buf);
    }
  }
  /** Raw little-endian bytes of the elements, row-major (what safetensors stores). */
  bytes(): Uint8Array {
    return new Uint8Array(torch.toBytes(this.id));
  }
  /** The elements as plain numbers (int64 converted with Number()). */
  toArray(): number[] {
    const d = this.data();
    return d instanceof BigInt64Array ? Array.from(d, Number) : Array.from(d);
  }
  /** A one-element tensor's value (a device sync point on CUDA). */
  item(): number {
    return torch.item(this.id);
  }

  // ---- conversion ----

  to(target: DType | Device, opts: { nonBlocking?: boolean } = {}): Tensor {
    if (target === "cpu" || target.startsWith("cuda")) return new Tensor(torch.toDevice(this.id, checkDevice(target), opts.nonBlocking ?? false));
    return new Tensor(torch.toDtype(this.id, dtypeCode(target as DType)));
  }
  float(): Tensor { return this.to("float32"); }
  double(): Tensor { return this.to("float64"); }
  long(): Tensor { return this.to("int64"); }
  cpu(): Tensor { return this.to("cpu"); }
  cuda(index = 0): Tensor { return this.to(`cuda:${index}`); }
  pinMemory(): Tensor { return new Tensor(torch.pinMemory(this.id)); }
  contiguous(): Tensor { return new Tensor(torch.contiguous(this.id)); }
  /** NHWC memory layout for a 4-d tensor (same shape, other strides). */
  channelsLast(): Tensor { return new Tensor(torch.channelsLast(this.id)); }
  clone(): Tensor { return new Tensor(torch.clone(this.id)); }
  detach(): Tensor { return new Tensor(torch.detach(this.id)); }
  copy_(src: Tensor): this { torch.copy_(this.id, src.id); return this; }

  // ---- autograd ----

  get requiresGrad(): boolean { return torch.requiresGrad(this.id); }
  requiresGrad_(on = true): this { torch.setRequiresGrad(this.id, on); return this; }
  get isLeaf(): boolean { return torch.isLeaf(this.id); }
  retainGrad(): this { torch.retainGrad(this.id); return this; }
  /** Backpropagates from this tensor; a non-scalar needs `grad` (the vector in the vector-Jacobian product). */
  backward(grad?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    torch.backward(this.id, grad ? grad.id : null, opts.retainGraph ?? false);
  }
  /** The accumulated gradient as a new handle (dispose it), or undefined. */
  get grad(): Tensor | undefined {
    const g = torch.grad(this.id);
    return g === undefined ? undefined : new Tensor(g);
  }
  set grad(g: Tensor | undefined) {
    if (g === undefined) torch.clearGrad(this.id);
    else torch.setGrad(this.id, g.id);
  }

  // ---- views and indexing ----

  reshape(...shape: number[]): Tensor { return new Tensor(torch.reshape(this.id, shape)); }
  view(...shape: number[]): Tensor { return new Tensor(torch.view(this.id, shape)); }
  permute(...dims: number[]): Tensor { return new Tensor(torch.permute(this.id, dims)); }
  transpose(d0: number, d1: number): Tensor { return new Tensor(torch.transpose(this.id, d0, d1)); }
  /** Transpose of a 2-d tensor. */
  t(): Tensor { return this.transpose(0, 1); }
  unsqueeze(dim: number): Tensor { return new Tensor(torch.unsqueeze(this.id, dim)); }
  squeeze(dim?: number): Tensor { return new Tensor(torch.squeeze(this.id, dim ?? null)); }
  flatten(start = 0, end = -1): Tensor { return new Tensor(torch.flatten(this.id, start, end)); }
  expand(...shape: number[]): Tensor { return new Tensor(torch.expand(this.id, shape)); }
  expandAs(other: Tensor): Tensor { return this.expand(...other.shape); }
  repeat(...times: number[]): Tensor { return new Tensor(torch.repeat(this.id, times)); }
  narrow(dim: number, start: number, length: number): Tensor { return new Tensor(torch.narrow(this.id, dim, start, length)); }
  /** Elements start <= i < end (step apart) along dim, as a view; negative indices count from the end. */
  slice(dim: number, start = 0, end = Number.MAX_SAFE_INTEGER, step = 1): Tensor {
    return new Tensor(torch.slice(this.id, dim, start, end, step));
  }
  select(dim: number, index: number): Tensor { return new Tensor(torch.select(this.id, dim, index)); }
  indexSelect(dim: number, index: Tensor): Tensor { return new Tensor(torch.indexSelect(this.id, dim, index.id)); }
  gather(dim: number, index: Tensor): Tensor { return new Tensor(torch.gather(this.id, dim, index.id)); }
  scatter(dim: number, index: Tensor, src: Tensor): Tensor { return new Tensor(torch.scatter(this.id, dim, index.id, src.id)); }
  maskedFill(mask: Tensor, value: number): Tensor { return new Tensor(torch.maskedFill(this.id, mask.id, value)); }
  maskedSelect(mask: Tensor): Tensor { return new Tensor(torch.maskedSelect(this.id, mask.id)); }
  flip(...dims: number[]): Tensor { return new Tensor(torch.flip(this.id, dims)); }
  roll(shifts: number[], dims: number[]): Tensor { return new Tensor(torch.roll(this.id, shifts, dims)); }
  split(size: number | number[], dim = 0): Tensor[] {
    const ids = typeof size === "number" ? torch.split(this.id, size, dim) : torch.splitSizes(this.id, size, dim);
    return ids.map((id) => new Tensor(id));
  }
  chunk(chunks: number, dim = 0): Tensor[] { return torch.chunk(this.id, chunks, dim).map((id) => new Tensor(id)); }
  /** The slices along `dim`, as views without that dim (a [n] vector gives n 0-d tensors). */
  unbind(dim = 0): Tensor[] { return torch.unbind(this.id, dim).map((id) => new Tensor(id)); }
  tril(diagonal = 0): Tensor { return new Tensor(torch.tril(this.id, diagonal)); }
  triu(diagonal = 0): Tensor { return new Tensor(torch.triu(this.id, diagonal)); }
  diagonal(offset = 0, d0 = 0, d1 = 1): Tensor { return new Tensor(torch.diagonal(this.id, offset, d0, d1)); }

  // ---- elementwise ----

  add(o: Other, alpha = 1): Tensor {
    return new Tensor(typeof o === "number" ? torch.addScalar(this.id, o * alpha) : torch.add(this.id, o.id, alpha));
  }
  sub(o: Other, alpha = 1): Tensor {
    return new Tensor(typeof o === "number" ? torch.addScalar(this.id, -o * alpha) : torch.sub(this.id, o.id, alpha));
  }
  /** s - this */
  rsub(s: number): Tensor { return new Tensor(torch.rsubScalar(this.id, s)); }
  mul(o: Other): Tensor { return new Tensor(typeof o === "number" ? torch.mulScalar(this.id, o) : torch.mul(this.id, o.id)); }
  div(o: Other): Tensor { return new Tensor(typeof o === "number" ? torch.divScalar(this.id, o) : torch.div(this.id, o.id)); }
  pow(o: Other): Tensor { return new Tensor(typeof o === "number" ? torch.powScalar(this.id, o) : torch.pow(this.id, o.id)); }
  neg(): Tensor { return new Tensor(torch.neg(this.id)); }
  abs(): Tensor { return new Tensor(torch.abs(this.id)); }
  exp(): Tensor { return new Tensor(torch.exp(this.id)); }
  log(): Tensor { return new Tensor(torch.log(this.id)); }
  sqrt(): Tensor { return new Tensor(torch.sqrt(this.id)); }
  rsqrt(): Tensor { return new Tensor(torch.rsqrt(this.id)); }
  reciprocal(): Tensor { return new Tensor(torch.reciprocal(this.id)); }
  sin(): Tensor { return new Tensor(torch.sin(this.id)); }
  cos(): Tensor { return new Tensor(torch.cos(this.id)); }
  tanh(): Tensor { return new Tensor(torch.tanh(this.id)); }
  sigmoid(): Tensor { return new Tensor(torch.sigmoid(this.id)); }
  relu(): Tensor { return new Tensor(torch.relu(this.id)); }
  silu(): Tensor { return new Tensor(torch.silu(this.id)); }
  gelu(): Tensor { return new Tensor(torch.gelu(this.id)); }
  sign(): Tensor { return new Tensor(torch.sign(this.id)); }
  floor(): Tensor { return new Tensor(torch.floor(this.id)); }
  ceil(): Tensor { return new Tensor(torch.ceil(this.id)); }
  round(): Tensor { return new Tensor(torch.round(this.id)); }
  clamp(min?: number | null, max?: number | null): Tensor { return new Tensor(torch.clamp(this.id, min ?? null, max ?? null)); }
  clampMin(min: number): Tensor { return this.clamp(min, null); }
  maximum(o: Tensor): Tensor { return new Tensor(torch.maximum(this.id, o.id)); }
  minimum(o: Tensor): Tensor { return new Tensor(torch.minimum(this.id, o.id)); }
  lerp(end: Tensor, weight: number): Tensor { return new Tensor(torch.lerp(this.id, end.id, weight)); }
  eq(o: Other): Tensor { return new Tensor(typeof o === "number" ? torch.eqScalar(this.id, o) : torch.eq(this.id, o.id)); }
  ne(o: Other): Tensor { return new Tensor(typeof o === "number" ? torch.neScalar(this.id, o) : torch.ne(this.id, o.id)); }
  lt(o: Other): Tensor { return new Tensor(typeof o === "number" ? torch.ltScalar(this.id, o) : torch.lt(this.id, o.id)); }
  le(o: Other): Tensor { return new Tensor(typeof o === "number" ? torch.leScalar(this.id, o) : torch.le(this.id, o.id)); }
  gt(o: Other): Tensor { return new Tensor(typeof o === "number" ? torch.gtScalar(this.id, o) : torch.gt(this.id, o.id)); }
  ge(o: Other): Tensor { return new Tensor(typeof o === "number" ? torch.geScalar(this.id, o) : torch.ge(this.id, o.id)); }
  logicalNot(): Tensor { return new Tensor(torch.logicalNot(this.id)); }
  logicalAnd(o: Tensor): Tensor { return new Tensor(torch.logicalAnd(this.id, o.id)); }
  logicalOr(o: Tensor): Tensor { return new Tensor(torch.logicalOr(this.id, o.id)); }
  isfinite(): Tensor { return new Tensor(torch.isfinite(this.id)); }

  // ---- reductions ----
  // `dim` is one dim or a list; omitted, the reduction runs over all elements.

  sum(dim?: number | number[], keepdim = false): Tensor { return new Tensor(torch.sum(this.id, dims(dim), keepdim)); }
  mean(dim?: number | number[], keepdim = false): Tensor { return new Tensor(torch.mean(this.id, dims(dim), keepdim)); }
  prod(): Tensor { return new Tensor(torch.prod(this.id)); }
  /** Variance; unbiased (Bessel-corrected) by default, as in PyTorch. */
  var(dim?: number | number[], opts: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    return new Tensor(torch.var(this.id, dims(dim), opts.unbiased ?? true, opts.keepdim ?? false));
  }
  std(dim?: number | number[], opts: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    return new Tensor(torch.std(this.id, dims(dim), opts.unbiased ?? true, opts.keepdim ?? false));
  }
  norm(p = 2, dim?: number | number[], keepdim = false): Tensor { return new Tensor(torch.norm(this.id, p, dims(dim), keepdim)); }
  logsumexp(dim: number | number[], keepdim = false): Tensor { return new Tensor(torch.logsumexp(this.id, dims(dim), keepdim)); }
  amax(dim: number | number[], keepdim = false): Tensor { return new Tensor(torch.amax(this.id, dims(dim), keepdim)); }
  amin(dim: number | number[], keepdim = false): Tensor { return new Tensor(torch.amin(this.id, dims(dim), keepdim)); }
  /** The largest element. */
  max(): Tensor { return new Tensor(torch.maxAll(this.id)); }
  min(): Tensor { return new Tensor(torch.minAll(this.id)); }
  /** Largest values along dim and where they are: { values, indices }. */
  maxDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [v, i] = torch.maxDim(this.id, dim, keepdim);
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  minDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [v, i] = torch.minDim(this.id, dim, keepdim);
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  argmax(dim: number, keepdim = false): Tensor { return new Tensor(torch.argmax(this.id, dim, keepdim)); }
  argmin(dim: number, keepdim = false): Tensor { return new Tensor(torch.argmin(this.id, dim, keepdim)); }
  cumsum(dim: number): Tensor { return new Tensor(torch.cumsum(this.id, dim)); }
  all(): Tensor { return new Tensor(torch.all(this.id)); }
  any(): Tensor { return new Tensor(torch.any(this.id)); }
  topk(k: number, dim = -1, opts: { largest?: boolean; sorted?: boolean } = {}): { values: Tensor; indices: Tensor } {
    const [v, i] = torch.topk(this.id, k, dim, opts.largest ?? true, opts.sorted ?? true);
    return { values: new Tensor(v), indices: new Tensor(i) };
  }
  sort(dim = -1, descending = false): { values: Tensor; indices: Tensor } {
    const [v, i] = torch.sort(this.id, dim, descending);
    return { values: new Tensor(v), indices: new Tensor(i) };
  }

  // ---- linear algebra ----

  matmul(o: Tensor): Tensor { return new Tensor(torch.matmul(this.id, o.id)); }
  mm(o: Tensor): Tensor { return new Tensor(torch.mm(this.id, o.id)); }
  bmm(o: Tensor): Tensor { return new Tensor(torch.bmm(this.id, o.id)); }
  outer(o: Tensor): Tensor { return new Tensor(torch.outer(this.id, o.id)); }

  // ---- in place (no autograd history on leaves that require grad: use under noGrad) ----

  zero_(): this { torch.zero_(this.id); return this; }
  fill_(v: number): this { torch.fill_(this.id, v); return this; }
  add_(o: Other, alpha = 1): this {
    if (typeof o === "number") torch.addScalar_(this.id, o * alpha);
    else torch.add_(this.id, o.id, alpha);
    return this;
  }
  sub_(o: Other, alpha = 1): this { return this.add_(o, -alpha); }
  mul_(o: Other): this {
    if (typeof o === "number") torch.mulScalar_(this.id, o);
    else torch.mul_(this.id, o.id);
    return this;
  }
  div_(o: Other): this {
    if (typeof o === "number") torch.divScalar_(this.id, o);
    else torch.div_(this.id, o.id);
    return this;
  }
  /** this += value * a * b */
  addcmul_(a: Tensor, b: Tensor, value = 1): this { torch.addcmul_(this.id, a.id, b.id, value); return this; }
  /** this += value * a / b */
  addcdiv_(a: Tensor, b: Tensor, value = 1): this { torch.addcdiv_(this.id, a.id, b.id, value); return this; }
  lerp_(end: Tensor, weight: number): this { torch.lerp_(this.id, end.id, weight); return this; }
  clamp_(min?: number | null, max?: number | null): this { torch.clamp_(this.id, min ?? null, max ?? null); return this; }
  sqrt_(): this { torch.sqrt_(this.id); return this; }
  relu_(): this { torch.relu_(this.id); return this; }
  uniform_(lo = 0, hi = 1): this { torch.uniform_(this.id, lo, hi); return this; }
  normal_(mean = 0, std = 1): this { torch.normal_(this.id, mean, std); return this; }

  /** Bytes of element data (numel × element size). */
  get nbytes(): number {
    return this.numel * DTYPE_BYTES[this.dtype];
  }
}

function dims(dim: number | number[] | undefined): number[] {
  return dim === undefined ? [] : typeof dim === "number" ? [dim] : dim;
}

registerTensorClass(Tensor);
