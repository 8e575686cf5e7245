// One rank of a multi-process test in tests/dist.test.ts, started with torchrun's variables set.
//   node dist_worker.js basics <outDir>      prints RESULT <json> with what each collective returned, then trains the
//                                            tiny CNN with SyncBatchNorm on its half of the batch and saves its
//                                            final state in outDir (one pair of processes for both tests)
//   node dist_worker.js loop <timeoutMs>     all-reduces every 20 ms until told otherwise, printing "step N"
//   node dist_worker.js hang <timeoutMs>     as loop, but rank 1 stops taking part after step 3
//   node dist_worker.js selfkill             as loop, but rank 1 SIGKILLs itself after step 3
// A collective failure is left uncaught: the process exits with code 1 and the DistError's message on stderr.
import * as path from "path";
import { convertSyncBatchNorm, broadcastModule, GradientAllReducer, initProcessGroupFromEnv, type ProcessGroup } from "../../src/dist";
import { saveSafetensors } from "../../src/io/safetensors";
import { type DType, full, noGrad, scalar, setNumThreads, tensor, tidy } from "../../src/tensor";
import { BATCH, buildTinyCnn, makeBatch, train } from "./dist_model";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function collectives(pg: ProcessGroup): Record<string, unknown> {
  const r = pg.rank;
  return tidy(() => {
    const out: Record<string, unknown> = { rank: r, worldSize: pg.worldSize };
    out.sum = pg.allReduce(tensor([r + 1, 10 * (r + 1)]), "sum").toArray();
    out.max = pg.allReduce(tensor([r, -r, 5]), "max").toArray();
    out.min = pg.allReduce(tensor([r, -r, 5]), "min").toArray();
    out.avg = pg.allReduce(tensor([r, 2 * r], { dtype: "float64" }), "avg").toArray();
    out.sumInt = pg.allReduce(tensor([r + 1, 7], { dtype: "int64" }), "sum").toArray();
    // Small all-reduces take Gloo's all-gather on the calling thread, large ones and other dtypes c10d's worker
    // threads (native/src/dist.cc): interleaved, each must still meet its counterpart on the other rank.
    const large = pg.allReduce(full([20000], r + 1), "sum"); // 80 kB
    const small = pg.allReduce(tensor([r + 1]), "max");
    const half = pg.allReduce(full([3], r + 1, { dtype: "float16" }), "sum");
    out.mixed = [large.min().item(), large.max().item(), small.item(), ...half.toArray()];
    // A non-contiguous tensor (a transposed view) is reduced in place too.
    const base = tensor([[1, 2], [3, 4]]).mul(r + 1);
    pg.allReduce(base.t(), "sum");
    out.transposed = base.toArray();
    const gathered = pg.allGather(tensor([[r, r + 0.5]]));
    out.gatherShape = gathered.shape;
    out.gather = gathered.toArray();
    out.gatherList = pg.allGatherList(scalar(r * 10)).map((t) => t.item());
    out.broadcast = pg.broadcast(tensor([r * 7 + 1, r]), 1).toArray();
    pg.barrier();
    // Differentiable all-reduce: value = sum over ranks; gradient = sum over ranks of the output gradients.
    const x = tensor([r + 1, 2], { requiresGrad: true });
    const y = pg.allReduceWithGrad(x);
    out.withGradValue = y.toArray();
    y.mul(tensor([r + 1, 1])).sum().backward();
    out.withGradGrad = x.grad!.toArray();
    // Differentiable all-gather: value = rank-ordered concatenation; this rank's gradient = its slice's gradient
    // summed over the ranks' losses (here every rank weighs the gathered rows by rank + 1: 1 + 2 = 3).
    const g = tensor([[r + 1, 2]], { requiresGrad: true });
    const gatheredG = pg.allGatherWithGrad(g);
    out.gatherWithGradValue = gatheredG.toArray();
    gatheredG.mul(r + 1).sum().backward();
    out.gatherWithGradGrad = g.grad!.toArray();
    out.valuesSum = pg.allReduceValues([r, 10, 0.25]);
    out.valuesMax = pg.allReduceValues([r, -r], "max");
    // Sub-groups: singletons reduce to themselves; newGroup([1]) exists only on rank 1.
    const single = pg.splitGroups(1);
    out.splitSum = single.allReduce(tensor([r + 3]), "sum").toArray();
    out.splitRanks = single.ranks;
    const only1 = pg.newGroup([1]);
    out.newGroupMember = only1 !== undefined;
    single.destroy();
    only1?.destroy();
    out.afterSubgroups = pg.allReduce(tensor([1]), "sum").toArray();
    return out;
  });
}

