// CUDA graphs: a step captured once and replayed as one launch (torch.cuda.graph; native/src/cuda_graph.cc).
//
//   step(); step(); step();                                  // warm-up: eager steps first
//   using graph = CudaGraph.capture("cuda:0", step);         // records step's kernels, runs nothing
//   for (...) { input.copy_(nextBatch); graph.replay(); }    // the same kernels, on the same memory
//
// A large model's step is thousands of small kernels, each launched by the host through this addon and ATen; a
// replay launches them all at once. What capture asks of the step (as CUDAGraph):
// - Static shapes and memory. The step reads its inputs from tensors that exist before capture (copy new data into
//   them before each replay), and its results land in the tensors it produced while captured (keep() those to read
//   them after each replay). What it allocated stays reserved to the graph until dispose().
// - No host synchronisation inside it: item(), toArray(), cpu(), a copy from pageable host memory.
// - Warm-up before capture: a few eager steps, so that cuDNN's autotuning, optimizer buffers and library handles
//   exist already.
// - Nothing on the host changes from one replay to the next: a learning rate passed as a number is recorded as a
//   constant.
import { torch } from "../native/load";
import type { Device } from "./dtype";
import { cudaIndex } from "./runtime";

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
   * Records `step` (synchronous; tensors on `device`) into a graph, on a side stream of that device. Work queued
   * before is finished first. If the step throws, nothing is kept and the error says what happened.
   */
  static capture(device: Device, step: () => void): CudaGraph {
    const index = cudaIndex(device);
    if (index === undefined) throw new RangeError(`CudaGraph.capture: expected a CUDA device, got ${device}`);
    const id = torch.cudaGraphBegin(index);
    try {
      const r: unknown = step();
      if (r instanceof Promise) throw new TypeError("the step returned a Promise: a captured step must be synchronous");
    } catch (e) {
      torch.cudaGraphAbort(id);
      const msg = (e as Error).message;
      const hint = /captur/i.test(msg) ? " (a host synchronisation such as item(), toArray() or cpu() cannot be captured)" : "";
      throw new Error(`CudaGraph.capture: the step threw while being captured, nothing was recorded${hint}: ${msg}`, { cause: e });
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
