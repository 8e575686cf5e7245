// The whole native API, typed in one place. Every function here is one N-API entry point in native/src/*.cc.
//
// Conventions: a tensor crosses the boundary as its integer handle (TensorId); an optional tensor is null;
// dtypes are codes from src/tensor/dtype.ts; devices are strings ("cpu", "cuda:0"); in-place ops return nothing.

export type TensorId = number;
/** A process group's handle (native/src/dist.cc). */
export type GroupId = number;
type T = TensorId;
type OptT = TensorId | null;
type Ints = readonly number[];
type OptNum = number | null;

export interface TorchBinding {
  // handles and process state (runtime.cc)
  free(t: T): void;
  liveTensors(): number;
  sourceHash(): string;
  torchVersion(): string;
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  parallelInfo(): string;
  mallocTuned(): boolean;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  manualSeed(seed: number): void;
  setGradEnabled(on: boolean): void;
  isGradEnabled(): boolean;
  setAutocastCuda(on: boolean, dtype: number): boolean;
  cudaSynchronize(): void;
  setCudaDevice(index: number): void;
  cudaMemory(device: number): [number, number];
  setCudaBackendFlags(cudnnBenchmark: boolean, allowTf32: boolean): void;
  cudaResetPeak(device: number): void;
  cudaGraphOpen(device: number): number;
  cudaGraphBegin(graph: number): void;
  cudaGraphEnd(graph: number): void;
  cudaGraphAbort(graph: number): void;
  cudaGraphReplay(graph: number): void;
  cudaGraphRelease(graph: number): void;

  // metadata
  shape(t: T): number[];
  strides(t: T): number[];
  dim(t: T): number;
  numel(t: T): number;
  dtypeCode(t: T): number;
  deviceName(t: T): string;
  isContiguous(t: T): boolean;
  isChannelsLast(t: T): boolean;

  // data in and out
  fromBytes(data: ArrayBufferView, shape: Ints, dtype: number, device: string): T;
  toBytes(t: T): ArrayBuffer;
  item(t: T): number;

  // autograd
  setRequiresGrad(t: T, on: boolean): void;
  requiresGrad(t: T): boolean;
  isLeaf(t: T): boolean;
  retainGrad(t: T): void;
  backward(t: T, grad: OptT, retainGraph: boolean): void;
  grad(t: T): T | undefined;
  clearGrad(t: T): void;
  setGrad(t: T, g: T): void;

  // creation (tensor_ops.cc)
  empty(shape: Ints, dtype: number, device: string): T;
  zeros(shape: Ints, dtype: number, device: string): T;
  ones(shape: Ints, dtype: number, device: string): T;
  full(shape: Ints, value: number, dtype: number, device: string): T;
  scalarTensor(value: number, dtype: number, device: string): T;
  arange(start: number, end: number, step: number, dtype: number, device: string): T;
  linspace(start: number, end: number, steps: number, dtype: number, device: string): T;
  eye(n: number, dtype: number, device: string): T;
  rand(shape: Ints, dtype: number, device: string): T;
  randn(shape: Ints, dtype: number, device: string): T;
  randint(low: number, high: number, shape: Ints, dtype: number, device: string): T;
  randperm(n: number, dtype: number, device: string): T;
  zerosLike(t: T): T;
  onesLike(t: T): T;
  emptyLike(t: T): T;
  fullLike(t: T, v: number): T;
  randLike(t: T): T;
  randnLike(t: T): T;

  // conversion and copies
  toDtype(t: T, dtype: number): T;
  toDevice(t: T, device: string, nonBlocking: boolean): T;
  pinMemory(t: T): T;
  contiguous(t: T): T;
  channelsLast(t: T): T;
  clone(t: T): T;
  detach(t: T): T;
  copy_(dst: T, src: T): void;

