// Reader for the IDX format of MNIST and Fashion-MNIST (optionally gzip-compressed).
// Format: a 4-byte magic (0, 0, type 0x08 = uint8, number of dims), one big-endian uint32 size per dim, then data.
import * as fs from "fs";
import * as zlib from "zlib";

export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

export function readIdx(file: string): IdxArray {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`${file}: cannot read IDX file (${(e as Error).message})`);
  }
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) throw new Error(`${file}: not an IDX file (bad magic)`);
  if (buf[2] !== 0x08) throw new Error(`${file}: IDX element type 0x${buf[2]!.toString(16)} is not uint8`);
  const ndim = buf[3]!;
  const shape: number[] = [];
  for (let d = 0; d < ndim; d++) shape.push(buf.readUInt32BE(4 + 4 * d));
  const offset = 4 + 4 * ndim;
  const count = shape.reduce((a, b) => a * b, 1);
  if (buf.length - offset !== count) throw new Error(`${file}: IDX header promises ${count} bytes of data, file has ${buf.length - offset}`);
  return { shape, data: new Uint8Array(buf.buffer, buf.byteOffset + offset, count) };
}

/** Fashion-MNIST as Debian's dataset-fashion-mnist installs it. */
export const FASHION_MNIST_DIR = process.env.FASHION_MNIST_DIR ?? "/usr/share/datasets/fashion-mnist";
export const FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

export interface LabelledImages {
  /** (N, H, W) uint8 pixels, row-major */
  images: IdxArray;
  /** (N) class indices */
  labels: Uint8Array;
}

export function loadFashionMnist(split: "train" | "test", dir = FASHION_MNIST_DIR): LabelledImages {
  const prefix = split === "train" ? "train" : "t10k";
  const images = readIdx(`${dir}/${prefix}-images-idx3-ubyte.gz`);
  const labels = readIdx(`${dir}/${prefix}-labels-idx1-ubyte.gz`);
  if (images.shape[0] !== labels.shape[0]) throw new Error(`${dir}: ${images.shape[0]} ${split} images but ${labels.shape[0]} labels`);
  return { images, labels: labels.data };
}
