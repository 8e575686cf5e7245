// CUDA graphs: a step captured once and replayed as one launch (torch.cuda.graph; native/src/cuda_graph.cc).
//
//   step(); step();                                               // eager warm-up on the default stream
//   using graph = CudaGraph.capture("cuda:0", step);              // 1 more eager step on the capture stream, then
//                                                                 // records the step's kernels (runs nothing)
//   for (...) { input.copy_(nextBatch); graph.replay(); }         // the same kernels, on the same memory
//
// A large model's step is thousands of small kernels, each launched by the host through this addon and ATen; a
// replay launches them all at once. What capture asks of the step (as CUDAGraph):
// - Static shapes and memory. The step reads its inputs from tensors that exist before capture (copy new data into
//   them before each replay), and its results land in the tensors it produced while captured (keep() those to read
//   them after each replay). What it allocated stays reserved to the graph until dispose(). Everything the graph
//   reads or writes that existed before it (parameters, optimizer buffers, inputs) must outlive it and keep its
//   memory: an optimizer's loadStateDict() that replaces buffers, or disposing a parameter, breaks the graph.
// - No host synchronisation inside it. seerkit's own host reads of CUDA tensors (item(), toArray(), cpu(), copies
//   between devices other than non-blocking uploads from page-locked memory, cudaSynchronize()) throw while a
//   capture runs, and the capture is dropped cleanly. A synchronizing op inside libtorch itself (for instance a
//   data-dependent output size) invalidates the capture; libtorch then leaves its allocator in capture mode, and
//   this process refuses further captures, saying so. Not capturable for that reason today: AdamW's step counter
//   (read on the host) and BatchNorm with a cumulative average (momentum null).
// - Warm-up before capture: a few eager steps (cuDNN's autotuning, optimizer buffers); capture() runs
//   `warmupSteps` more (default 1) on the capture stream itself, as PyTorch's recipe asks, so that libraries make
//   their per-stream workspaces outside the graph. Those are real steps: they change the model as any other.
// - Nothing on the host changes from one replay to the next: a learning rate passed as a number is recorded as a
//   constant.
import { torch } from "../native/load";
import type { Device } from "./dtype";
import { cudaIndex } from "./runtime";

export interface CudaGraphCaptureOptions {
  /** Eager steps run on the capture stream before capturing (default 1; each is a real step). */
  warmupSteps?: number;
}

export class CudaGraph implements Disposable {
  private id: number | undefined;

  private constructor(
    id: number,
    /** The device the graph runs on. */
    readonly device: Device,
  ) {
    this.id = id;
  }

  /**
   * Records `step` (synchronous; tensors on `device`; "cuda" is the current CUDA device) into a graph, after
   * `warmupSteps` eager runs of it on the same stream. Work queued before is finished first. If the step throws,
   * nothing is kept and the error says what happened.
   */
  static capture(device: Device, step: () => void, o: CudaGraphCaptureOptions = {}): CudaGraph {
    const index = cudaIndex(device);
    if (index === undefined) throw new RangeError(`CudaGraph.capture: expected a CUDA device, got ${device}`);
    const warmupSteps = o.warmupSteps ?? 1;
    if (!Number.isInteger(warmupSteps) || warmupSteps < 0) throw new RangeError(`CudaGraph.capture: warmupSteps must be a non-negative integer, got ${warmupSteps}`);
    const id = torch.cudaGraphOpen(device === "cuda" ? -1 : index);
    let capturing = false;
    try {
      for (let i = 0; i < warmupSteps; i++) runSync(step);
      torch.cudaGraphBegin(id);
      capturing = true;
      runSync(step);
    } catch (e) {
      torch.cudaGraphAbort(id);
      const msg = (e as Error).message;
      throw new Error(`CudaGraph.capture: the step threw ${capturing ? "while being captured, nothing was recorded" : "in its warm-up, before capture"}: ${msg}`, { cause: e });
    }
    torch.cudaGraphEnd(id);
    return new CudaGraph(id, device);
  }

  /** Launches the recorded kernels on the current stream (asynchronous, like any kernel). */
  replay(): void {
    if (this.id === undefined) throw new Error("CudaGraph.replay: the graph was disposed");
    torch.cudaGraphReplay(this.id);
  }

  /** Frees the graph and the memory reserved to it (idempotent). */
  dispose(): void {
    if (this.id === undefined) return;
    torch.cudaGraphRelease(this.id);
    this.id = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Runs a step that must be synchronous (a Promise would finish after the capture ended). */
function runSync(step: () => void): void {
  const r: unknown = step();
  if (r instanceof Promise) throw new TypeError("the step returned a Promise: a captured step must be synchronous");
}