  // views and indexing
  reshape(t: T, shape: Ints): T;
  view(t: T, shape: Ints): T;
  permute(t: T, dims: Ints): T;
  transpose(t: T, d0: number, d1: number): T;
  unsqueeze(t: T, dim: number): T;
  squeeze(t: T, dim: number | null): T;
  flatten(t: T, start: number, end: number): T;
  expand(t: T, shape: Ints): T;
  repeat(t: T, times: Ints): T;
  narrow(t: T, dim: number, start: number, length: number): T;
  slice(t: T, dim: number, start: number, end: number, step: number): T;
  select(t: T, dim: number, index: number): T;
  indexSelect(t: T, dim: number, index: T): T;
  gather(t: T, dim: number, index: T): T;
  scatter(t: T, dim: number, index: T, src: T): T;
  maskedFill(t: T, mask: T, value: number): T;
  maskedSelect(t: T, mask: T): T;
  where(cond: T, a: T, b: T): T;
  flip(t: T, dims: Ints): T;
  roll(t: T, shifts: Ints, dims: Ints): T;
  cat(ts: readonly T[], dim: number): T;
  stack(ts: readonly T[], dim: number): T;
  split(t: T, size: number, dim: number): T[];
  splitSizes(t: T, sizes: Ints, dim: number): T[];
  chunk(t: T, chunks: number, dim: number): T[];
  unbind(t: T, dim: number): T[];
  tril(t: T, diagonal: number): T;
  triu(t: T, diagonal: number): T;
  diagonal(t: T, offset: number, d0: number, d1: number): T;
  oneHot(t: T, classes: number): T;
  constantPad(t: T, pads: Ints, value: number): T;

  // elementwise
  add(a: T, b: T, alpha: number): T;
  addScalar(a: T, s: number): T;
  sub(a: T, b: T, alpha: number): T;
  rsubScalar(a: T, s: number): T;
  mul(a: T, b: T): T;
  mulScalar(a: T, s: number): T;
  div(a: T, b: T): T;
  divScalar(a: T, s: number): T;
  pow(a: T, b: T): T;
  powScalar(a: T, s: number): T;
  neg(a: T): T;
  abs(a: T): T;
  exp(a: T): T;
  log(a: T): T;
  sqrt(a: T): T;
  rsqrt(a: T): T;
  reciprocal(a: T): T;
  sin(a: T): T;
  cos(a: T): T;
  tanh(a: T): T;
  sigmoid(a: T): T;
  relu(a: T): T;
  silu(a: T): T;
  gelu(a: T): T;
  sign(a: T): T;
  floor(a: T): T;
  ceil(a: T): T;
  round(a: T): T;
  clamp(a: T, min: OptNum, max: OptNum): T;
  maximum(a: T, b: T): T;
  minimum(a: T, b: T): T;
  lerp(a: T, b: T, w: number): T;
  eq(a: T, b: T): T;
  ne(a: T, b: T): T;
  lt(a: T, b: T): T;
  le(a: T, b: T): T;
  gt(a: T, b: T): T;
  ge(a: T, b: T): T;
  eqScalar(a: T, s: number): T;
  neScalar(a: T, s: number): T;
  ltScalar(a: T, s: number): T;
  leScalar(a: T, s: number): T;
  gtScalar(a: T, s: number): T;
  geScalar(a: T, s: number): T;
  logicalNot(a: T): T;
  logicalAnd(a: T, b: T): T;
  logicalOr(a: T, b: T): T;
  isfinite(a: T): T;

  // reductions
  sum(t: T, dims: Ints, keepdim: boolean): T;
  mean(t: T, dims: Ints, keepdim: boolean): T;
  prod(t: T): T;
  var(t: T, dims: Ints, unbiased: boolean, keepdim: boolean): T;
  std(t: T, dims: Ints, unbiased: boolean, keepdim: boolean): T;
  norm(t: T, p: number, dims: Ints, keepdim: boolean): T;
  logsumexp(t: T, dims: Ints, keepdim: boolean): T;
  amax(t: T, dims: Ints, keepdim: boolean): T;
  amin(t: T, dims: Ints, keepdim: boolean): T;
  maxAll(t: T): T;
  minAll(t: T): T;
  maxDim(t: T, dim: number, keepdim: boolean): [T, T];
  minDim(t: T, dim: number, keepdim: boolean): [T, T];
  argmax(t: T, dim: number, keepdim: boolean): T;
  argmin(t: T, dim: number, keepdim: boolean): T;
  cumsum(t: T, dim: number): T;
  all(t: T): T;
  any(t: T): T;
  topk(t: T, k: number, dim: number, largest: boolean, sorted: boolean): [T, T];
  sort(t: T, dim: number, descending: boolean): [T, T];

  // linear algebra
  matmul(a: T, b: T): T;
  mm(a: T, b: T): T;
  bmm(a: T, b: T): T;
  addmm(c: T, a: T, b: T, beta: number, alpha: number): T;
  outer(a: T, b: T): T;
  linear(x: T, w: T, b: OptT): T;
  einsum(eq: string, ts: readonly T[]): T;

  // random
  bernoulli(p: T): T;
  bernoulliScalar(t: T, p: number): T;
  multinomial(p: T, n: number, replacement: boolean): T;
  uniform_(t: T, lo: number, hi: number): void;
  normal_(t: T, mean: number, std: number): void;