function syncbn(pg: ProcessGroup, outDir: string): void {
  const half = BATCH / pg.worldSize;
  for (const dtype of ["float64", "float32"] as DType[]) {
    // Rank 1 starts from other weights: broadcastModule must replace them with rank 0's.
    const net = buildTinyCnn(dtype, pg.rank === 0 ? 0 : 12345);
    const converted = convertSyncBatchNorm(net, pg);
    if (converted !== 2) throw new Error(`converted ${converted} BatchNorms, expected 2`);
    broadcastModule(net, pg);
    const reducer = new GradientAllReducer(net, pg, { bucketCapMB: 0.0005 }); // tiny buckets: several per step
    const { x, y } = makeBatch(dtype);
    const [xs, ys] = noGrad(() => [x.narrow(0, pg.rank * half, half), y.narrow(0, pg.rank * half, half)]);
    // float64: the buckets' all-reduces start during backward; float32: all of them after it.
    const overlap = dtype === "float64";
    let early = 0;
    train(net, xs!, ys!, { beforeBackward: () => overlap && reducer.prepare(), afterBackward: () => void (early += reducer.synchronize()) });
    console.log(`EARLY ${JSON.stringify({ dtype, early, buckets: reducer.buckets.length })}`); // summed over the steps
    saveSafetensors(path.join(outDir, `rank${pg.rank}_${dtype}.safetensors`), net.stateDict());
    reducer.dispose();
    net.dispose();
  }
}

async function loop(pg: ProcessGroup, stopAfter: (step: number) => "go" | "hang" | "die"): Promise<void> {
  for (let step = 0; step < 100000; step++) {
    const what = stopAfter(step);
    if (what === "die") process.kill(process.pid, "SIGKILL");
    if (what === "hang") {
      console.log("hanging");
      await sleep(10 ** 7);
    }
    tidy(() => pg.allReduce(tensor([1, 2, 3]), "sum"));
    console.log(`step ${step}`);
    await sleep(20);
  }
}

/**
 * GradientAllReducer's rules, overlapped (prepare() before backward) or not, with one bucket per parameter and with
 * one bucket for all: a is used on both ranks, b only on rank 0, c only on rank 1, d on none, e on both but its
 * gradient is dropped after backward. Returns each parameter's gradient after synchronize() (null: none).
 */
function reducerRules(pg: ProcessGroup): Record<string, (number[] | null)[]> {
  const out: Record<string, (number[] | null)[]> = {};
  for (const [name, overlap, capMB] of [["overlapped, a bucket each", true, 1e-6], ["after backward, one bucket", false, 1], ["overlapped, one bucket", true, 1]] as const) {
    tidy(() => {
      const [a, b, c, d, e] = [1, 2, 3, 4, 5].map((v) => tensor([v, -v], { dtype: "float64", requiresGrad: true }));
      const reducer = new GradientAllReducer([a!, b!, c!, d!, e!], pg, { bucketCapMB: capMB });
      const r = pg.rank;
      const loss = a!.mul(1 + 2 * r).sum().add(r === 0 ? b!.mul(2).sum() : c!.mul(5).sum()).add(e!.sum());
      if (overlap) reducer.prepare();
      loss.backward();
      e!.grad = undefined; // dropped after backward (as SwAV drops frozen prototypes' gradients)
      reducer.synchronize();
      out[name] = [a, b, c, d, e].map((p) => (p!.grad ? (p!.grad.toArray() as number[]) : null));
      reducer.dispose();
    });
  }
  return out;
}

async function main(): Promise<void> {
  setNumThreads(1);
  const [scenario = "", arg = ""] = process.argv.slice(2);
  const timeoutMs = Number(arg) > 0 ? Number(arg) : 20000;
  // Short collective timeouts for the failure scenarios, but time for both processes to start.
  const { pg } = initProcessGroupFromEnv({ timeoutMs, initTimeoutMs: 60000, probeMs: Math.min(timeoutMs, 2000) });
  console.log(`pid ${process.pid}`);
  if (scenario === "basics") {
    console.log(`RESULT ${JSON.stringify({ ...collectives(pg), reducer: reducerRules(pg) })}`);
    syncbn(pg, arg);
  }
  else if (scenario === "loop") await loop(pg, () => "go");
  else if (scenario === "hang") await loop(pg, (s) => (pg.rank === 1 && s === 3 ? "hang" : "go"));
  else if (scenario === "selfkill") await loop(pg, (s) => (pg.rank === 1 && s === 3 ? "die" : "go"));
  else throw new Error(`unknown scenario '${scenario}'`);
  pg.barrier(); // nobody leaves (and rank 0 takes the store down) before all are done
  pg.destroy();
}

main().catch((e: Error) => {
  console.error(`${e.name}: ${e.message}`);
  process.exit(1);
});
