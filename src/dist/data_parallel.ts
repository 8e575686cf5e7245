// Data parallelism: the same model on every rank, each rank on its own slice of the batch.
//
//   broadcastModule(model, pg)      once, before training: every rank starts from rank 0's parameters and buffers.
//   const reducer = new GradientAllReducer(model, pg)
//   reducer.prepare(); loss.backward(); reducer.synchronize()
//                                   every .grad becomes the average over the ranks, so each rank's optimizer takes
//                                   the same step and the replicas stay identical.
//
// Both move tensors in buckets (as torch's DistributedDataParallel): the tensors of a bucket are flattened into one
// buffer, one collective runs on it, and the result is split back into place. Few large messages cost far less than
// many small ones.
//
// Overlap with backward: after prepare(), a hook on each parameter's AccumulateGrad node (native/src/dist.cc) starts
// a bucket's all-reduce on the backend's threads as soon as backward has finished all its gradients, in bucket
// order, while backward computes the rest, as torch's Reducer does. synchronize() starts what is left, waits, and
// writes the averages. Without prepare(), synchronize() reduces every bucket after backward.
import type { Module } from "../nn/module";
import { cat } from "../tensor/creation";
import { noGrad } from "../tensor/grad";
import { tidy } from "../tensor/scope";
import type { Tensor } from "../tensor/tensor";
import type { ProcessGroup } from "./process_group";

/** DistributedDataParallel's default bucket size. */
export const DEFAULT_BUCKET_CAP_MB = 25;

/**
 * The tensors grouped by dtype and device (groups in order of first appearance, tensors in their order within a
 * group), each group cut into buckets of at most capBytes (a tensor larger than the cap gets a bucket of its own).
 * Grouping first matters for module buffers, where int64 BatchNorm counters alternate with float running
 * statistics: consecutive runs would make a bucket per tensor.
 */
export function bucketize(tensors: readonly Tensor[], capBytes: number): Tensor[][] {
  const groups = new Map<string, Tensor[]>();
  for (const t of tensors) {
    const key = `${t.dtype}@${t.device}`;
    const group = groups.get(key);
    if (group) group.push(t);
    else groups.set(key, [t]);
  }
  const buckets: Tensor[][] = [];
  for (const group of groups.values()) {
    let cur: Tensor[] = [];
    let bytes = 0;
    for (const t of group) {
      if (cur.length > 0 && bytes + t.nbytes > capBytes) {
        buckets.push(cur);
        cur = [];
        bytes = 0;
      }
      cur.push(t);
      bytes += t.nbytes;
    }
    if (cur.length > 0) buckets.push(cur);
  }
  return buckets;
}

/**
 * Copies rank `root`'s parameters and buffers into every rank's module (in place, same tensors), so that all
 * replicas start equal. Every rank calls it with the same architecture.
 */
export function broadcastModule(module: Module, pg: ProcessGroup, o: { root?: number; bucketCapMB?: number } = {}): void {
  broadcastTensors([...module.namedParameters().map(([, t]) => t), ...module.namedBuffers().map(([, t]) => t)], pg, o);
}

/**
 * Copies rank `root`'s buffers (BatchNorm running statistics, counters) into every rank's module, as
 * DistributedDataParallel's broadcast_buffers: where BatchNorm is synchronized in groups smaller than the job, each
 * group's running statistics differ, and this makes rank 0's the ones every replica holds.
 */
export function broadcastBuffers(module: Module, pg: ProcessGroup, o: { root?: number; bucketCapMB?: number } = {}): void {
  broadcastTensors(module.namedBuffers().map(([, t]) => t), pg, o);
}

/** Overwrites the tensors in place with root's, in buckets of one dtype each. */
function broadcastTensors(tensors: Tensor[], pg: ProcessGroup, o: { root?: number; bucketCapMB?: number }): void {
  const root = o.root ?? 0;
  if (pg.worldSize === 1) return;
  for (const bucket of bucketize(tensors, (o.bucketCapMB ?? DEFAULT_BUCKET_CAP_MB) * 2 ** 20)) {
    noGrad(() =>
      tidy(() => {
        const flat = cat(bucket.map((t) => t.detach().flatten()));
        pg.broadcast(flat, root);
        if (pg.rank === root) return;
        const pieces = flat.split(bucket.map((t) => t.numel));
        bucket.forEach((t, i) => t.copy_(pieces[i]!.view(...t.shape)));
      }),
    );
  }
}

export interface GradientAllReducerOptions {
  /** Bucket size in MiB (default 25, as DistributedDataParallel). */
  bucketCapMB?: number;
}

/**
 * Averages gradients over the ranks of a group. Build it once (after broadcastModule, before training); each step
 * call prepare() before backward() (to overlap) and synchronize() after it, before the optimizer step. dispose()
 * removes its hooks.
 *
 * A parameter that has no gradient on some rank (unused in its forward) counts as a zero gradient there; one that
 * has a gradient on no rank keeps none, so optimizers skip it as they would in a single process. A gradient dropped
 * (set to undefined) between backward and synchronize() stays dropped, on every rank alike; other changes made to
 * gradients in between are overwritten when overlapping (they belong after synchronize()).
 */
export class GradientAllReducer {
  /** Parameters in reduction order (reverse registration order, roughly the order backward finishes them). */
  readonly buckets: readonly (readonly Tensor[])[];
  /**
   * Where the buckets are reduced: a duplicate of pg (its own connections and collective sequence), because buckets
   * start whenever each rank's backward finishes them, between other collectives (SyncBatchNorm's) that must stay
   * in step across ranks. Destroyed by dispose().
   */
  readonly group: ProcessGroup | undefined;
  private readonly hooks: { arm(): void; finish(): number; dispose(): void } | undefined;

  constructor(
    params: Module | readonly Tensor[],
    readonly pg: ProcessGroup,
    o: GradientAllReducerOptions = {},
  ) {
    const list = Array.isArray(params) ? [...(params as readonly Tensor[])] : (params as Module).parameters();
    const trainable = list.filter((p) => p.requiresGrad).reverse();
    this.buckets = bucketize(trainable, (o.bucketCapMB ?? DEFAULT_BUCKET_CAP_MB) * 2 ** 20);
    if (pg.worldSize > 1 && trainable.length > 0) {
      this.group = pg.duplicate();
      this.hooks = this.group.gradientHooks(this.buckets.flat(), this.buckets.map((b) => b.length));
    }
  }

  /** Arms the hooks: the next backward starts each bucket's all-reduce as soon as its gradients are complete. */
  prepare(): void {
    this.hooks?.arm();
  }

  /**
   * Replaces every parameter's .grad with its average over the group's ranks. Returns how many buckets had started
   * their all-reduce during backward (0 without prepare()).
   */
  synchronize(): number {
    return this.hooks?.finish() ?? 0;
  }

  /** Removes the hooks and releases the bucket group (idempotent). */
  dispose(): void {
    this.hooks?.dispose();
    this.group?.destroy();
  }
}