  // in-place
  zero_(t: T): void;
  fill_(t: T, v: number): void;
  add_(t: T, o: T, alpha: number): void;
  addScalar_(t: T, s: number): void;
  mul_(t: T, o: T): void;
  mulScalar_(t: T, s: number): void;
  div_(t: T, o: T): void;
  divScalar_(t: T, s: number): void;
  addcmul_(t: T, a: T, b: T, value: number): void;
  addcdiv_(t: T, a: T, b: T, value: number): void;
  lerp_(t: T, end: T, w: number): void;
  clamp_(t: T, min: OptNum, max: OptNum): void;
  sqrt_(t: T): void;
  relu_(t: T): void;

  // multi-tensor (lists must be non-empty and of equal length)
  foreachAdd_(xs: readonly T[], ys: readonly T[], alpha: number): void;
  foreachMulScalar_(xs: readonly T[], s: number): void;
  foreachMul_(xs: readonly T[], ys: readonly T[]): void;
  foreachMulScalar(xs: readonly T[], s: number): T[];
  foreachMul(xs: readonly T[], ys: readonly T[]): T[];
  foreachAddcmul_(xs: readonly T[], ys: readonly T[], zs: readonly T[], value: number): void;
  foreachNorm(xs: readonly T[]): T[];

  // nn (nn_ops.cc)
  conv2d(x: T, w: T, b: OptT, stride: Ints, padding: Ints, dilation: Ints, groups: number): T;
  batchNorm(x: T, w: OptT, b: OptT, rm: OptT, rv: OptT, training: boolean, momentum: number, eps: number): T;
  maxPool2d(x: T, kernel: Ints, stride: Ints, padding: Ints, dilation: Ints, ceilMode: boolean): T;
  avgPool2d(x: T, kernel: Ints, stride: Ints, padding: Ints, ceilMode: boolean, countIncludePad: boolean): T;
  adaptiveAvgPool2d(x: T, size: Ints): T;
  softmax(x: T, dim: number): T;
  logSoftmax(x: T, dim: number): T;
  dropout(x: T, p: number, train: boolean): T;
  crossEntropy(logits: T, target: T, weight: OptT, reduction: number, ignoreIndex: number, smoothing: number): T;
  nllLoss(logp: T, target: T, weight: OptT, reduction: number, ignoreIndex: number): T;
  mseLoss(a: T, b: T, reduction: number): T;
  interpolate(x: T, size: Ints, mode: number, alignCorners: boolean, antialias: boolean): T;
  affineGrid(theta: T, size: Ints, alignCorners: boolean): T;
  gridSample(x: T, grid: T, mode: number, padding: number, alignCorners: boolean): T;

  // distributed (dist.cc): process groups are GroupIds in their own table, freed with distDestroy. Collectives
  // block until every rank of the group took part, or fail (timeout, dead peer) with an Error naming the ranks.
  distInit(backend: string, host: string, port: number, rank: number, worldSize: number, timeoutMs: number, initTimeoutMs: number, probeMs: number, deviceKind: string, deviceValue: string): GroupId;
  /** -1 when this rank is not among `worldRanks`. */
  distNewGroup(parent: GroupId, tag: string, worldRanks: Ints, deviceKind: string, deviceValue: string): GroupId;
  distDestroy(g: GroupId): void;
  distBackends(): string[];
  /** [op, message, suspect world ranks] once a collective of the group failed. */
  distFailure(g: GroupId): [string, string, number[]] | undefined;
  /** [collectives waited for, ms blocked in them] since the group was created. */
  distWaitStats(g: GroupId): [number, number];
  /** reduce: 0 sum, 1 max, 2 min, 3 avg (in place). */
  distAllReduce(g: GroupId, t: T, reduce: number): void;
  distAllReduceWithGrad(g: GroupId, t: T): T;
  /** Training-mode BatchNorm over the group's batch: [y, running stats (2C + 1, float64: mean, unbiased var, N)]. */
  distSyncBatchNorm(g: GroupId, x: T, w: OptT, b: OptT, eps: number): [T, T];
  /** Gradient averaging overlapped with backward (hooks on the params' AccumulateGrad nodes); see dist.cc. */
  distReducerNew(g: GroupId, params: T[], bucketSizes: Ints): number;
  distReducerArm(r: number): void;
  distReducerFinish(r: number): number;
  distReducerDestroy(r: number): void;
  distAllGather(g: GroupId, t: T): T[];
  distAllGatherCat(g: GroupId, t: T): T;
  distBroadcast(g: GroupId, t: T, root: number): void;
  distBarrier(g: GroupId): void;
}
